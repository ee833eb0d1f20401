import numpy as np
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler, StableDiffusionPipeline

from flexip.errors import FlexIPInputError
from flexip.gate import Gamma, GammaSchedule, GateSettings, parse_gamma

STEPS = 3


def _np(pipe, **kwargs):
    kwargs.setdefault("num_inference_steps", STEPS)
    kwargs.setdefault("generator", torch.Generator().manual_seed(0))
    return pipe(output_type="np", **kwargs).images


def test_scale_zero_equals_plain_stable_diffusion(pipe):
    plain = StableDiffusionPipeline(
        vae=pipe.vae,
        text_encoder=pipe.text_encoder,
        tokenizer=pipe.tokenizer,
        unet=pipe.unet,
        scheduler=pipe.scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    plain.set_progress_bar_config(disable=True)
    expected = plain("a dog in the snow", num_inference_steps=STEPS, generator=torch.Generator().manual_seed(0), output_type="np").images
    got = _np(pipe, prompt="a dog in the snow", adapter_scale=0.0)  # no reference needed when off
    np.testing.assert_array_equal(got, expected)
    got_weights = _np(pipe, prompt="a dog in the snow", w_pres=0.0, w_pers=0.0, reference_images=np.zeros((8, 8, 3), np.uint8))
    np.testing.assert_array_equal(got_weights, expected)


def test_sweep_in_one_call_matches_separate_calls_and_reuses_embeddings(pipe, reference_image):
    embeds = pipe.encode_reference(reference_image)
    sweep = pipe(
        "a cat on the beach",
        reference_embeds=embeds,
        gamma=[0.0, 0.5, 1.0],
        num_inference_steps=STEPS,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    )
    assert sweep.gammas == [0.0, 0.5, 1.0]
    for index, gamma in enumerate((0.0, 0.5, 1.0)):
        single = _np(pipe, prompt="a cat on the beach", reference_embeds=embeds, gamma=gamma)
        np.testing.assert_allclose(sweep.images[index], single[0], atol=2e-4)
    from_images = _np(pipe, prompt="a cat on the beach", reference_images=reference_image, gamma=0.5)
    np.testing.assert_allclose(from_images[0], sweep.images[1], atol=2e-4)
    assert np.abs(sweep.images[0] - sweep.images[2]).max() > 1e-3


def test_batch_layout_prompts_sweep_images(pipe, reference_image):
    out = pipe(
        ["a dog", "a cat"],
        reference_images=reference_image,
        gamma=[0.2, 0.8],
        num_images_per_prompt=2,
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    )
    assert out.images.shape == (8, 16, 16, 3)
    assert out.gammas == [0.2, 0.2, 0.8, 0.8] * 2
    assert np.isfinite(out.images).all()


def test_per_sample_gamma_tensor_equals_one_by_one(pipe, reference_image):
    embeds = pipe.encode_reference([[reference_image], [reference_image.rotate(90)]])
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    batched = _np(pipe, prompt=["a dog", "a cat"], reference_embeds=embeds, gamma=torch.tensor([0.1, 0.9]), latents=latents)
    for index, (prompt, gamma) in enumerate((("a dog", 0.1), ("a cat", 0.9))):
        single = _np(pipe, prompt=prompt, reference_embeds=embeds.select(torch.tensor([index])), gamma=gamma, latents=latents[index : index + 1])
        np.testing.assert_allclose(batched[index], single[0], atol=2e-4)


@pytest.mark.parametrize("scheduler_class", [DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler])
def test_other_schedulers(pipe, reference_image, scheduler_class):
    original = pipe.scheduler
    pipe.scheduler = scheduler_class.from_config(original.config)
    try:
        images = _np(pipe, prompt="a dog", reference_images=reference_image, gamma={"down": 0.2, "up": GammaSchedule(1.0, 0.0)})
    finally:
        pipe.scheduler = original
    assert images.shape == (1, 16, 16, 3) and np.isfinite(images).all() and images.std() > 0


def test_several_references_mean_and_concat(pipe, reference_image):
    second = reference_image.transpose(0)
    mean = pipe.encode_reference([reference_image, second])
    concat = pipe.encode_reference([reference_image, second], multi_reference="concat")
    singles = [pipe.encode_reference(image) for image in (reference_image, second)]
    torch.testing.assert_close(mean.clip_embeds[0], (singles[0].clip_embeds[0] + singles[1].clip_embeds[0]) / 2)
    assert concat.dino_tokens.shape[1] == 2 * mean.dino_tokens.shape[1]
    assert _np(pipe, prompt="a dog", reference_embeds=concat).shape == (1, 16, 16, 3)


def test_pipeline_leaves_unet_untouched(pipe, reference_image):
    before = dict(pipe.unet.attn_processors)
    _np(pipe, prompt="a dog", reference_images=reference_image)
    assert all(pipe.unet.attn_processors[k] is v for k, v in before.items())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(gamma=1.5), r"\[0, 1\]"),
        (dict(gamma=float("nan")), r"\[0, 1\]"),
        (dict(gamma=[0.5, -1.0]), r"\[0, 1\]"),
        (dict(gamma=0.5, w_pres=1.0, w_pers=0.0), "either gamma"),
        (dict(gamma=torch.tensor([0.5, 0.5])), "one value per prompt"),
        (dict(gamma={"up": [0.5, 0.5]}), "one value per prompt"),
        (dict(gamma=lambda t: 1.5), r"step fraction 0 must be in \[0, 1\]"),
        (dict(gamma="0.5"), "parse_gamma"),
        (dict(adapter_scale=-1.0), "adapter_scale"),
        (dict(num_inference_steps=0), "≥ 1"),
        (dict(height=13), "multiples"),
    ],
)
def test_bad_call_arguments(pipe, reference_image, kwargs, message):
    with pytest.raises(FlexIPInputError, match=message):
        pipe("a dog", reference_images=reference_image, **kwargs)


