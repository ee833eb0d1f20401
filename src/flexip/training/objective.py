"""The base model's own denoising objective, as pure functions (ᾱ_t = `alphas_cumprod[t]`):

    x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε                      (forward noising)
    target = ε                      for "epsilon" models   (SD 1.5)
    target = √ᾱ_t · ε − √(1 − ᾱ_t) · x_0   for "v_prediction" models (SD 2.x-768)
    target = x_0                    for "sample" models
    loss_i = mean over pixels of (prediction_i − target_i)²

The noise schedule and prediction type come from the base model's scheduler config, read through
`DDPMScheduler.from_config` (`noise_schedule`).
"""

from __future__ import annotations

import torch

from flexip.errors import FlexIPInputError

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


def noise_schedule(scheduler_config) -> tuple[torch.Tensor, str]:
    """(alphas_cumprod (T,), prediction_type) of a base model's scheduler config."""
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler.from_config(scheduler_config)
    prediction_type = scheduler.config.prediction_type
    if prediction_type not in PREDICTION_TYPES:
        raise FlexIPInputError(f"unsupported prediction_type {prediction_type!r} in the base model's scheduler; expected one of {PREDICTION_TYPES}")
    return scheduler.alphas_cumprod.clone().float(), prediction_type


def _at(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(√ᾱ_t, √(1 − ᾱ_t)) shaped (batch, 1, 1, 1) to broadcast over `like`."""
    alpha_bar = alphas_cumprod.to(like.device)[timesteps.to(like.device)].to(like.dtype)
    shape = (-1,) + (1,) * (like.ndim - 1)
    return alpha_bar.sqrt().view(shape), (1 - alpha_bar).sqrt().view(shape)


def add_noise(alphas_cumprod: torch.Tensor, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε."""
    signal, sigma = _at(alphas_cumprod, timesteps, latents)
    return signal * latents + sigma * noise


def prediction_target(
    prediction_type: str, alphas_cumprod: torch.Tensor, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
) -> torch.Tensor:
    """What the UNet must predict at x_t: ε, v = √ᾱ_t · ε − √(1 − ᾱ_t) · x_0, or x_0."""
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "v_prediction":
        signal, sigma = _at(alphas_cumprod, timesteps, latents)
        return signal * noise - sigma * latents
    if prediction_type == "sample":
        return latents
    raise FlexIPInputError(f"unsupported prediction_type {prediction_type!r}; expected one of {PREDICTION_TYPES}")


def per_sample_mse(prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """(batch,) mean squared error of each sample, computed in float32. `weights` (broadcastable to the
    prediction, e.g. (batch, 1, h, w), ≥ 0): the weighted mean Σ w·e² / Σ w per sample instead, so a
    weight map changes where the error counts, not the loss's scale."""
    squared = (prediction.float() - target.float()) ** 2
    if weights is None:
        return squared.reshape(squared.shape[0], -1).mean(dim=1)
    weights = weights.float().expand_as(squared)
    return (weights * squared).reshape(squared.shape[0], -1).sum(dim=1) / weights.reshape(squared.shape[0], -1).sum(dim=1).clamp_min(1e-12)


def sample_timesteps(batch_size: int, num_train_timesteps: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """t ~ U{0, ..., T − 1} per sample (CPU int64)."""
    return torch.randint(0, num_train_timesteps, (batch_size,), generator=generator)
