"""The modality-aware training gate and condition dropout: pure functions of a torch.Generator.

SPEC §3: each sample's γ is drawn from its modality's range (image U[0.5, 1] teaches the preservation
branch to lock identity, video U[0, 0.5] teaches the personalization branch to deform), and the
conditions are dropped for classifier-free guidance: text only (5%), image only (5%), both (5%); the
three events are mutually exclusive, decided by one uniform draw per sample.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from flexip.errors import FlexIPInputError


def sample_gammas(modalities: Sequence[str], ranges: Mapping[str, tuple[float, float]], generator: torch.Generator | None = None) -> torch.Tensor:
    """γ_i ~ U[low_m, high_m] for sample i of modality m. Returns a CPU float tensor (batch,)."""
    unknown = sorted(set(modalities) - set(ranges))
    if unknown:
        raise FlexIPInputError(f"no gate range for modality {unknown[0]!r}; known: {', '.join(sorted(ranges))}")
    low = torch.tensor([ranges[m][0] for m in modalities], dtype=torch.float32)
    high = torch.tensor([ranges[m][1] for m in modalities], dtype=torch.float32)
    uniform = torch.rand(len(modalities), generator=generator)
    return low + (high - low) * uniform


@dataclass
class DropoutMasks:
    """Per-sample booleans (CPU): which samples lose their text, which lose their reference image."""

    drop_text: torch.Tensor  # (batch,) bool
    drop_image: torch.Tensor  # (batch,) bool


def sample_dropout(batch_size: int, text: float, image: float, both: float, generator: torch.Generator | None = None) -> DropoutMasks:
    """One uniform u per sample: u < text → text only dropped; next `image` → image only; next `both` → both."""
    if min(text, image, both) < 0 or text + image + both > 1:
        raise FlexIPInputError(f"dropout rates must be ≥ 0 with a sum ≤ 1, got text={text}, image={image}, both={both}")
    u = torch.rand(batch_size, generator=generator)
    text_only = u < text
    image_only = (u >= text) & (u < text + image)
    both_dropped = (u >= text + image) & (u < text + image + both)
    return DropoutMasks(drop_text=text_only | both_dropped, drop_image=image_only | both_dropped)


def apply_dropout(
    masks: DropoutMasks,
    text_embeds: torch.Tensor,
    empty_text_embeds: torch.Tensor,
    clip_embeds: torch.Tensor,
    dino_tokens: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Dropped text → the empty-prompt embedding (1, seq, dim); dropped image → zero features."""
    device = text_embeds.device
    drop_text = masks.drop_text.to(device).view(-1, 1, 1)
    keep_image = (~masks.drop_image).to(device)
    text_embeds = torch.where(drop_text, empty_text_embeds.to(text_embeds.dtype).expand_as(text_embeds), text_embeds)
    clip_embeds = clip_embeds * keep_image.view(-1, 1).to(clip_embeds.dtype)
    dino_tokens = dino_tokens * keep_image.view(-1, 1, 1).to(dino_tokens.dtype)
    return text_embeds, clip_embeds, dino_tokens
