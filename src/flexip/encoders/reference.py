"""Reference encoders: what FlexIP sees of the subject.

- high level: `CLIPVisionModelWithProjection` → the projected global embedding c_cls (`image_embeds`);
- low level: `Dinov2Model` → patch tokens F_dino (CLS dropped) of a configurable hidden layer.
Each encoder keeps its own image processor; images reach the processors as 8-bit PIL images.

A subject may have several reference images: by default their embeddings are averaged
(``multi_reference="mean"``: c_cls averaged, DINO tokens averaged position by position); with
``"concat"`` c_cls is averaged and the DINO tokens of all references are concatenated, so the
preservation adapter's queries can attend to every view.

An adapter warm-started from IP-Adapter Plus also reads the CLIP encoder's hidden states (all tokens of
the penultimate layer, as IP-Adapter Plus does): `clip_hidden_layer=-2` adds them as `clip_tokens`
(averaged over a subject's references in both modes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from flexip.data.images import FitMode, load_image
from flexip.errors import FlexIPInputError

MultiReference = Literal["mean", "concat"]


@dataclass
class ReferenceEmbeds:
    """Encoded references, one row per subject. Reusable across calls (changing γ never re-encodes)."""

    clip_embeds: torch.Tensor  # (subjects, clip_dim)
    dino_tokens: torch.Tensor  # (subjects, patches, dino_dim)
    clip_tokens: torch.Tensor | None = None  # (subjects, tokens, clip_hidden): only for adapters that read them

    def __post_init__(self):
        if self.clip_embeds.ndim != 2 or self.dino_tokens.ndim != 3:
            raise FlexIPInputError(
                f"reference_embeds must hold clip_embeds (subjects, dim) and dino_tokens (subjects, patches, dim); "
                f"got {tuple(self.clip_embeds.shape)} and {tuple(self.dino_tokens.shape)}"
            )
        if self.clip_embeds.shape[0] != self.dino_tokens.shape[0]:
            raise FlexIPInputError("reference_embeds: clip_embeds and dino_tokens have different numbers of subjects")
        if self.clip_tokens is not None and (self.clip_tokens.ndim != 3 or self.clip_tokens.shape[0] != self.clip_embeds.shape[0]):
            raise FlexIPInputError(f"reference_embeds: clip_tokens must be (subjects, tokens, dim), got {tuple(self.clip_tokens.shape)}")

    def __len__(self) -> int:
        return self.clip_embeds.shape[0]

    def _map(self, function) -> ReferenceEmbeds:
        tokens = None if self.clip_tokens is None else function(self.clip_tokens)
        return ReferenceEmbeds(function(self.clip_embeds), function(self.dino_tokens), tokens)

    def to(self, device=None, dtype=None) -> ReferenceEmbeds:
        return self._map(lambda tensor: tensor.to(device=device, dtype=dtype))

    def select(self, index: torch.Tensor) -> ReferenceEmbeds:
        return self._map(lambda tensor: tensor[index])

    def zeros_like(self) -> ReferenceEmbeds:
        """The "no image" condition (classifier-free guidance, condition dropout): zero features."""
        return self._map(torch.zeros_like)

    def save(self, path) -> None:
        from safetensors.torch import save_file

        tensors = {"clip_embeds": self.clip_embeds, "dino_tokens": self.dino_tokens}
        if self.clip_tokens is not None:
            tensors["clip_tokens"] = self.clip_tokens
        save_file({key: value.contiguous().cpu() for key, value in tensors.items()}, str(path))

    @classmethod
    def load(cls, path) -> ReferenceEmbeds:
        from safetensors.torch import load_file

        tensors = load_file(str(path))
        return cls(tensors["clip_embeds"], tensors["dino_tokens"], tensors.get("clip_tokens"))


def group_subjects(images) -> list[list]:
    """One image → one subject; a flat list → one subject with several references;
    a list of lists → one subject per inner list."""
    if images is None:
        raise FlexIPInputError("no reference images given")
    if not isinstance(images, Sequence) or isinstance(images, (str, bytes)):
        return [[images]]
    if len(images) == 0:
        raise FlexIPInputError("reference_images is empty")
    if all(isinstance(item, Sequence) and not isinstance(item, (str, bytes)) for item in images):
        if any(len(item) == 0 for item in images):
            raise FlexIPInputError("every subject needs at least one reference image")
        return [list(item) for item in images]
    return [list(images)]


class ReferenceEncoder:
    """Runs both frozen encoders in batches. Holds references to the models; owns no weights."""

    def __init__(
        self,
        image_encoder,
        image_processor,
        dino_encoder,
        dino_processor,
        dino_layer: int = -1,
        fit: FitMode = "center_crop",
        multi_reference: MultiReference = "mean",
        batch_size: int = 16,
        clip_hidden_layer: int | None = None,
    ):
        if multi_reference not in ("mean", "concat"):
            raise FlexIPInputError(f"multi_reference must be 'mean' or 'concat', got {multi_reference!r}")
        self.image_encoder = image_encoder
        self.image_processor = image_processor
        self.dino_encoder = dino_encoder
        self.dino_processor = dino_processor
        self.dino_layer = dino_layer
        self.fit = fit
        self.multi_reference = multi_reference
        self.batch_size = batch_size
        self.clip_hidden_layer = clip_hidden_layer

    def _pixels(self, processor, images, model) -> torch.Tensor:
        pixels = processor(images=images, return_tensors="pt").pixel_values
        parameter = next(model.parameters())
        return pixels.to(device=parameter.device, dtype=parameter.dtype)

    @torch.no_grad()
    def encode_images(self, images: list) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat list of images → (clip_embeds (n, clip_dim), dino_tokens (n, patches, dino_dim))."""
        embeds = self.encode_each(images)
        return embeds.clip_embeds, embeds.dino_tokens

    @torch.no_grad()
    def encode_each(self, images: list) -> ReferenceEmbeds:
        """Flat list of images → one `ReferenceEmbeds` row per image (with clip_tokens if `clip_hidden_layer`)."""
        clip_rows, dino_rows, token_rows = [], [], []
        hidden = self.clip_hidden_layer is not None
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            pixels = self._pixels(self.image_processor, chunk, self.image_encoder)
            clip_out = self.image_encoder(pixel_values=pixels, output_hidden_states=True) if hidden else self.image_encoder(pixel_values=pixels)
            clip_rows.append(clip_out.image_embeds)
            if hidden:
                token_rows.append(clip_out.hidden_states[self.clip_hidden_layer])
            dino_pixels = self._pixels(self.dino_processor, chunk, self.dino_encoder)
            if self.dino_layer == -1:
                dino_hidden = self.dino_encoder(pixel_values=dino_pixels).last_hidden_state
            else:
                dino_hidden = self.dino_encoder(pixel_values=dino_pixels, output_hidden_states=True).hidden_states[self.dino_layer]
            dino_rows.append(dino_hidden[:, 1:])  # (n, 1 + patches, dim) -> patch tokens only
        return ReferenceEmbeds(torch.cat(clip_rows), torch.cat(dino_rows), torch.cat(token_rows) if hidden else None)

    def encode(self, images, multi_reference: MultiReference | None = None) -> ReferenceEmbeds:
        mode = multi_reference or self.multi_reference
        subjects = group_subjects(images)
        counts = [len(subject) for subject in subjects]
        if mode == "concat" and len(set(counts)) > 1:
            raise FlexIPInputError(f"multi_reference='concat' needs the same number of references per subject, got {counts}")
        flat = [load_image(image, fit=self.fit) for subject in subjects for image in subject]
        each = self.encode_each(flat)
        clip_rows, dino_rows, token_rows, start = [], [], [], 0
        for count in counts:
            clip_rows.append(each.clip_embeds[start : start + count].mean(dim=0))
            tokens = each.dino_tokens[start : start + count]  # (count, patches, dim)
            dino_rows.append(tokens.mean(dim=0) if mode == "mean" else tokens.reshape(-1, tokens.shape[-1]))
            if each.clip_tokens is not None:
                token_rows.append(each.clip_tokens[start : start + count].mean(dim=0))
            start += count
        return ReferenceEmbeds(torch.stack(clip_rows), torch.stack(dino_rows), torch.stack(token_rows) if token_rows else None)
