"""Named, offline-ready stacks that `FlexIPPipeline.from_pretrained(NAME)` and the CLI accept as `--base`.

- ``miniworld``: the miniature stack trained by the project on the procedural miniworld (32×32 images;
  `flexip miniworld build` rebuilds it; folders and manifest in ``presets/miniworld/``, see docs/miniworld.md).
- ``tiny-random``: toy-size random components (exercise code paths; images are noise).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flexip.errors import FlexIPInputError

PRESETS = ("miniworld", "tiny-random")
MINIWORLD_DIR = Path(__file__).parent / "miniworld"
DEFAULT_PRESET = "miniworld" if (MINIWORLD_DIR / "manifest.json").is_file() else "tiny-random"


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
    elif base == "miniworld":  # plain local folders, through the same path as any checkpoint
        root = miniworld_dir()
        with _quiet_loading():
            return load_components(str(root / "base"), image_encoder or str(root / "image_encoder"), dino_encoder or str(root / "dino"), torch_dtype)
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
    if name == "miniworld":
        from flexip.models.adapter import FlexIPAdapter
        from flexip.pipelines.pipeline_flexip import FlexIPPipeline

        if not isinstance(adapter, FlexIPAdapter):
            with _quiet_loading():
                adapter = FlexIPAdapter.from_pretrained(str(adapter or miniworld_dir() / "adapter"))
        pipe = FlexIPPipeline(**load_components("miniworld", torch_dtype=torch_dtype), adapter=adapter.eval())
        if torch_dtype is not None:
            pipe.adapter.to(dtype=torch_dtype)
        pipe.set_progress_bar_config(disable=True)
        return pipe
    raise FlexIPInputError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}")


@dataclass
class DemoSetup:
    subjects: dict  # name -> list of reference PIL images
    prompts: list[str]
    steps: int
    guidance: float
    note: str


@contextmanager
def _quiet_loading():
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


def miniworld_dir() -> Path:
    """The shipped miniworld preset folder; an error that says how to build it when it is missing."""
    if not (MINIWORLD_DIR / "manifest.json").is_file():
        raise FlexIPInputError(
            f"the miniworld preset is not built ({MINIWORLD_DIR} has no manifest.json); "
            "run `flexip miniworld build runs/miniworld` or use --base tiny-random"
        )
    return MINIWORLD_DIR


#: `flexip demo` on the miniworld: held-out identities (never trained on), their class noun, prompts.
MINIWORLD_DEMO = {"subjects": (2, 8), "prompts": ("a {noun} on the beach", "a {noun} in the snow", "a red {noun} at night"),
                  "steps": 12, "guidance": 3.0}


def miniworld_demo_subjects(indices=MINIWORLD_DEMO["subjects"], world_seed: int = 0) -> dict:
    """Held-out identities rendered by the world renderer on the plain backdrop, as reference images."""
    from flexip_miniworld.identity import make_identity
    from flexip_miniworld.render import render_image

    subjects = {}
    for index in indices:
        identity = make_identity("heldout", index, world_seed)
        subjects[f"{identity.name} ({identity.noun})"] = [render_image(identity)]
    return subjects


def demo_setup(name: str) -> DemoSetup:
    """Reference subjects and prompts that `flexip demo` renders with preset `name`."""
    if name == "tiny-random":
        from flexip.presets.tiny_random import demo_subjects

        return DemoSetup(demo_subjects(), ["a blob in the snow", "a red blob on the beach"], steps=4, guidance=5.0,
                         note="preset tiny-random: RANDOM weights, so the images are noise; this only shows the code path runs.")
    if name == "miniworld":
        from flexip_miniworld.identity import make_identity

        nouns = {make_identity("heldout", i).noun for i in MINIWORLD_DEMO["subjects"]}
        noun = sorted(nouns)[0] if len(nouns) == 1 else "{noun}"
        subjects = miniworld_demo_subjects()
        prompts = [p.format(noun=noun) for p in MINIWORLD_DEMO["prompts"]]
        return DemoSetup(subjects, prompts, steps=MINIWORLD_DEMO["steps"], guidance=MINIWORLD_DEMO["guidance"],
                         note="preset miniworld: a 32×32 stack trained from scratch by `flexip miniworld build`; "
                              "references are held-out identities the adapter never saw (see docs/miniworld.md).")
    raise FlexIPInputError(f"no demo for {name!r}; available: {', '.join(PRESETS)}")
