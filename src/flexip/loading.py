"""Loading a FlexIP stack by id: the one place where a base model, the reference encoders and an adapter
are turned from names into objects (below the pipelines, the trainer and the evaluation, which all call it).

An id is a local folder, a hub id (`owner/name`, optionally `:subfolder`), or a preset: a preset name as
the base (`miniworld`), or `NAME:SUBFOLDER` for one of its folders (`miniworld:image_encoder`). A preset is
only data (`flexip.presets`), loaded through exactly the same calls as any folder.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import torch

from flexip.errors import CheckpointError
from flexip.presets import get_preset, is_preset, resolve_preset_id

FROZEN_COMPONENTS = (
    "vae",
    "text_encoder",
    "tokenizer",
    "unet",
    "scheduler",
    "image_encoder",
    "feature_extractor",
    "dino_encoder",
    "dino_processor",
)


def default_encoders(base: str) -> tuple[str, str]:
    """The (image encoder, DINO encoder) ids used with `base` when none are given: a preset's own, else the
    SPEC's reference encoders (OpenCLIP ViT-H/14 from h94/IP-Adapter, DINOv2-L)."""
    if is_preset(base):
        return f"{base}:image_encoder", f"{base}:dino"
    from flexip.models.adapter import DEFAULT_DINO_ENCODER, DEFAULT_IMAGE_ENCODER

    return DEFAULT_IMAGE_ENCODER, DEFAULT_DINO_ENCODER


def load_components(base: str, image_encoder: str | None = None, dino_encoder: str | None = None, torch_dtype=None) -> dict:
    """Every frozen component of a FlexIP pipeline (no adapter), keyed as `FROZEN_COMPONENTS`.

    `base` is a preset name or a diffusers SD1.5-family checkpoint (folder or hub id)."""
    from diffusers import StableDiffusionPipeline

    from flexip.encoders.loading import load_dino_encoder, load_image_encoder

    default_image, default_dino = default_encoders(base)
    folder = str(get_preset(base).path("base")) if is_preset(base) else base
    with quiet_loading() if is_preset(base) else nullcontext():
        try:
            dtype = {} if torch_dtype is None else {"dtype": torch_dtype}  # diffusers deprecates `torch_dtype`
            sd = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, requires_safety_checker=False, **dtype)
        except (OSError, ValueError) as error:
            raise CheckpointError(f"cannot load base model {base!r}: {error}") from None
        clip_model, clip_processor = load_image_encoder(resolve_preset_id(image_encoder or default_image), torch_dtype)
        dino_model, dino_processor = load_dino_encoder(resolve_preset_id(dino_encoder or default_dino), torch_dtype)
    return dict(
        vae=sd.vae,
        text_encoder=sd.text_encoder,
        tokenizer=sd.tokenizer,
        unet=sd.unet,
        scheduler=sd.scheduler,
        image_encoder=clip_model,
        feature_extractor=clip_processor,
        dino_encoder=dino_model,
        dino_processor=dino_processor,
    )


def load_adapter(adapter, base: str | None = None, allow_pickle: bool = False, torch_dtype: torch.dtype | None = None):
    """A FlexIPAdapter from an object, a folder, a hub id or `PRESET:adapter`; None takes the preset base's own."""
    from flexip.errors import FlexIPInputError
    from flexip.models.adapter import FlexIPAdapter

    if isinstance(adapter, FlexIPAdapter):
        return adapter.to(dtype=torch_dtype) if torch_dtype is not None else adapter
    if adapter is None:
        own = get_preset(base).adapter_dir if base is not None and is_preset(base) else None
        if own is None:
            raise FlexIPInputError("give adapter= (a folder, hub id or FlexIPAdapter): this base model brings no adapter of its own")
        adapter = own
    with quiet_loading() if base is not None and is_preset(base) else nullcontext():
        loaded = FlexIPAdapter.from_pretrained(resolve_preset_id(str(adapter)), allow_pickle=allow_pickle)
    return loaded.to(dtype=torch_dtype) if torch_dtype is not None else loaded


@contextmanager
def quiet_loading():
    """No progress bars or backend notices while a shipped preset loads (it is part of the package)."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_bars = diffusers_logging.is_progress_bar_enabled()
    transformers_bars = transformers_logging.is_progress_bar_enabled()
    verbosity = transformers_logging.get_verbosity()
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(verbosity)
        if diffusers_bars:
            diffusers_logging.enable_progress_bar()
        if transformers_bars:
            transformers_logging.enable_progress_bar()
