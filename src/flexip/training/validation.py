"""Validation grids: what the adapter does at several γ, rendered with the real inference pipeline.

One row per (reference, prompt); the first column is the reference, then one column per γ. Every
render starts from the same seed, so grids of successive steps are directly comparable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
        for indices in dataset.indices_by_modality.values():
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
    The UNet must not have another adapter injected (the pipeline injects `adapter` itself). An SDXL base
    renders with diffusers' StableDiffusionXLPipeline and FlexIP attached to it (a copy of the adapter)."""
    if "text_encoder_2" in components:
        render = _SDXLRenderer(components, adapter)
    else:
        from flexip.pipelines.pipeline_flexip import FlexIPPipeline

        render = FlexIPPipeline(**components, adapter=adapter)
    render.set_progress_bar_config(disable=True)
    rows, row_labels = [], []
    for case in cases:
        images = render(
            case.prompt,
            reference_images=case.reference,
            gamma=list(gammas),
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            generator=torch.Generator(device="cpu").manual_seed(seed),
            height=resolution,
            width=resolution,
        ).images
        rows.append([case.reference, *images])
        row_labels.append(case.prompt[:40])
    labels = ["reference"] + [f"gamma = {g:.2f}" for g in gammas]
    return make_grid(rows, labels, row_labels)


class _SDXLRenderer:
    """FlexIPPipeline's call, for a γ sweep, on diffusers' SDXL pipeline with FlexIP attached during the call."""

    def __init__(self, components: dict, adapter):
        import copy

        from diffusers import StableDiffusionXLPipeline

        names = ("vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "unet", "scheduler")
        self.pipe = StableDiffusionXLPipeline(**{name: components[name] for name in names})
        self.adapter = copy.deepcopy(adapter)  # attaching moves it to the UNet's dtype; the trained one stays as it is
        self.encoders = {name: components[name] for name in ("image_encoder", "feature_extractor", "dino_encoder", "dino_processor")}

    def set_progress_bar_config(self, **kwargs) -> None:
        self.pipe.set_progress_bar_config(**kwargs)

    def __call__(self, prompt, *, reference_images, gamma, generator, **kwargs):
        from flexip.integrations import FlexIP

        seed = generator.initial_seed()
        with FlexIP.attach(self.pipe, self.adapter, **self.encoders) as flexip:
            conditioning = flexip.conditioning(reference_images, gamma=gamma)
            generators = [torch.Generator(device="cpu").manual_seed(seed) for _ in gamma]  # one noise for every γ
            return self.pipe(prompt, num_images_per_prompt=len(gamma), generator=generators, cross_attention_kwargs=conditioning, **kwargs)


def validate(trainer) -> Path | None:
    """A `Trainer`'s validation grid at its current step, with the weights a checkpoint would ship (main
    process): saved as OUTPUT_DIR/validation/step-N.png and, with TensorBoard on, logged there."""
    from flexip.data.images import save_image
    from flexip.training.checkpointing import checkpoint_name

    cfg, accelerator, path = trainer.config.logging, trainer.accelerator, None
    if accelerator.is_main_process:
        if trainer.validation_cases is None:
            trainer.validation_cases = validation_cases(cfg.validation_references, cfg.validation_prompts, trainer.dataset)
        training_model = accelerator.unwrap_model(trainer.model)
        training_model.detach_adapter()
        try:
            with accelerator.autocast():
                grid = render_validation_grid(
                    trainer.components,
                    trainer.release_adapter().eval(),
                    trainer.validation_cases,
                    cfg.validation_gammas,
                    resolution=trainer.resolution,
                    num_inference_steps=cfg.validation_steps,
                    guidance_scale=cfg.validation_guidance,
                    seed=trainer.config.runtime.seed,
                )
        finally:
            trainer.adapter.train()
            training_model.attach_adapter()
        path = save_image(grid, trainer.output_dir / "validation" / f"{checkpoint_name(trainer.step)}.png")
        if cfg.tensorboard:
            import numpy as np

            accelerator.get_tracker("tensorboard", unwrap=True).add_image("validation", np.asarray(grid), trainer.step, dataformats="HWC")
    accelerator.wait_for_everyone()
    return path
