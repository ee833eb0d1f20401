"""Loading the frozen reference encoders by id (hub id, `repo:subfolder`, or local folder)."""

from __future__ import annotations

import torch

from flexip.errors import CheckpointError


def split_model_id(model_id: str) -> tuple[str, str | None]:
    """'h94/IP-Adapter:models/image_encoder' → ('h94/IP-Adapter', 'models/image_encoder')."""
    if ":" in model_id and not model_id.startswith(("/", ".")) and "://" not in model_id:
        repo, subfolder = model_id.split(":", 1)
        return repo, subfolder or None
    return model_id, None


def _load(loader, model_id: str, **kwargs):
    repo, subfolder = split_model_id(model_id)
    try:
        if subfolder:
            return loader.from_pretrained(repo, subfolder=subfolder, **kwargs)
        return loader.from_pretrained(repo, **kwargs)
    except OSError as error:
        raise CheckpointError(f"cannot load {model_id!r}: {error}") from None


def load_image_encoder(model_id: str, torch_dtype: torch.dtype | None = None):
    """CLIPVisionModelWithProjection + its image processor (CLIP defaults if the folder has none)."""
    # The PIL backends of the image processors: the torchvision ones need torchvision, which FlexIP avoids.
    from transformers import CLIPImageProcessorPil, CLIPVisionModelWithProjection

    model = _load(CLIPVisionModelWithProjection, model_id, dtype=torch_dtype)
    try:
        processor = _load(CLIPImageProcessorPil, model_id)
    except CheckpointError:
        processor = CLIPImageProcessorPil()  # OpenAI CLIP preprocessing: 224 px, its mean/std
    return model.eval(), processor


def load_dino_encoder(model_id: str, torch_dtype: torch.dtype | None = None):
    """Dinov2Model + its image processor."""
    from transformers import AutoImageProcessor, Dinov2Model

    return _load(Dinov2Model, model_id, dtype=torch_dtype).eval(), _load(AutoImageProcessor, model_id, backend="pil")
