"""The paper's metrics as pure functions over embeddings (tensors in, tensors out, one value per image).

Loading the networks that produce the embeddings lives in `flexip.evaluation.backbones`; nothing here
loads a model or touches an image, so every formula can be read (and tested) on its own.

| metric    | group           | definition (raw cosine, not ×100)                                          |
|-----------|-----------------|----------------------------------------------------------------------------|
| CLIP-T    | personalization | cos(CLIP image emb. of the generated image, CLIP text emb. of its prompt)   |
| CLIP-I    | preservation    | cos(CLIP image emb. of the generated image, of the reference image(s))     |
| DINO-I    | preservation    | cos(DINO CLS token of the generated image, of the reference image(s))      |
| CLIP-IQA  | quality         | softmax(100 · [cos(img, "Good photo."), cos(img, "Bad photo.")])[0]         |
| Aesthetic | quality         | LAION aesthetic v2 head on the L2-normalized CLIP ViT-L/14 image embedding  |

(torchmetrics' `CLIPScore` / `CLIPImageQualityAssessment` would cover some of these, but torchmetrics
1.9 crashes with transformers 5, so they are written here directly on transformers models.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from flexip.errors import FlexIPInputError

#: Metric names, in the column order of the paper's Table 1. Every metric is "higher is better".
METRICS: tuple[str, ...] = ("CLIP-T", "CLIP-I", "DINO-I", "CLIP-IQA", "Aesthetic")

#: The antonym pair of CLIP-IQA (Wang et al., AAAI 2023), "quality" attribute.
IQA_ANCHORS: tuple[str, str] = ("Good photo.", "Bad photo.")

#: CLIP's trained logit scale, fixed at its ceiling (exp(4.6052) = 100) in the released models.
IQA_LOGIT_SCALE = 100.0


def validate_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    """Metric names in canonical order; an unknown name is an error that lists the known ones."""
    if isinstance(metrics, str):
        metrics = [part.strip() for part in metrics.split(",") if part.strip()]
    canonical = {name.lower(): name for name in METRICS}
    unknown = [name for name in metrics if str(name).lower() not in canonical]
    if unknown or not metrics:
        raise FlexIPInputError(f"unknown metric(s) {unknown or list(metrics)!r}; choose from {', '.join(METRICS)}")
    chosen = {canonical[str(name).lower()] for name in metrics}
    return tuple(name for name in METRICS if name in chosen)


def _check_matrix(name: str, embeds: torch.Tensor) -> None:
    if not isinstance(embeds, torch.Tensor) or embeds.ndim != 2:
        shape = tuple(embeds.shape) if isinstance(embeds, torch.Tensor) else type(embeds).__name__
        raise FlexIPInputError(f"{name} must be a 2-D tensor [N, D], got {shape}")
    if embeds.shape[0] == 0:
        raise FlexIPInputError(f"{name} is empty: need at least one embedding")


def l2_normalize(embeds: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit length (computed in float32 for stability)."""
    return torch.nn.functional.normalize(embeds.float(), dim=-1)


def paired_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """cos(a[i], b[i]) for each row i. a, b: [N, D] → [N]."""
    _check_matrix("a", a)
    _check_matrix("b", b)
    if a.shape != b.shape:
        raise FlexIPInputError(f"paired embeddings must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return (l2_normalize(a) * l2_normalize(b)).sum(dim=-1)


def mean_cosine_to_set(embeds: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """For each row of `embeds` [N, D], the mean cosine similarity to all rows of `references` [M, D] → [N].

    With one reference this is plain cosine similarity; with a subject's M reference photos it is the
    DreamBench convention (average over every generated × real pair).
    """
    _check_matrix("embeds", embeds)
    _check_matrix("references", references)
    if embeds.shape[1] != references.shape[1]:
        raise FlexIPInputError(f"embeddings and references have different widths: {embeds.shape[1]} vs {references.shape[1]}")
    similarity = l2_normalize(embeds) @ l2_normalize(references).T  # [N, M]
    return similarity.mean(dim=1)


def clip_t(image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
    """CLIP-T: cosine between each generated image's CLIP embedding and its own prompt's. [N, D] × [N, D] → [N]."""
    return paired_cosine(image_embeds, text_embeds)


def clip_i(image_embeds: torch.Tensor, reference_embeds: torch.Tensor) -> torch.Tensor:
    """CLIP-I: mean cosine between each generated image's CLIP embedding and the reference embeddings. → [N]."""
    return mean_cosine_to_set(image_embeds, reference_embeds)


def dino_i(image_cls: torch.Tensor, reference_cls: torch.Tensor) -> torch.Tensor:
    """DINO-I: mean cosine between each generated image's DINO CLS token and the references'. → [N]."""
    return mean_cosine_to_set(image_cls, reference_cls)


def clip_iqa(
    image_embeds: torch.Tensor,
    good_text_embed: torch.Tensor,
    bad_text_embed: torch.Tensor,
    logit_scale: float = IQA_LOGIT_SCALE,
) -> torch.Tensor:
    """CLIP-IQA: probability of the "good" anchor in a 2-way softmax over scaled cosines. → [N] in [0, 1].

    `good_text_embed` / `bad_text_embed`: [D] or [1, D] CLIP text embeddings of the antonym pair
    (`IQA_ANCHORS`). With identical anchors the result is exactly 0.5.
    """
    _check_matrix("image_embeds", image_embeds)
    anchors = torch.stack([good_text_embed.reshape(-1), bad_text_embed.reshape(-1)])  # [2, D]
    if anchors.shape[1] != image_embeds.shape[1]:
        raise FlexIPInputError(f"anchor text embeddings are {anchors.shape[1]}-d but image embeddings are {image_embeds.shape[1]}-d")
    logits = logit_scale * (l2_normalize(image_embeds) @ l2_normalize(anchors).T)  # [N, 2]
    return logits.softmax(dim=-1)[:, 0]


def aesthetic(image_embeds: torch.Tensor, head: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Aesthetic score: the LAION v2 head applied to L2-normalized CLIP ViT-L/14 image embeddings. → [N].

    `head` maps [N, 768] → [N, 1] (see `backbones.AestheticHead`); scores are roughly on a 1–10 scale.
    """
    _check_matrix("image_embeds", image_embeds)
    normalized = l2_normalize(image_embeds)
    parameter = next(iter(getattr(head, "parameters", lambda: iter(()))()), None)
    if parameter is not None:
        normalized = normalized.to(device=parameter.device, dtype=parameter.dtype)
    with torch.no_grad():
        scores = head(normalized)
    if scores.ndim != 2 or scores.shape[1] != 1:
        raise FlexIPInputError(f"the aesthetic head must return [N, 1], got {tuple(scores.shape)}")
    return scores[:, 0].float()
