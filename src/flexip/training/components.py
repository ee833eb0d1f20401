"""Loading what a training run needs: the frozen components (frozen for real) and the trainable adapter."""

from __future__ import annotations

import logging

import torch

from flexip.errors import FlexIPInputError
from flexip.loading import default_encoders, load_adapter, load_components
from flexip.models.adapter import FlexIPAdapter
from flexip.presets import get_preset, is_preset
from flexip.training.config import ModelConfig

logger = logging.getLogger(__name__)


def load_frozen_components(model: ModelConfig) -> dict:
    """vae, text_encoder, tokenizer, unet, scheduler, image_encoder, feature_extractor, dino_encoder,
    dino_processor, in eval mode with requires_grad off (still where and how they were loaded)."""

    components = load_components(model.base, model.image_encoder, model.dino_encoder)
    for value in components.values():
        if isinstance(value, torch.nn.Module):
            value.requires_grad_(False).eval()
    return components


def place_components(components: dict, device: torch.device, dtype: torch.dtype) -> None:
    for value in components.values():
        if isinstance(value, torch.nn.Module):
            value.to(device=device, dtype=dtype)


def build_adapter(model: ModelConfig, components: dict, seed: int):
    """A fresh adapter for the base UNet (deterministic for a seed), or `model.init_adapter` loaded: a FlexIP
    adapter folder, or an IP-Adapter checkpoint file in the official layout (a warm start,
    `FlexIPAdapter.from_ip_adapter`: at γ = 1 it starts as that IP-Adapter). With `model.method: ip-adapter`,
    a fresh IP-Adapter Plus (the baseline) instead."""
    unet = components["unet"]
    if model.method == "ip-adapter":
        from flexip.models.ip_adapter_plus import IPAdapterPlus

        image_default, _ = default_encoders(model.base)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            adapter = IPAdapterPlus.from_unet(
                unet, components["image_encoder"].config.hidden_size, image_encoder=model.image_encoder or image_default, **model.ip_adapter
            )
        return adapter.to(dtype=torch.float32).train()
    if model.init_adapter is not None and is_ip_adapter_file(model.init_adapter):
        adapter = warm_start_from_ip_adapter(model, components)
    elif model.init_adapter is not None:
        adapter = load_adapter(model.init_adapter)
        adapter.check_compatible(unet)
        adapter.check_encoders(components["image_encoder"], components["dino_encoder"])
    else:
        # a preset base may bring adapter defaults (tiny-random: toy widths); the config's overrides win
        overrides = {**(get_preset(model.base).adapter_defaults if is_preset(model.base) else {}), **model.adapter}
        image_default, dino_default = default_encoders(model.base)
        overrides.setdefault("image_encoder", model.image_encoder or image_default)
        overrides.setdefault("dino_encoder", model.dino_encoder or dino_default)
        clip_dim = components["image_encoder"].config.projection_dim
        dino_dim = components["dino_encoder"].config.hidden_size
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            adapter = FlexIPAdapter.from_unet(unet, clip_dim, dino_dim, **overrides)
        if model.personalization_init == "zero":
            adapter.silence_personalization()
    return adapter.to(dtype=torch.float32).train()


def is_ip_adapter_file(init_adapter: str) -> bool:
    """An IP-Adapter checkpoint is one file (.safetensors / .bin); a FlexIP adapter is a folder."""
    from pathlib import Path

    return Path(init_adapter).is_file() and Path(init_adapter).suffix in (".safetensors", ".bin")


def warm_start_from_ip_adapter(model: ModelConfig, components: dict) -> FlexIPAdapter:
    """The FlexIP adapter that starts as the IP-Adapter checkpoint `model.init_adapter` on the base UNet."""
    image_default, dino_default = default_encoders(model.base)
    adapter = FlexIPAdapter.from_ip_adapter(
        model.init_adapter,
        components["unet"],
        dino_hidden_dim=components["dino_encoder"].config.hidden_size,
        clip_embed_dim=components["image_encoder"].config.projection_dim,
        image_encoder=model.image_encoder or image_default,
        dino_encoder=model.dino_encoder or dino_default,
    )
    adapter.check_encoders(components["image_encoder"], components["dino_encoder"])
    return adapter


