"""`flexip train` on a tiny SDXL-shaped base (two text encoders, pooled text and time ids), end to end: train a
few steps, save, resume, attach the adapter to diffusers' StableDiffusionXLPipeline and generate; and a
warm start from an IP-Adapter checkpoint file (`model.init_adapter=...`) that training fine-tunes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flexip import FlexIP, FlexIPAdapter
from flexip.testing import TINY_ADAPTER_CONFIG
from tests.training.conftest import _reset_accelerate, make_config, write_dataset

ADAPTER = {key: value for key, value in TINY_ADAPTER_CONFIG.items() if key not in ("image_encoder", "dino_encoder")}
ENCODERS = {"image_encoder": "tiny-random:image_encoder", "dino_encoder": "tiny-random:dino"}


@pytest.fixture(autouse=True)
def _fresh_accelerate():
    yield
    _reset_accelerate()


@pytest.fixture(scope="module")
def sdxl_base(tmp_path_factory):
    from diffusers import StableDiffusionXLPipeline

    from flexip.testing.pipelines import tiny_sdxl_components

    folder = tmp_path_factory.mktemp("sdxl") / "base"
    StableDiffusionXLPipeline(**tiny_sdxl_components(seed=0)).save_pretrained(folder)
    return folder


def test_sdxl_trains_saves_resumes_and_generates_through_attach(tmp_path, sdxl_base, encoders, reference_image):
    from diffusers import StableDiffusionXLPipeline

    from flexip.training.trainer import Trainer

    manifest = write_dataset(tmp_path / "data", images=2, videos=1)
    sections = dict(
        model={"base": str(sdxl_base), **ENCODERS, "adapter": ADAPTER},
        data={"resolution": 16},
        optim={"batch_size": 2, "max_steps": 2},
        logging={"checkpoint_every": 1, "validate_every": 2, "validation_steps": 1, "validation_gammas": [0.0, 1.0]},
    )
    first = Trainer(make_config(manifest, tmp_path / "run", **sections)).train()
    assert first.step == 2 and all(np.isfinite(first.losses))
    assert (tmp_path / "run" / "validation" / "step-000002.png").is_file()  # rendered with diffusers' SDXL pipeline
    _reset_accelerate()
    sections["optim"] = {"batch_size": 2, "max_steps": 3}
    trainer = Trainer(make_config(manifest, tmp_path / "run", **sections), resume="latest")
    assert trainer.step == 2
    assert trainer.train().step == 3

    adapter = FlexIPAdapter.from_pretrained(tmp_path / "run" / "adapter")
    assert adapter.config.cross_attention_dim == 64  # SDXL's two text encoders side by side
    pipe = StableDiffusionXLPipeline.from_pretrained(sdxl_base)
    pipe.set_progress_bar_config(disable=True)
    with FlexIP.attach(pipe, adapter, **encoders) as flexip:
        reference = flexip.encode_reference(reference_image)
        render = lambda gamma: (
            pipe(
                "a blob",
                num_inference_steps=2,
                height=16,
                width=16,
                output_type="np",
                generator=torch.Generator().manual_seed(0),
                cross_attention_kwargs=flexip.conditioning(reference, gamma=gamma),
            ).images
        )
        identity, editing = render(1.0), render(0.0)
    assert np.isfinite(identity).all() and np.abs(identity - editing).max() > 1e-4


def test_training_fine_tunes_from_an_ip_adapter_checkpoint(tmp_path):
    from flexip.testing import tiny_base_components
    from flexip.testing.pipelines import tiny_ip_adapter_checkpoint
    from flexip.training.trainer import Trainer

    unet = tiny_base_components(seed=0)["unet"]  # the tiny-random preset's UNet shape
    checkpoint = tiny_ip_adapter_checkpoint(unet, tmp_path / "ip-adapter_tiny.safetensors")
    manifest = write_dataset(tmp_path / "data", images=2, videos=1)
    config = make_config(manifest, tmp_path / "run", model={"init_adapter": str(checkpoint)}, optim={"batch_size": 2, "max_steps": 2, "lr": 1e-2})
    trainer = Trainer(config)
    start = trainer.adapter.preservation.detail_scale.detach().clone()
    assert start.item() == 0.0 and trainer.adapter.config.detail_residual
    trainer.train()
    tuned = FlexIPAdapter.from_pretrained(tmp_path / "run" / "adapter")
    assert tuned.preservation.detail_scale.item() != 0.0  # the DINO detail tokens joined in


def test_training_fine_tunes_from_an_ip_adapter_plus_checkpoint(tmp_path):
    """Plus reads the CLIP hidden states of the reference: the trainer encodes them (the penultimate layer, as the
    pipeline does), and at step 0 the warm-started adapter's loss is that of the checkpoint's resampler."""
    from flexip.testing import tiny_base_components
    from flexip.testing.pipelines import tiny_ip_adapter_checkpoint
    from flexip.training.trainer import Trainer

    unet = tiny_base_components(seed=0)["unet"]
    checkpoint = tiny_ip_adapter_checkpoint(unet, tmp_path / "ip-adapter-plus_tiny.safetensors", kind="plus", clip_dim=32, num_tokens=4)
    manifest = write_dataset(tmp_path / "data", images=2, videos=1)
    config = make_config(manifest, tmp_path / "run", model={"init_adapter": str(checkpoint)}, optim={"batch_size": 2, "max_steps": 2, "lr": 1e-2})
    trainer = Trainer(config)
    assert trainer.adapter.reads_clip_tokens and trainer.encoder.reference_encoder.clip_hidden_layer == -2
    batch = trainer.features(next(trainer.stream))
    assert batch.clip_tokens is not None and batch.clip_tokens.shape[-1] == 32  # the tiny CLIP's hidden width
    before = {k: v.clone() for k, v in trainer.adapter.state_dict().items() if k.startswith("preservation.global_tokens")}
    result = trainer.train()
    assert all(torch.isfinite(torch.tensor(result.losses)))
    tuned = FlexIPAdapter.from_pretrained(tmp_path / "run" / "adapter")
    assert any(not torch.equal(before[k], tuned.state_dict()[k]) for k in before)  # the resampler fine-tuned
    # the feature cache stores the hidden states too: equal to the on-the-fly ones, and the run trains from it
    _reset_accelerate()
    cached = make_config(manifest, tmp_path / "cached", model={"init_adapter": str(checkpoint)}, optim={"batch_size": 2, "max_steps": 1})
    cached.cache.path = str(tmp_path / "cache")
    _cache_equals_online(cached, "clip_tokens")


def _cache_equals_online(config, name: str) -> None:
    """Build the cache for `config`, check its tensor `name` equals the on-the-fly encoding of the same sample, train a step."""
    from flexip.training.cache import CachedFeatureDataset, build_cache_for_config
    from flexip.training.trainer import Trainer

    build_cache_for_config(config, progress=False)
    cached = CachedFeatureDataset(config.cache.path)
    assert name in cached.tensor_names
    trainer = Trainer(config)
    sample = trainer.dataset[(0, 0)]
    online = trainer.encoder({key: [sample[key]] for key in ("reference", "target", "caption", "modality", "target_mask")})
    assert torch.allclose(cached[(0, 0)][name], getattr(online, name)[0], atol=1e-5)
    result = trainer.train()
    assert result.step == 1 and np.isfinite(result.losses).all()


def test_sdxl_trains_from_the_feature_cache_with_its_pooled_text(tmp_path, sdxl_base, encoders):
    manifest = write_dataset(tmp_path / "data", images=2, videos=1)
    config = make_config(
        manifest,
        tmp_path / "run",
        model={"base": str(sdxl_base), **ENCODERS, "adapter": ADAPTER},
        data={"resolution": 16},
        optim={"batch_size": 2, "max_steps": 1},
        cache={"path": str(tmp_path / "cache")},
    )
    _cache_equals_online(config, "pooled_text_embeds")
