"""A warm start from IP-Adapter: tiny checkpoints written in the official key layout (base and Plus, SD1.5- and
SDXL-shaped) become FlexIP adapters that, at γ = 1, render what diffusers' own IP-Adapter renders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flexip import FlexIP, FlexIPAdapter
from flexip.encoders.reference import ReferenceEmbeds
from flexip.errors import CheckpointError

SCALE = 0.6
CLIP_DIM, CLIP_HIDDEN, DINO_DIM = 24, 40, 32
TINY = dict(dino_hidden_dim=DINO_DIM, clip_embed_dim=CLIP_DIM, image_encoder="tiny-random:image_encoder", dino_encoder="tiny-random:dino")


def _pipe(family: str):
    from flexip.testing.pipelines import tiny_pipeline_of_kind

    return tiny_pipeline_of_kind(family, "text2img", seed=0)


def _reference(kind: str) -> ReferenceEmbeds:
    generator = torch.Generator().manual_seed(7)
    clip = torch.randn(1, CLIP_DIM, generator=generator)
    tokens = torch.randn(1, 9, CLIP_HIDDEN, generator=generator) if kind == "plus" else None
    return ReferenceEmbeds(clip, torch.randn(1, 16, DINO_DIM, generator=generator), tokens)


def _render(pipe, **kwargs) -> np.ndarray:
    return pipe("a dog", num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np", height=16, width=16, **kwargs).images


@pytest.mark.parametrize("family", ["sd", "sdxl"])
@pytest.mark.parametrize("kind", ["base", "plus"])
def test_gamma_one_reproduces_diffusers_ip_adapter(tmp_path, family, kind):
    from flexip.testing.pipelines import tiny_ip_adapter_checkpoint

    theirs, ours = _pipe(family), _pipe(family)
    checkpoint = tiny_ip_adapter_checkpoint(
        theirs.unet, tmp_path / "ip-adapter.safetensors", kind=kind, clip_dim=CLIP_HIDDEN if kind == "plus" else CLIP_DIM
    )
    reference = _reference(kind)
    features = reference.clip_tokens if kind == "plus" else reference.clip_embeds
    theirs.load_ip_adapter(str(tmp_path), subfolder="", weight_name=checkpoint.name, image_encoder_folder=None)
    theirs.set_ip_adapter_scale(SCALE)
    # diffusers' layout of given embeddings: [negative; positive] per IP-Adapter, an image axis after the batch
    expected = _render(theirs, ip_adapter_image_embeds=[torch.cat([torch.zeros_like(features), features]).unsqueeze(1)])

    adapter = FlexIPAdapter.from_ip_adapter(checkpoint, ours.unet, **TINY)
    with FlexIP.attach(ours, adapter) as flexip:
        got = _render(ours, cross_attention_kwargs=flexip.conditioning(reference, gamma=1.0, adapter_scale=SCALE))
        silent = _render(ours, cross_attention_kwargs=flexip.conditioning(reference, gamma=0.0))
    difference = float(np.abs(got - expected).max())
    print(f"{family} {kind}: FlexIP at gamma = 1 vs diffusers' IP-Adapter, max abs difference {difference:.2e}")
    assert difference <= 1e-4
    assert np.abs(expected - _render(ours)).max() > 1e-3  # the IP-Adapter does something
    np.testing.assert_allclose(silent, _render(ours), atol=1e-5)  # the personalization branch starts silent


def test_the_warm_start_saves_and_loads_exactly_and_fine_tunes_its_detail(tmp_path):
    from flexip.testing.pipelines import tiny_ip_adapter_checkpoint

    pipe = _pipe("sd")
    checkpoint = tiny_ip_adapter_checkpoint(pipe.unet, tmp_path / "ip.safetensors", kind="plus", clip_dim=CLIP_HIDDEN)
    adapter = FlexIPAdapter.from_ip_adapter(checkpoint, pipe.unet, **TINY)
    assert adapter.config.global_module == "resampler" and adapter.config.detail_residual and adapter.reads_clip_tokens
    assert adapter.preservation.detail_scale.item() == 0.0
    adapter.save_pretrained(tmp_path / "flexip")
    loaded = FlexIPAdapter.from_pretrained(tmp_path / "flexip")
    assert all(torch.equal(loaded.state_dict()[key], value) for key, value in adapter.state_dict().items())
    # the detail tokens get a gradient at the start, so training moves them into C_pres
    reference = _reference("plus")
    pres = adapter.train().preservation_tokens(reference.clip_embeds, reference.dino_tokens, reference.clip_tokens)
    pres.square().sum().backward()
    assert adapter.preservation.detail_scale.grad is not None and adapter.preservation.detail_scale.grad.item() != 0.0


def test_checkpoints_that_do_not_fit_are_explained(tmp_path):
    from flexip.testing.pipelines import tiny_ip_adapter_checkpoint

    sd, sdxl = _pipe("sd"), _pipe("sdxl")
    checkpoint = tiny_ip_adapter_checkpoint(sd.unet, tmp_path / "sd.safetensors")
    with pytest.raises(CheckpointError, match="cross-attention is"):
        FlexIPAdapter.from_ip_adapter(checkpoint, sdxl.unet)
    torch.save({"image_proj": {"proj.weight": torch.zeros(1)}, "ip_adapter": {}}, tmp_path / "old.bin")
    with pytest.raises(CheckpointError, match="pickle checkpoint"):
        FlexIPAdapter.from_ip_adapter(tmp_path / "old.bin", sd.unet)
    from safetensors.torch import save_file

    save_file({"image_proj.proj.0.weight": torch.zeros(2, 2), "ip_adapter.1.to_k_ip.weight": torch.zeros(2, 2)}, str(tmp_path / "face.safetensors"))
    with pytest.raises(CheckpointError, match="unsupported IP-Adapter variant"):
        FlexIPAdapter.from_ip_adapter(tmp_path / "face.safetensors", sd.unet)


def test_a_pickled_official_checkpoint_loads_with_opt_in(tmp_path):
    from safetensors.torch import load_file

    from flexip.testing.pipelines import tiny_ip_adapter_checkpoint

    pipe = _pipe("sd")
    flat = load_file(str(tiny_ip_adapter_checkpoint(pipe.unet, tmp_path / "ip.safetensors")))
    nested = {"image_proj": {}, "ip_adapter": {}}
    for key, value in flat.items():
        group, _, rest = key.partition(".")
        nested[group][rest] = value
    torch.save(nested, tmp_path / "ip-adapter_sd15.bin")
    from_bin = FlexIPAdapter.from_ip_adapter(tmp_path / "ip-adapter_sd15.bin", pipe.unet, allow_pickle=True, **TINY)
    from_safetensors = FlexIPAdapter.from_ip_adapter(tmp_path / "ip.safetensors", pipe.unet, **TINY)
    layer = next(iter(from_bin.target_layers))
    assert torch.equal(from_bin.layer(layer).to_k_pres.weight, from_safetensors.layer(layer).to_k_pres.weight)
    assert from_bin.config.image_encoder == "tiny-random:image_encoder" and from_bin.config.clip_embed_dim == CLIP_DIM
