"""How FlexIP lays its conditioning out over diffusers' batches (guidance halves, prompts, images, sweeps,
frames), checked against FlexIPPipeline, which lays out its own batch; the errors that say what did not fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flexip import FlexIP
from flexip.errors import FlexIPInputError
from flexip.gate import GammaSchedule
from flexip.integrations import BatchLayout, read_layout
from flexip.models import UNetCall


@pytest.fixture(scope="module")
def twins(encoders):
    """FlexIPPipeline and a plain StableDiffusionPipeline with FlexIP attached, on identical tiny weights."""
    from diffusers import StableDiffusionPipeline

    from flexip.pipelines import FlexIPPipeline
    from flexip.testing import tiny_adapter, tiny_base_components

    ours_base, theirs_base = tiny_base_components(seed=0), tiny_base_components(seed=0)
    ours = FlexIPPipeline(**ours_base, **encoders, adapter=tiny_adapter(ours_base["unet"]))
    theirs = StableDiffusionPipeline(**theirs_base, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    for pipe in (ours, theirs):
        pipe.set_progress_bar_config(disable=True)
    flexip = FlexIP.attach(theirs, tiny_adapter(theirs_base["unet"]), **encoders)
    yield ours, theirs, flexip
    flexip.detach()


LAYOUTS = {
    "two prompts, a subject each, per-prompt γ, two images each": dict(
        prompts=["a dog", "a cat"], subjects=2, gamma=lambda: torch.tensor([0.2, 0.9]), images=2, sweep=1
    ),
    "a sweep over two prompts": dict(prompts=["a dog", "a cat"], subjects=1, gamma=lambda: [0.0, 1.0], images=1, sweep=2),
    "a sweep without guidance": dict(prompts=["a dog"], subjects=1, gamma=lambda: [0.0, 0.5, 1.0], images=1, sweep=3, guidance_scale=1.0),
    "per block, a schedule": dict(prompts=["a dog"], subjects=1, gamma=lambda: {"down": 0.2, "up": GammaSchedule(1.0, 0.0)}, images=2, sweep=1),
}


@pytest.mark.parametrize("name", LAYOUTS)
def test_attached_diffusers_pipeline_matches_flexip_pipeline(twins, reference_image, name):
    ours, theirs, flexip = twins
    layout = LAYOUTS[name]
    subjects = [[reference_image], [reference_image.rotate(90)]][: layout["subjects"]]
    rows = len(layout["prompts"]) * layout["sweep"] * layout["images"]
    latents = torch.randn(rows, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    common = dict(num_inference_steps=3, output_type="np", latents=latents, guidance_scale=layout.get("guidance_scale", 7.5))
    expected = ours(
        layout["prompts"], reference_embeds=ours.encode_reference(subjects), gamma=layout["gamma"](), num_images_per_prompt=layout["images"], **common
    ).images
    conditioning = flexip.conditioning(flexip.encode_reference(subjects), gamma=layout["gamma"](), images_per_prompt=layout["images"])
    got = theirs(layout["prompts"], num_images_per_prompt=layout["sweep"] * layout["images"], cross_attention_kwargs=conditioning, **common).images
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_the_reference_and_the_text_tokens_are_made_once_per_call(twins, reference_image, monkeypatch):
    _, theirs, flexip = twins
    calls = {"preservation": 0, "personalization": 0}
    for name in calls:
        original = getattr(flexip.adapter, f"{name}_tokens")

        def counted(*args, _name=name, _original=original):
            calls[_name] += 1
            return _original(*args)

        monkeypatch.setattr(flexip.adapter, f"{name}_tokens", counted)
    conditioning = flexip.conditioning(flexip.encode_reference(reference_image), gamma=0.4)
    theirs("a dog", num_inference_steps=4, output_type="np", cross_attention_kwargs=conditioning)
    assert calls == {"preservation": 1, "personalization": 1}  # 4 steps, 7 layers: the tokens are reused
    theirs("a dog", num_inference_steps=4, output_type="np", cross_attention_kwargs=conditioning)
    assert calls == {"preservation": 1, "personalization": 2}  # a new call, new prompt embeddings; the reference stays


def test_rows_of_a_video_batch_with_guidance():
    call = UNetCall(torch.zeros(4, 4, 3, 8, 8), 10, torch.zeros(12, 77, 32))  # 2 halves × 2 videos × 3 frames
    layout = read_layout(call, guidance=True, sweep=2, images_per_prompt=1, subjects=1)
    assert layout == BatchLayout(guidance=True, prompts=1, images_per_prompt=1, sweep=2, frames=3) and layout.rows == 12
    assert layout.subject_of_rows(1).tolist() == [-1] * 6 + [0] * 6
    two_prompts = read_layout(call, guidance=True, sweep=1, images_per_prompt=1, subjects=2)
    assert two_prompts.subject_of_rows(2).tolist() == [-1] * 6 + [0] * 3 + [1] * 3


@pytest.mark.parametrize(
    "kwargs, call, message",
    [
        (dict(gamma=[0.0, 0.5, 1.0]), dict(num_images_per_prompt=2), "not a multiple of 3"),
        (dict(gamma=torch.tensor([0.1, 0.2, 0.3])), dict(), "one value per prompt"),
        (dict(gamma={"dwn": 0.3}), None, "matches no attention layer"),
        (dict(gamma=1.5), None, r"\[0, 1\]"),
        (dict(images_per_prompt=0), None, "positive integer"),
    ],
)
def test_what_does_not_fit_the_batch_is_explained(twins, reference_image, kwargs, call, message):
    _, theirs, flexip = twins
    with pytest.raises(FlexIPInputError, match=message):
        conditioning = flexip.conditioning(flexip.encode_reference(reference_image), **kwargs)
        theirs(["a dog", "a cat"], num_inference_steps=1, output_type="np", cross_attention_kwargs=conditioning, **call)


def test_two_subjects_for_three_prompts_is_explained(twins, reference_image):
    _, theirs, flexip = twins
    conditioning = flexip.conditioning(flexip.encode_reference([[reference_image], [reference_image]]))
    with pytest.raises(FlexIPInputError, match="2 reference subjects for 3 prompts"):
        theirs(["a", "b", "c"], num_inference_steps=1, output_type="np", cross_attention_kwargs=conditioning)


def test_attaching_twice_or_next_to_an_ip_adapter_is_refused(encoders, tmp_path):
    from diffusers import StableDiffusionPipeline

    from flexip.testing import tiny_adapter, tiny_base_components
    from flexip.testing.pipelines import tiny_ip_adapter_checkpoint

    base = tiny_base_components(seed=0)
    pipe = StableDiffusionPipeline(**base, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    with FlexIP.attach(pipe, tiny_adapter(pipe.unet)) as flexip:
        with pytest.raises(FlexIPInputError, match="already has a FlexIP adapter"):
            FlexIP.attach(pipe, tiny_adapter(pipe.unet))
        with pytest.raises(FlexIPInputError, match="encode_reference needs the reference encoders"):
            flexip.encode_reference(np.zeros((8, 8, 3), np.uint8))
    assert not flexip.attached
    checkpoint = tiny_ip_adapter_checkpoint(pipe.unet, tmp_path / "ip.safetensors")
    pipe.load_ip_adapter(str(tmp_path), subfolder="", weight_name=checkpoint.name, image_encoder_folder=None)
    with pytest.raises(FlexIPInputError, match="unload it first"):
        FlexIP.attach(pipe, tiny_adapter(pipe.unet))


def test_a_pipeline_made_with_from_pipe_is_named_or_refused(twins, reference_image):
    from diffusers import StableDiffusionImg2ImgPipeline

    from tests.integrations.conftest import condition_image

    _, theirs, flexip = twins
    img2img = StableDiffusionImg2ImgPipeline.from_pipe(theirs)  # shares the UNet FlexIP is attached to
    reference = flexip.encode_reference(reference_image)
    inputs = dict(image=condition_image(2), strength=0.9, num_inference_steps=2, output_type="np")
    with pytest.raises(FlexIPInputError, match="pipeline=the_pipeline_you_call"):
        img2img("a dog", cross_attention_kwargs=flexip.conditioning(reference, gamma=0.5), **inputs)
    named = img2img(
        "a dog",
        generator=torch.Generator().manual_seed(0),
        cross_attention_kwargs=flexip.conditioning(reference, gamma=0.5, pipeline=img2img),
        **inputs,
    )
    explicit = img2img(
        "a dog", generator=torch.Generator().manual_seed(0), cross_attention_kwargs=flexip.conditioning(reference, gamma=0.5, guidance=True), **inputs
    )
    np.testing.assert_array_equal(named.images, explicit.images)
    with pytest.raises(FlexIPInputError, match="not two equal halves"):  # told guidance, but the batch has none
        img2img("a dog", num_images_per_prompt=2, guidance_scale=1.0, cross_attention_kwargs=flexip.conditioning(reference, guidance=True), **inputs)


def test_attach_takes_ids_of_an_adapter_and_its_encoders(reference_image):
    from diffusers import StableDiffusionPipeline

    from flexip.presets import get_preset

    pipe = StableDiffusionPipeline.from_pretrained(get_preset("tiny-random").path("base"), safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    with FlexIP.attach(pipe, "tiny-random:adapter", image_encoder="tiny-random:image_encoder", dino_encoder="tiny-random:dino") as flexip:
        reference = flexip.encode_reference(reference_image)
        assert reference.clip_embeds.shape == (1, 24) and reference.dino_tokens.shape == (1, 16, 32)
        image = pipe("a blob", num_inference_steps=2, output_type="np", cross_attention_kwargs=flexip.conditioning(reference, gamma=0.5)).images
    assert np.isfinite(image).all()


def test_an_attached_call_in_inference_mode_renders_as_under_no_grad(twins, reference_image):
    """Inference tensors keep no version counter: the token cache must not ask for one."""
    _, theirs, flexip = twins
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    common = dict(num_inference_steps=3, output_type="np", latents=latents)
    conditioning = flexip.conditioning(flexip.encode_reference([reference_image]), gamma=0.4)
    under_no_grad = theirs("a dog", cross_attention_kwargs=conditioning, **common).images
    with torch.inference_mode():
        in_inference_mode = theirs("a dog", cross_attention_kwargs=conditioning, **common).images
    np.testing.assert_array_equal(in_inference_mode, under_no_grad)
