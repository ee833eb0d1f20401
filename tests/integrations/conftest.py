"""Tiny diffusers pipelines of every kind, FlexIP attached to them, and a reference image (all offline)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from PIL import Image

STEPS = 2
PROMPT = "a dog in the snow"


@pytest.fixture(autouse=True, scope="package")
def _quiet_and_single_threaded():
    """One torch thread (the toy models run fastest so on a busy 2-core machine); diffusers' notices off."""
    from diffusers.utils import logging as diffusers_logging

    threads, verbosity = torch.get_num_threads(), diffusers_logging.get_verbosity()
    torch.set_num_threads(1)
    diffusers_logging.set_verbosity_error()
    yield
    torch.set_num_threads(threads)
    diffusers_logging.set_verbosity(verbosity)


@pytest.fixture(scope="package")
def encoders():
    from flexip.testing import tiny_reference_encoders

    return tiny_reference_encoders(seed=0)


@pytest.fixture(scope="package")
def reference_image():
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 20, 3), dtype=np.uint8))


def condition_image(seed: int = 1) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8))


def mask_image() -> Image.Image:
    mask = np.zeros((16, 16), np.uint8)
    mask[:, 8:] = 255  # repaint the right half
    return Image.fromarray(mask)


@dataclass(frozen=True)
class Case:
    """One kind of diffusers pipeline and the inputs of a call."""

    name: str
    family: str  # "sd", "sdxl", "animatediff"
    kind: str  # "text2img", "img2img", "inpaint", "controlnet", "video"
    steps: int = STEPS
    inputs: dict = field(default_factory=dict)

    def batch_of(self, count: int) -> dict:
        """The call arguments for `count` outputs of the prompt: `num_images_per_prompt`, or for AnimateDiff (whose
        pipeline always makes one video per prompt) the prompt `count` times; both lay rows out the same way."""
        if self.family == "animatediff":
            return {"prompt": [PROMPT] * count}
        return {"num_images_per_prompt": count}

    def build(self):
        from flexip.testing.pipelines import tiny_animatediff_pipeline, tiny_pipeline_of_kind

        return tiny_animatediff_pipeline() if self.family == "animatediff" else tiny_pipeline_of_kind(self.family, self.kind)

    def call_inputs(self) -> dict:
        inputs = {"height": 16, "width": 16, **self.inputs}
        if self.kind in ("img2img", "inpaint"):
            inputs.update(image=condition_image(2), strength=0.9)
        if self.kind == "inpaint":
            inputs["mask_image"] = mask_image()
        if self.kind == "controlnet":
            inputs["image"] = condition_image(3)
        if self.family == "animatediff":
            inputs["num_frames"] = 2
        return inputs


CASES = [
    Case("sd", "sd", "text2img"),
    Case("sd-img2img", "sd", "img2img", steps=3),
    Case("sd-inpaint", "sd", "inpaint", steps=3),
    Case("sd-controlnet", "sd", "controlnet"),
    Case("sdxl", "sdxl", "text2img"),
    Case("sdxl-img2img", "sdxl", "img2img", steps=3),
    Case("sdxl-inpaint", "sdxl", "inpaint", steps=3),
    Case("sdxl-controlnet", "sdxl", "controlnet"),
    Case("animatediff", "animatediff", "video"),
]


def output(pipe, case: Case, seed: int = 0, generator=None, **kwargs) -> np.ndarray:
    """The pipeline's output as one float array: images (n, h, w, 3) or videos (n, frames, h, w, 3)."""
    generator = generator if generator is not None else torch.Generator().manual_seed(seed)
    arguments = {"prompt": PROMPT, **case.call_inputs(), **kwargs}
    result = pipe(num_inference_steps=case.steps, generator=generator, output_type="np", **arguments)
    return np.asarray(result.frames if case.family == "animatediff" else result.images)
