"""The modality-aware gate, condition dropout and the objective: pure functions, checked by statistics
and against diffusers' own scheduler math."""

from __future__ import annotations

import pytest
import torch

from flexip.training.gate_sampling import apply_dropout, sample_dropout, sample_gammas
from flexip.training.objective import add_noise, noise_schedule, per_sample_mse, prediction_target


def test_gammas_respect_each_modality_range():
    ranges = {"image": (0.5, 1.0), "video": (0.0, 0.5)}
    modalities = ["image", "video", "video", "image"] * 5000
    gammas = sample_gammas(modalities, ranges, torch.Generator().manual_seed(0))
    image = gammas[torch.tensor([m == "image" for m in modalities])]
    video = gammas[torch.tensor([m == "video" for m in modalities])]
    assert image.min() >= 0.5 and image.max() <= 1.0 and video.min() >= 0.0 and video.max() <= 0.5
    # uniform over the range: mean at the middle, quartiles where they belong, both ends reached
    assert abs(image.mean().item() - 0.75) < 0.01 and abs(video.mean().item() - 0.25) < 0.01
    assert abs(image.quantile(0.25).item() - 0.625) < 0.01 and abs(video.quantile(0.75).item() - 0.375) < 0.01
    assert image.min() < 0.51 and image.max() > 0.99
    # configurable ranges, same generator state → same draws
    custom = sample_gammas(["image", "video"] * 10, {"image": (0.9, 0.9), "video": (0.2, 0.3)}, torch.Generator().manual_seed(1))
    assert torch.all(custom[0::2] == 0.9) and torch.all((custom[1::2] >= 0.2) & (custom[1::2] <= 0.3))
    again = sample_gammas(["image", "video"] * 10, {"image": (0.9, 0.9), "video": (0.2, 0.3)}, torch.Generator().manual_seed(1))
    assert torch.equal(custom, again)


def test_dropout_rates_and_mutual_exclusion():
    n = 40000
    masks = sample_dropout(n, 0.05, 0.05, 0.05, torch.Generator().manual_seed(0))
    text_only = (masks.drop_text & ~masks.drop_image).float().mean().item()
    image_only = (masks.drop_image & ~masks.drop_text).float().mean().item()
    both = (masks.drop_text & masks.drop_image).float().mean().item()
    tolerance = 4 * (0.05 * 0.95 / n) ** 0.5  # 4 standard deviations
    for rate in (text_only, image_only, both):
        assert abs(rate - 0.05) < tolerance
    kept = (~masks.drop_text & ~masks.drop_image).float().mean().item()
    assert abs(kept - 0.85) < 4 * (0.85 * 0.15 / n) ** 0.5
    other = sample_dropout(n, 0.2, 0.0, 0.1, torch.Generator().manual_seed(1))
    assert not (other.drop_image & ~other.drop_text).any()  # no image-only drops at rate 0
    assert abs((other.drop_text & other.drop_image).float().mean().item() - 0.1) < 0.01
    none = sample_dropout(100, 0.0, 0.0, 0.0, torch.Generator().manual_seed(2))
    assert not none.drop_text.any() and not none.drop_image.any()


def test_apply_dropout_uses_empty_prompt_and_zero_features():
    masks = sample_dropout(4, 0.0, 0.0, 0.0)
    masks.drop_text[:] = torch.tensor([True, False, True, False])
    masks.drop_image[:] = torch.tensor([False, True, True, False])
    text, empty = torch.randn(4, 7, 5), torch.randn(1, 7, 5)
    clip, dino = torch.randn(4, 3), torch.randn(4, 6, 2)
    new_text, new_clip, new_dino = apply_dropout(masks, text, empty, clip, dino)
    assert torch.equal(new_text[0], empty[0]) and torch.equal(new_text[2], empty[0]) and torch.equal(new_text[1], text[1])
    assert torch.all(new_clip[1:3] == 0) and torch.all(new_dino[1:3] == 0)
    assert torch.equal(new_clip[3], clip[3]) and torch.equal(new_dino[0], dino[0])


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_objective_matches_diffusers(prediction_type):
    from diffusers import DDIMScheduler, DDPMScheduler

    base = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, prediction_type=prediction_type)
    alphas_cumprod, read_type = noise_schedule(base.config)
    assert read_type == prediction_type
    reference = DDPMScheduler.from_config(base.config)
    generator = torch.Generator().manual_seed(0)
    latents, noise = torch.randn(3, 4, 8, 8, generator=generator), torch.randn(3, 4, 8, 8, generator=generator)
    timesteps = torch.tensor([0, 500, 999])
    assert torch.allclose(add_noise(alphas_cumprod, latents, noise, timesteps), reference.add_noise(latents, noise, timesteps), atol=1e-6)
    target = prediction_target(prediction_type, alphas_cumprod, latents, noise, timesteps)
    expected = {"epsilon": noise, "v_prediction": reference.get_velocity(latents, noise, timesteps), "sample": latents}[prediction_type]
    assert torch.allclose(target, expected, atol=1e-6)
    loss = per_sample_mse(target + 1.0, target)
    assert loss.shape == (3,) and torch.allclose(loss, torch.ones(3))