def test_missing_reference_is_explained(pipe):
    with pytest.raises(FlexIPInputError, match="reference_images or reference_embeds"):
        pipe("a dog", num_inference_steps=1)


def test_a_callable_schedule_is_called_once_per_step_however_many_layers(pipe, reference_image):
    calls = []

    def schedule(t):
        calls.append(t)
        return 1.0 - t

    embeds = pipe.encode_reference(reference_image)
    kwargs = dict(prompt=["a dog", "a cat"], reference_embeds=embeds, num_inference_steps=4, num_images_per_prompt=2)
    got = _np(pipe, gamma={"down": schedule, "up": schedule, "mid": 0.3}, **kwargs)
    # 7 FlexIP layers, guidance on, 2 prompts × 2 images: still one call per denoising step, at index / (steps − 1)
    assert len(pipe.adapter.target_layers) == 7 and calls == [index / 3 for index in range(4)]
    linear = GammaSchedule(1.0, 0.0)
    np.testing.assert_array_equal(got, _np(pipe, gamma={"down": linear, "up": linear, "mid": 0.3}, **kwargs))
    assert calls == [index / 3 for index in range(4)]  # the second call used no callable


def test_a_gamma_value_renders_like_its_plain_form_and_is_left_as_it_was(pipe, reference_image):
    embeds = pipe.encode_reference(reference_image)
    sweep = parse_gamma("0,0.5 1")
    from_text = _np(pipe, prompt="a dog", reference_embeds=embeds, gamma=sweep)
    np.testing.assert_array_equal(from_text, _np(pipe, prompt="a dog", reference_embeds=embeds, gamma=[0.0, 0.5, 1.0]))
    assert sweep == Gamma((0.0, 0.5, 1.0), sweep=True)
    schedule = GateSettings(gamma=GammaSchedule(1.0, 0.2))
    _np(pipe, prompt="a dog", reference_embeds=embeds, gamma=schedule.gamma)
    assert schedule == GateSettings(gamma=GammaSchedule(1.0, 0.2)) and schedule.gamma.is_scheduled
