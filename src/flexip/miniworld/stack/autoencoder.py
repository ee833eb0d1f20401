"""Stage `autoencoder`: a tiny `diffusers.AutoencoderKL` (32×32×3 ↔ 8×8×C), trained on the world's images.

Loss: L1 reconstruction + a tiny KL term; random flips. After training, the latent scale is measured
on training images and written into the config (`scaling_factor` = 1 / std), as SD's VAE carries it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from flexip.miniworld.stack.common import Budget, Loop, load_training_images, optimizer_step, stage_summary, to_unit


@dataclass
class AutoencoderConfig:
    channels: tuple = (16, 32, 64)  # 3 blocks: factor 4 (wider was 5-10x slower per image on the 2-core CPU)
    latent_channels: int = 8
    layers_per_block: int = 1
    lr: float = 1e-3
    warmup: int = 50
    batch_size: int = 32
    kl_weight: float = 1e-6
    seed: int = 10


def build_autoencoder(config: AutoencoderConfig, size: int):
    from diffusers import AutoencoderKL

    torch.manual_seed(config.seed)
    n = len(config.channels)
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=config.latent_channels, block_out_channels=tuple(config.channels),
        layers_per_block=config.layers_per_block, down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n, norm_num_groups=8, sample_size=size, mid_block_add_attention=False,
    )


def train_autoencoder(data_dir: Path, workdir: Path, config: AutoencoderConfig, budget: Budget, device, resume: bool, log=print) -> dict:
    workdir = Path(workdir)
    images, _ = load_training_images(data_dir, workdir.parent / "cache")
    vae = build_autoencoder(config, images.shape[-1]).to(device).train()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=config.lr, weight_decay=0.0)
    loop = Loop("autoencoder", workdir, {"vae": vae}, optimizer, config.seed, budget, config.lr, config.warmup, log=log)

    def step(index: int, generator: torch.Generator) -> float:
        batch_index = torch.randint(len(images), (config.batch_size,), generator=generator)
        flip = torch.rand(config.batch_size, generator=generator) < 0.5
        x = to_unit(images[batch_index], device)
        x = torch.where(flip.to(device).view(-1, 1, 1, 1), x.flip(-1), x)
        posterior = vae.encode(x).latent_dist
        noise = torch.randn(posterior.mean.shape, generator=generator).to(device)
        z = posterior.mean + posterior.std * noise
        reconstruction = vae.decode(z).sample
        loss = (reconstruction - x).abs().mean() + config.kl_weight * posterior.kl().mean()
        return optimizer_step(optimizer, loss, vae.parameters(), 1.0)

    loop.run(step, resume)
    vae.eval()
    with torch.no_grad():
        sample = to_unit(images[:512], device)
        latents = torch.cat([vae.encode(chunk).latent_dist.mean for chunk in sample.split(128)])
        scaling = float(1.0 / latents.std())
        reconstruction = torch.cat([vae.decode(z).sample for z in latents.split(128)]).clamp(-1, 1)
        mse = ((reconstruction - sample) / 2).pow(2).mean()
        psnr = float(-10 * torch.log10(mse))
    vae.register_to_config(scaling_factor=scaling)
    out = workdir / "model"
    vae.save_pretrained(out)
    log(f"[autoencoder] scaling_factor {scaling:.3f}, training-image PSNR {psnr:.2f} dB → {out}")
    return stage_summary(loop, output=str(out), scaling_factor=scaling, psnr_db=round(psnr, 2))