def native_resolution(components: dict) -> int:
    """The base model's own image size: UNet sample size × VAE downscaling factor."""
    vae_factor = 2 ** (len(components["vae"].config.block_out_channels) - 1)
    return int(components["unet"].config.sample_size) * vae_factor


def check_resolution(resolution: int, components: dict) -> None:
    vae_factor = 2 ** (len(components["vae"].config.block_out_channels) - 1)
    unet_factor = 2 ** (len(components["unet"].config.down_block_types) - 1)
    multiple = vae_factor * unet_factor
    if resolution % multiple:
        raise FlexIPInputError(f"data.resolution must be a multiple of {multiple} for this base model, got {resolution}")


def load_dataset(config):
    """The manifest's records as a FlexIPDataset; an empty or invalid manifest fails here, at start."""
    from flexip.data import FlexIPDataset, ModalityMixSampler
    from flexip.data.manifest import load_manifest

    records = load_manifest(config.data.manifest)
    try:
        ModalityMixSampler(records, config.data.mix)  # the mix must fit the manifest
    except FlexIPInputError as error:
        raise FlexIPInputError(f"data.mix {config.data.mix}: {error} (set data.mix, e.g. data.mix.video=0)") from None
    return FlexIPDataset(
        records,
        seed=config.runtime.seed,
        min_gap=config.data.min_gap,
        max_gap=config.data.max_gap,
        augment=config.data.reference_augment(),
        video_augment=config.data.reference_video_augment(),
        subject_references=config.data.subject_references,
        variant_masks=config.data.variant_masks,
    )


def cache_signature(config, resolution: int, dino_layer: int) -> dict:
    """What a feature cache must have been built with to be valid for `config`."""
    model = config.model
    signature = {
        "base": model.base,
        "image_encoder": model.image_encoder,
        "dino_encoder": model.dino_encoder,
        "dino_layer": dino_layer,
        "resolution": resolution,
    }
    layer = clip_hidden_layer(model)
    if layer is not None:  # only where it matters, so caches of runs without CLIP hidden states still match
        signature["clip_hidden_layer"] = layer
    return signature


def clip_hidden_layer(model: ModelConfig) -> int | None:
    """-2 when the run reads the reference's CLIP hidden states (the penultimate layer, as IP-Adapter Plus does): the
    IP-Adapter baseline, and FlexIP adapters whose preservation branch is a Plus resampler; else None."""
    import json
    from pathlib import Path

    from flexip.presets import resolve_preset_id

    if model.method == "ip-adapter":
        return -2
    if model.init_adapter is None:
        return None
    if is_ip_adapter_file(model.init_adapter):
        from flexip.models.ip_adapter import ip_adapter_kind, read_ip_adapter

        return -2 if ip_adapter_kind(read_ip_adapter(model.init_adapter)[0]) == "plus" else None
    config_path = Path(resolve_preset_id(model.init_adapter)) / FlexIPAdapter.config_name
    if config_path.is_file() and json.loads(config_path.read_text()).get("global_module") == "resampler":
        return -2
    return None


def data_signature(config) -> dict:
    """The data settings a feature cache froze (a mismatch only warns)."""
    from pathlib import Path

    from flexip.hashing import file_sha256

    data = config.data
    return {
        "manifest": str(Path(data.manifest).resolve()),
        "manifest_sha256": file_sha256(data.manifest),
        "seed": config.runtime.seed,
        "min_gap": data.min_gap,
        "max_gap": data.max_gap,
        "augment": data.augment,
        "video_augment": data.video_augment,
        "subject_references": data.subject_references,
        "variant_masks": data.variant_masks,
    }


def dino_layer(model: ModelConfig) -> int:
    """The DINOv2 hidden layer the adapter reads (from `init_adapter`'s config or the overrides)."""
    if model.init_adapter is not None:
        import json
        from pathlib import Path

        from flexip.presets import resolve_preset_id

        config_path = Path(resolve_preset_id(model.init_adapter)) / FlexIPAdapter.config_name
        if config_path.is_file():
            return int(json.loads(config_path.read_text()).get("dino_layer", -1))
    defaults = get_preset(model.base).adapter_defaults if is_preset(model.base) else {}
    return int({**defaults, **model.adapter}.get("dino_layer", -1))
