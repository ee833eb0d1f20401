"""Named, offline-ready stacks that `FlexIPPipeline.from_pretrained(NAME)` and the CLI accept as `--base`.

- ``tiny-random``: toy-size random components (exercise code paths; images are noise).
"""

from __future__ import annotations

from dataclasses import dataclass

from flexip.errors import FlexIPInputError

PRESETS = ("tiny-random",)
DEFAULT_PRESET = "tiny-random"


def is_preset(name) -> bool:
    return isinstance(name, str) and name in PRESETS


def load_components(base: str, image_encoder: str | None = None, dino_encoder: str | None = None, torch_dtype=None) -> dict:
    """Every frozen component of a FlexIP pipeline (no adapter): vae, text_encoder, tokenizer, unet, scheduler,
    image_encoder, feature_extractor, dino_encoder, dino_processor.

    `base` is a preset name or a diffusers SD1.5-family checkpoint (folder or hub id); the encoder ids
    default to the SPEC's reference encoders (OpenCLIP ViT-H/14 from h94/IP-Adapter, DINOv2-L)."""
    if base == "tiny-random":
        from flexip.presets.tiny_random import tiny_base_components, tiny_reference_encoders

        components = {**tiny_base_components(), **tiny_reference_encoders()}
    else:
        from diffusers import StableDiffusionPipeline

        from flexip.encoders.loading import load_dino_encoder, load_image_encoder
        from flexip.models.adapter import DEFAULT_DINO_ENCODER, DEFAULT_IMAGE_ENCODER

        try:
            sd = StableDiffusionPipeline.from_pretrained(base, safety_checker=None, requires_safety_checker=False, torch_dtype=torch_dtype)
        except (OSError, ValueError) as error:
            from flexip.errors import CheckpointError

            raise CheckpointError(f"cannot load base model {base!r}: {error}") from None
        clip_model, clip_processor = load_image_encoder(image_encoder or DEFAULT_IMAGE_ENCODER, torch_dtype)
        dino_model, dino_processor = load_dino_encoder(dino_encoder or DEFAULT_DINO_ENCODER, torch_dtype)
        components = dict(
            vae=sd.vae, text_encoder=sd.text_encoder, tokenizer=sd.tokenizer, unet=sd.unet, scheduler=sd.scheduler,
            image_encoder=clip_model, feature_extractor=clip_processor, dino_encoder=dino_model, dino_processor=dino_processor,
        )
    if torch_dtype is not None:
        for value in components.values():
            if hasattr(value, "parameters"):
                value.to(dtype=torch_dtype)
    return components


def load_preset(name: str, adapter=None, torch_dtype=None):
    if name == "tiny-random":
        from flexip.models.adapter import FlexIPAdapter
        from flexip.presets.tiny_random import tiny_pipeline

        if adapter is not None and not isinstance(adapter, FlexIPAdapter):
            adapter = FlexIPAdapter.from_pretrained(adapter)
        pipe = tiny_pipeline(adapter=adapter)
        return pipe.to(dtype=torch_dtype) if torch_dtype is not None else pipe
    raise FlexIPInputError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}")


@dataclass
class DemoSetup:
    subjects: dict  # name -> list of reference PIL images
    prompts: list[str]
    steps: int
    guidance: float
    note: str


def demo_setup(name: str) -> DemoSetup:
    """Reference subjects and prompts that `flexip demo` renders with preset `name`."""
    if name == "tiny-random":
        from flexip.presets.tiny_random import demo_subjects

        return DemoSetup(demo_subjects(), ["a blob in the snow", "a red blob on the beach"], steps=4, guidance=5.0,
                         note="preset tiny-random: RANDOM weights, so the images are noise; this only shows the code path runs.")
    raise FlexIPInputError(f"no demo for {name!r}; available: {', '.join(PRESETS)}")
