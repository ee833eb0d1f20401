"""Validation grids: what the adapter does at several γ, rendered with the real inference pipeline.

One row per (reference, prompt); the first column is the reference, then one column per γ. Every
render starts from the same seed, so grids of successive steps are directly comparable.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image

from flexip.data.images import load_image
from flexip.visualization import make_grid


@dataclass
class ValidationCase:
    reference: Image.Image
    prompt: str


def validation_cases(references: list[str], prompts: list[str], dataset=None) -> list[ValidationCase]:
    """The given reference images × prompts; without references, the reference and caption of the first
    sample of each modality in `dataset` (its own caption unless prompts are given)."""
    images: list[tuple[Image.Image, str | None]] = [(load_image(path), None) for path in references]
    if not images and dataset is not None:
        for modality, indices in dataset.indices_by_modality.items():
            if indices:
                sample = dataset[(indices[0], 0)]
                images.append((sample["reference"], sample["caption"]))
    cases = []
    for image, caption in images:
        for prompt in prompts or [caption or ""]:
            cases.append(ValidationCase(image, prompt))
    return cases


@torch.no_grad()
def render_validation_grid(
    components: dict,
    adapter,
    cases: list[ValidationCase],
    gammas: list[float],
    *,
    resolution: int,
    num_inference_steps: int = 20,
    guidance_scale: float = 7.5,
    seed: int = 0,
) -> Image.Image:
    """Render every case at every γ (one batched sweep per case) and lay them out as a labelled grid.
    The UNet must not have another adapter injected (the pipeline injects `adapter` itself)."""
    from flexip.pipelines.pipeline_flexip import FlexIPPipeline

    pipe = FlexIPPipeline(**components, adapter=adapter)
    pipe.set_progress_bar_config(disable=True)
    rows, row_labels = [], []
    for case in cases:
        generator = torch.Generator(device="cpu").manual_seed(seed)
        result = pipe(
            case.prompt, reference_images=case.reference, gamma=list(gammas), num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale, generator=generator, height=resolution, width=resolution,
        )
        rows.append([case.reference, *result.images])
        row_labels.append(case.prompt[:40])
    labels = ["reference"] + [f"gamma = {g:.2f}" for g in gammas]
    return make_grid(rows, labels, row_labels)
