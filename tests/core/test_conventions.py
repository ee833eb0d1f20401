"""FlexIPPipeline keeps diffusers' pipeline conventions (the project's own checks, on the tiny stack): saving
and loading with the adapter, diffusers' loading keywords, cross_attention_kwargs, encode_prompt's contract,
optional components, StableDiffusionMixin, from_pipe, step-end callbacks and their properties, model CPU
offload of the adapter, and user latents scaled by the scheduler's init_noise_sigma."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionPipeline
from diffusers.pipelines.pipeline_utils import StableDiffusionMixin

from flexip.errors import FlexIPInputError
from flexip.pipelines import FlexIPPipeline
from flexip.testing import tiny_adapter, tiny_base_components, tiny_pipeline, tiny_reference_encoders

STEPS = 2


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """The toy models run fastest on one thread on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _np(pipe, **kwargs):
    kwargs.setdefault("prompt", "a dog")
    return pipe(num_inference_steps=STEPS, generator=torch.Generator().manual_seed(0), output_type="np", **kwargs).images


def _plain(pipe) -> StableDiffusionPipeline:
    plain = StableDiffusionPipeline(
        **{name: getattr(pipe, name) for name in ("vae", "text_encoder", "tokenizer", "unet", "scheduler")},
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    plain.set_progress_bar_config(disable=True)
    return plain


@pytest.fixture(scope="module")
def embeds(pipe, reference_image):
    return pipe.encode_reference(reference_image)


def test_save_pretrained_writes_the_adapter_and_the_folder_loads_back_without_adapter(pipe, embeds, tmp_path, caplog):
    pipe.save_pretrained(tmp_path / "saved")
    assert "cannot be saved" not in caplog.text
    index = json.loads((tmp_path / "saved" / "model_index.json").read_text())
    assert (
        index["adapter"] == ["flexip.models.adapter", "FlexIPAdapter"] and (tmp_path / "saved" / "adapter" / "flexip_adapter.safetensors").is_file()
    )
    loaded = FlexIPPipeline.from_pretrained(tmp_path / "saved")
    loaded.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(_np(loaded, reference_embeds=embeds, gamma=0.3), _np(pipe, reference_embeds=embeds, gamma=0.3))


def test_from_pretrained_takes_diffusers_loading_keywords(pipe, embeds, tmp_path):
    pipe.save_pretrained(tmp_path / "fp16", variant="fp16")
    assert (tmp_path / "fp16" / "adapter" / "flexip_adapter.fp16.safetensors").is_file()
    variant = FlexIPPipeline.from_pretrained(tmp_path / "fp16", variant="fp16", use_safetensors=True, low_cpu_mem_usage=True)
    layer = "mid_block.attentions.0.transformer_blocks.0.attn2"
    assert torch.equal(variant.adapter.layer(layer).to_k_pres.weight, pipe.adapter.layer(layer).to_k_pres.weight)
    bf16 = FlexIPPipeline.from_pretrained(tmp_path / "fp16", variant="fp16", dtype=torch.bfloat16)
    assert {bf16.unet.dtype, bf16.adapter.dtype, bf16.image_encoder.dtype, bf16.vae.dtype} == {torch.bfloat16}
    per_component = FlexIPPipeline.from_pretrained(tmp_path / "fp16", variant="fp16", torch_dtype={"unet": torch.bfloat16, "default": torch.float32})
    assert per_component.unet.dtype == torch.bfloat16 and per_component.vae.dtype == torch.float32 and per_component.adapter.dtype == torch.float32
    # a base checkpoint plus an adapter takes the same keywords
    _plain(pipe).save_pretrained(tmp_path / "base")
    pipe.adapter.save_pretrained(tmp_path / "adapter")
    pipe.image_encoder.save_pretrained(tmp_path / "clip")
    pipe.feature_extractor.save_pretrained(tmp_path / "clip")
    pipe.dino_encoder.save_pretrained(tmp_path / "dino")
    pipe.dino_processor.save_pretrained(tmp_path / "dino")
    from_base = FlexIPPipeline.from_pretrained(
        str(tmp_path / "base"),
        adapter=str(tmp_path / "adapter"),
        image_encoder=str(tmp_path / "clip"),
        dino_encoder=str(tmp_path / "dino"),
        torch_dtype={"unet": torch.bfloat16, "adapter": torch.bfloat16, "default": torch.float32},
        use_safetensors=True,
    )
    assert from_base.unet.dtype == from_base.adapter.dtype == torch.bfloat16 and from_base.text_encoder.dtype == torch.float32


def test_call_takes_cross_attention_kwargs_and_a_lora_scale(pipe, embeds):
    from flexip.testing.pipelines import tiny_lora_state_dict

    base = _np(pipe, reference_embeds=embeds)
    np.testing.assert_array_equal(_np(pipe, reference_embeds=embeds, cross_attention_kwargs={"scale": 1.0}), base)
    pipe.load_lora_weights(tiny_lora_state_dict(pipe.unet), adapter_name="tiny")
    try:
        full, half = _np(pipe, reference_embeds=embeds), _np(pipe, reference_embeds=embeds, cross_attention_kwargs={"scale": 0.5})
    finally:
        pipe.unload_lora_weights()
    assert np.abs(full - base).max() > 1e-3 and np.abs(half - full).max() > 1e-4
    with pytest.raises(FlexIPInputError, match="set by this pipeline"):
        _np(pipe, reference_embeds=embeds, cross_attention_kwargs={"flexip": None})


def test_encode_prompt_returns_prompt_and_negative_embeddings(pipe):
    positive, negative = pipe.encode_prompt(["a dog", "a cat"], num_images_per_prompt=3, do_classifier_free_guidance=True, negative_prompt="ugly")
    assert positive.shape == negative.shape == (6, 77, 32)
    torch.testing.assert_close(positive[0], positive[2])
    assert not torch.equal(positive[0], positive[3]) and not torch.equal(positive[0], negative[0])
    only, none = pipe.encode_prompt("a dog", do_classifier_free_guidance=False)
    assert only.shape == (1, 77, 32) and none is None
    # what it returns is what __call__ takes back, one row per prompt
    np.testing.assert_array_equal(_np(pipe, prompt=None, prompt_embeds=only, adapter_scale=0.0), _np(pipe, adapter_scale=0.0))


def test_optional_components_may_be_none(pipe, embeds, tmp_path):
    bare = FlexIPPipeline(**{name: getattr(pipe, name) for name in ("vae", "text_encoder", "tokenizer", "unet", "scheduler")})
    bare.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(_np(bare, adapter_scale=0.0), _np(_plain(pipe)))
    with pytest.raises(FlexIPInputError, match="no adapter"):
        _np(bare, reference_embeds=embeds)
    encoders_elsewhere = FlexIPPipeline(
        **{name: getattr(pipe, name) for name in ("vae", "text_encoder", "tokenizer", "unet", "scheduler", "adapter")}
    )
    encoders_elsewhere.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(_np(encoders_elsewhere, reference_embeds=embeds), _np(pipe, reference_embeds=embeds))
    with pytest.raises(FlexIPInputError, match="no image_encoder"):
        encoders_elsewhere.encode_reference(np.zeros((8, 8, 3), np.uint8))
    bare.save_pretrained(tmp_path / "bare")
    assert FlexIPPipeline.from_pretrained(tmp_path / "bare").adapter is None


def test_stable_diffusion_mixin_helpers_work(pipe, embeds):
    assert isinstance(pipe, StableDiffusionMixin)
    reference = _np(pipe, reference_embeds=embeds)
    pipe.enable_freeu(s1=0.9, s2=0.2, b1=1.2, b2=1.4)
    try:
        assert np.abs(_np(pipe, reference_embeds=embeds) - reference).max() > 1e-4
    finally:
        pipe.disable_freeu()
    pipe.fuse_qkv_projections()
    try:
        fused_off = _np(pipe, adapter_scale=0.0)
        np.testing.assert_allclose(_np(pipe, reference_embeds=embeds), reference, atol=1e-4)
    finally:
        pipe.unfuse_qkv_projections()
    np.testing.assert_allclose(fused_off, _np(pipe, adapter_scale=0.0), atol=1e-4)
    np.testing.assert_array_equal(_np(pipe, reference_embeds=embeds), reference)


def test_from_pipe_carries_the_components_over(pipe, embeds):
    plain = _plain(pipe)
    ours = FlexIPPipeline.from_pipe(
        plain,
        image_encoder=pipe.image_encoder,
        feature_extractor=pipe.feature_extractor,
        dino_encoder=pipe.dino_encoder,
        dino_processor=pipe.dino_processor,
        adapter=pipe.adapter,
    )
    assert ours.unet is pipe.unet and ours.vae is pipe.vae and ours.adapter is pipe.adapter
    ours.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(_np(ours, reference_embeds=embeds), _np(pipe, reference_embeds=embeds))
    back = StableDiffusionPipeline.from_pipe(pipe, safety_checker=None, requires_safety_checker=False)
    assert back.unet is pipe.unet and back.image_encoder is pipe.image_encoder
    back.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(_np(back), _np(pipe, adapter_scale=0.0))


def test_callback_on_step_end_gets_diffusers_arguments_and_its_result_is_taken(pipe, embeds):
    seen = []

    def callback(callback_pipe, step, timestep, callback_kwargs):
        seen.append((callback_pipe is pipe, step, int(timestep), sorted(callback_kwargs), callback_pipe.guidance_scale, callback_pipe.num_timesteps))
        if step == STEPS - 1:
            return {"latents": torch.zeros_like(callback_kwargs["latents"])}
        return {}

    out = pipe(
        "a dog",
        reference_embeds=embeds,
        num_inference_steps=STEPS,
        guidance_scale=6.0,
        output_type="latent",
        callback_on_step_end=callback,
        callback_on_step_end_tensor_inputs=["latents", "prompt_embeds"],
    ).images
    assert torch.equal(out, torch.zeros_like(out))  # the returned latents were taken
    timesteps = [int(t) for t in pipe.scheduler.timesteps]
    assert seen == [(True, step, timesteps[step], ["latents", "prompt_embeds"], 6.0, STEPS) for step in range(STEPS)]
    assert pipe._callback_tensor_inputs == ["latents", "prompt_embeds", "negative_prompt_embeds"]
    assert pipe.do_classifier_free_guidance and pipe.cross_attention_kwargs is None
    with pytest.raises(FlexIPInputError, match="callback_on_step_end_tensor_inputs"):
        pipe("a dog", reference_embeds=embeds, num_inference_steps=1, callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["noise"])


def test_model_cpu_offload_moves_the_adapter(reference_image):
    pipe = tiny_pipeline(seed=0)
    assert pipe.model_cpu_offload_seq.split("->").index("adapter") > pipe.model_cpu_offload_seq.split("->").index("unet")
    embeds = pipe.encode_reference(reference_image)
    expected = _np(pipe, reference_embeds=embeds)
    pipe.enable_model_cpu_offload(device="cpu")  # the same hooks as on a GPU, with the CPU as the "accelerator"
    calls = []
    hook = pipe.adapter._hf_hook
    original = hook.pre_forward
    hook.pre_forward = lambda module, *args, **kwargs: calls.append(1) or original(module, *args, **kwargs)
    np.testing.assert_array_equal(_np(pipe, reference_embeds=embeds), expected)
    assert calls  # the adapter runs through its forward, so offload moves it onto the device before use


def test_user_latents_are_scaled_by_init_noise_sigma_like_stable_diffusion():
    pipe = tiny_pipeline(seed=0)
    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
    assert float(pipe.scheduler.init_noise_sigma) > 1
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    np.testing.assert_array_equal(_np(pipe, latents=latents, adapter_scale=0.0), _np(_plain(pipe), latents=latents))


def test_the_adapter_from_another_base_is_still_refused():
    base = tiny_base_components(seed=0, cross_attention_dim=48)
    from flexip.errors import CheckpointError

    with pytest.raises(CheckpointError, match="cross-attention width mismatch"):
        FlexIPPipeline(**base, **tiny_reference_encoders(), adapter=tiny_adapter(tiny_base_components(seed=0)["unet"]))
