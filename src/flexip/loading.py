"""Loading a FlexIP stack by id: the one place where a base model, the reference encoders and an adapter
are turned from names into objects (below the pipelines, the trainer and the evaluation, which all call it).

An id is a local folder, a hub id (`owner/name`, optionally `:subfolder`), or a preset: a preset name as
the base (`miniworld`), or `NAME:SUBFOLDER` for one of its folders (`miniworld:image_encoder`). A preset is
only data (`flexip.presets`), loaded through exactly the same calls as any folder.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import torch

from flexip.errors import CheckpointError, FlexIPInputError
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


def component_dtype(kwargs: dict, name: str) -> torch.dtype | None:
    """The dtype diffusers' loading keywords give component `name`: `dtype` (or the deprecated `torch_dtype`),
    either one dtype or a dict per component with a "default" (diffusers' convention)."""
    dtype = kwargs.get("dtype", kwargs.get("torch_dtype"))
    if isinstance(dtype, dict):
        return dtype.get(name, dtype.get("default"))
    return dtype


def is_saved_pipeline(path, class_name: str) -> bool:
    """True when `path` is a folder holding a saved `class_name` pipeline (its model_index.json says so)."""
    import json
    from pathlib import Path

    index = Path(str(path)) / "model_index.json"
    try:
        if not index.is_file():
            return False
    except OSError as error:  # e.g. a name too long for the filesystem
        raise FlexIPInputError(f"cannot use {str(path)[:80]}...: {error.strerror}") from None
    try:
        return json.loads(index.read_text()).get("_class_name") == class_name
    except (OSError, json.JSONDecodeError):
        return False


def base_pipeline_class(folder: str):
    """The diffusers pipeline class of a base checkpoint: SDXL when its model_index.json names an SDXL
    pipeline, else Stable Diffusion (1.5 family)."""
    from diffusers import DiffusionPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline

    try:
        class_name = DiffusionPipeline.load_config(folder).get("_class_name", "")
    except (OSError, ValueError) as error:
        raise CheckpointError(f"cannot load base model {folder!r}: {error}") from None
    return StableDiffusionXLPipeline if "XL" in class_name else StableDiffusionPipeline


def load_components(base: str, image_encoder: str | None = None, dino_encoder: str | None = None, torch_dtype=None, **diffusers_kwargs) -> dict:
    """Every frozen component of a FlexIP stack (no adapter): `FROZEN_COMPONENTS`, and for an SDXL base its
    second text encoder and tokenizer (`text_encoder_2`, `tokenizer_2`).

    `base` is a preset name or a diffusers SD1.5-family or SDXL checkpoint (folder or hub id). `torch_dtype`
    and `diffusers_kwargs` are diffusers' loading keywords (`dtype`, also a dict per component, `variant`,
    `device_map`, `use_safetensors`, ...); the reference encoders take their dtype from the same keywords."""
    from flexip.encoders.loading import load_dino_encoder, load_image_encoder

    kwargs = dict(diffusers_kwargs)
    if torch_dtype is not None:
        kwargs["dtype"] = torch_dtype
    elif "torch_dtype" in kwargs:  # diffusers deprecates `torch_dtype`
        kwargs["dtype"] = kwargs.pop("torch_dtype")
    if kwargs.get("dtype") is None:
        kwargs.pop("dtype", None)
    default_image, default_dino = default_encoders(base)
    folder = str(get_preset(base).path("base")) if is_preset(base) else base
    with quiet_loading() if is_preset(base) else nullcontext():
        pipeline_class = base_pipeline_class(folder)
        extra = {"safety_checker": None, "requires_safety_checker": False} if "safety_checker" in pipeline_class._optional_components else {}
        try:
            loaded = pipeline_class.from_pretrained(folder, **extra, **kwargs)
        except (OSError, ValueError) as error:
            raise CheckpointError(f"cannot load base model {base!r}: {error}") from None
        clip_model, clip_processor = load_image_encoder(resolve_preset_id(image_encoder or default_image), component_dtype(kwargs, "image_encoder"))
        dino_model, dino_processor = load_dino_encoder(resolve_preset_id(dino_encoder or default_dino), component_dtype(kwargs, "dino_encoder"))
    components = {name: getattr(loaded, name) for name in ("vae", "text_encoder", "tokenizer", "unet", "scheduler")}
    for name in ("text_encoder_2", "tokenizer_2"):
        if getattr(loaded, name, None) is not None:
            components[name] = getattr(loaded, name)
    components.update(image_encoder=clip_model, feature_extractor=clip_processor, dino_encoder=dino_model, dino_processor=dino_processor)
    return components


def load_adapter(adapter, base: str | None = None, allow_pickle: bool = False, torch_dtype: torch.dtype | None = None):
    """A FlexIPAdapter from an object, a folder, a hub id or `PRESET:adapter`; None takes the preset base's own."""
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


def encoder_components(name: str, model_id: str, dtype) -> dict:
    """The (model, processor) components of a reference encoder given by id, for a saved pipeline's overrides."""
    from flexip.encoders.loading import load_dino_encoder, load_image_encoder

    if name == "image_encoder":
        model, processor = load_image_encoder(resolve_preset_id(model_id), dtype)
        return {"image_encoder": model, "feature_extractor": processor}
    model, processor = load_dino_encoder(resolve_preset_id(model_id), dtype)
    return {"dino_encoder": model, "dino_processor": processor}
