"""The checks of a `FlexIPPipeline` call's inputs, made once at the start of the call (before any model
runs), and the message when its latents stop being finite. Pure functions of the arguments."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from flexip.encoders.reference import ReferenceEmbeds
from flexip.errors import FlexIPInputError


def positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FlexIPInputError(f"{name} must be a whole number ≥ 1, got {value!r}")
    return value


def check_counts(num_inference_steps, num_images_per_prompt, scheduler) -> None:
    """Steps and images per prompt are whole numbers ≥ 1; no more steps than the scheduler's training steps."""
    positive_int(num_inference_steps, "num_inference_steps")
    positive_int(num_images_per_prompt, "num_images_per_prompt")
    most = getattr(scheduler.config, "num_train_timesteps", None)
    if most is not None and num_inference_steps > most:
        raise FlexIPInputError(f"num_inference_steps must be at most the scheduler's {most} training steps, got {num_inference_steps}")


def check_guidance(guidance_scale) -> float:
    """A finite number ≥ 0 (1 or less turns guidance off)."""
    if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, (int, float)):
        raise FlexIPInputError(f"guidance_scale must be a number, got {guidance_scale!r}")
    try:
        value = float(guidance_scale)
    except OverflowError:  # an int beyond the float range
        value = math.inf
    if not math.isfinite(value) or value < 0:
        raise FlexIPInputError(f"guidance_scale must be a finite number ≥ 0 (1 or less turns guidance off), got {guidance_scale!r}")
    return value


def check_size(height, width, factor: int) -> None:
    """Height and width are positive whole multiples of the VAE's downscaling factor."""
    for name, value in (("height", height), ("width", width)):
        positive_int(value, name)
    if height % factor or width % factor:
        raise FlexIPInputError(f"height and width must be multiples of {factor}, got {height}×{width}")


def prompt_list(prompt, prompt_embeds) -> list[str] | None:
    if prompt is None:
        if prompt_embeds is None:
            raise FlexIPInputError("give a prompt (or prompt_embeds)")
        return None
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, Sequence) and prompt and all(isinstance(p, str) for p in prompt):
        return list(prompt)
    raise FlexIPInputError(f"prompt must be a string or a non-empty list of strings, got {type(prompt).__name__}")


def negative_prompts(negative_prompt, num_prompts: int) -> list[str]:
    negatives = prompt_list(negative_prompt or "", None)
    negatives = negatives * num_prompts if len(negatives) == 1 else negatives
    if len(negatives) != num_prompts:
        raise FlexIPInputError(f"got {len(negatives)} negative prompts for {num_prompts} prompts")
    return negatives


def per_prompt(reference: ReferenceEmbeds, num_prompts: int) -> ReferenceEmbeds:
    if not isinstance(reference, ReferenceEmbeds):
        raise FlexIPInputError(f"reference_embeds must be a ReferenceEmbeds (from pipe.encode_reference), got {type(reference).__name__}")
    if len(reference) == num_prompts:
        return reference
    if len(reference) == 1:
        return reference.select(torch.zeros(num_prompts, dtype=torch.long))
    raise FlexIPInputError(f"got {len(reference)} reference subjects for {num_prompts} prompts; give one subject or one per prompt")


def non_finite_message(adapter, unet, index: int, steps: int) -> str:
    """Why the latents became NaN or Inf: the adapter's weights, or fp16 overflow."""
    bad = [] if adapter is None else [name for name, parameter in adapter.named_parameters() if not torch.isfinite(parameter).all()]
    if bad:
        cause = f"the adapter's weights are not finite (e.g. {bad[0]}): the adapter file is damaged or its training diverged"
    elif unet.dtype == torch.float16:
        cause = "float16 overflow: load with torch_dtype=torch.bfloat16 or float32, or lower adapter_scale / guidance_scale"
    else:
        cause = "the base model or adapter produces non-finite values at these settings (try a lower adapter_scale or guidance_scale)"
    return f"generation stopped at step {index + 1} of {steps}: the latents became NaN or Inf, so no image was written. Likely cause: {cause}"
