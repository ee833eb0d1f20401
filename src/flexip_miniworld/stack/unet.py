"""Stage `unet`: the base text-to-image model (`diffusers.UNet2DConditionModel`) on the frozen
autoencoder's latents and the frozen CLIP text encoder's embeddings.

The recipe follows what the prototype measured (docs/miniworld.md): v-prediction on a cosine schedule
rescaled to zero terminal SNR (`rescale_betas_zero_snr`), DDIM with `trailing` timesteps at inference,
a first UNet stage (64 channels) wider than the latent (8 channels), attention at 4×4, 2×2 and the
middle, lr 1e-3 with warm-up and cosine decay, EMA of the weights. Latents and text embeddings are
computed once (the encoders are frozen), so a step costs only the UNet. 10% of captions are dropped
to the empty prompt for classifier-free guidance. The noising and the target come from the project's
own `flexip.training.objective`, the same functions the adapter trainer uses.

Output: model/ (the EMA UNet) and scheduler/ (DDIMScheduler config).

Stage `unet_grow` then adds cross-attention at the latent resolution (8×8), where the first UNet had
none (it was 2× cheaper per step without), and trains on: `grow_unet` builds the wider UNet, copies
every trained weight by name and zero-initialises each new transformer's output projection, so the
grown UNet starts out computing exactly what the trained one did (as ControlNet starts its branch).
The FlexIP adapter then gets a decoupled branch at that resolution too, as it has at SD1.5's 64×64.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from flexip.atomic import atomic_path
from flexip.training.ema import EMA
from flexip.training.objective import add_noise, noise_schedule, per_sample_mse, prediction_target
from flexip_miniworld.stack.common import bind_parent, load_training_images, optimizer_step, to_unit
from flexip_miniworld.stack.loop import Budget, Loop, stage_summary

GROWN_BLOCKS = ("CrossAttnDownBlock2D",) * 3


@dataclass
class UNetConfig:
    channels: tuple = (64, 128, 128)
    down_blocks: tuple = ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D")
    head_dim: int = 32  # diffusers reads `attention_head_dim` as the number of heads: 32 heads (4 channels each at 128)
    lr: float = 1e-3
    warmup: int = 200
    batch_size: int = 32
    caption_dropout: float = 0.1
    ema_decay: float = 0.995
    seed: int = 40


def make_scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        num_train_timesteps=1000,
        beta_schedule="squaredcos_cap_v2",
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        timestep_spacing="trailing",
        clip_sample=False,
        set_alpha_to_one=True,
        steps_offset=1,
    )


def build_unet(config: UNetConfig, latent_channels: int, latent_size: int, cross_dim: int):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(config.seed)
    up_blocks = tuple(name.replace("Down", "Up") for name in reversed(config.down_blocks))
    return UNet2DConditionModel(
        sample_size=latent_size,
        in_channels=latent_channels,
        out_channels=latent_channels,
        layers_per_block=1,
        block_out_channels=tuple(config.channels),
        down_block_types=tuple(config.down_blocks),
        up_block_types=up_blocks,
        cross_attention_dim=cross_dim,
        attention_head_dim=config.head_dim,
        norm_num_groups=16,
    )


@torch.no_grad()
def grow_unet(trained_dir: Path, down_blocks: tuple = GROWN_BLOCKS, head_channels: int = 32, seed: int = 0):
    """The UNet of `trained_dir` with `down_blocks` (and the mirrored up blocks): trained weights copied
    by name, new transformers zero-initialised at their output so the result is unchanged. The new
    levels get heads of `head_channels` channels; the trained levels keep their head count."""
    from diffusers import UNet2DConditionModel

    trained = UNet2DConditionModel.from_pretrained(trained_dir)
    config = dict(trained.config)
    old_blocks, channels = config["down_block_types"], config["block_out_channels"]
    heads = config["attention_head_dim"]  # diffusers' name for the number of heads
    heads = list(heads) if isinstance(heads, (list, tuple)) else [heads] * len(old_blocks)
    heads = [h if old == new else max(1, c // head_channels) for h, old, new, c in zip(heads, old_blocks, down_blocks, channels)]
    up_blocks = tuple(name.replace("Down", "Up") for name in reversed(down_blocks))
    torch.manual_seed(seed)
    grown = UNet2DConditionModel.from_config(
        {**config, "down_block_types": tuple(down_blocks), "up_block_types": up_blocks, "attention_head_dim": tuple(heads)}
    )
    trained_keys = set(trained.state_dict())
    missing, unexpected = grown.load_state_dict(trained.state_dict(), strict=False)
    if unexpected:
        raise ValueError(f"{trained_dir} has weights the grown UNet lacks (not a growth): {unexpected[:3]}")
    new_modules = set()
    for key in missing:
        match = re.match(r"(.*?\.attentions\.\d+)\.", key)
        if match is None or any(k.startswith(match.group(1) + ".") for k in trained_keys):
            raise ValueError(f"growing {trained_dir}: {key} is new but not part of a new transformer")
        new_modules.add(match.group(1))
    for name in sorted(new_modules):
        proj_out = grown.get_submodule(name).proj_out
        torch.nn.init.zeros_(proj_out.weight)
        torch.nn.init.zeros_(proj_out.bias)
    return grown


@torch.no_grad()
def encode_training_set(data_dir: Path, work: Path, cache: Path, device, log=print) -> dict:
    """Latents (× scaling factor) of every training image and the text embeddings of every distinct
    caption (+ the empty prompt, last), cached in one file."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextModel

    from flexip.hashing import file_sha256
    from flexip_miniworld.stack.tokenizer import load_tokenizer

    vae_file = work / "autoencoder" / "model" / "diffusion_pytorch_model.safetensors"
    text_file = work / "clip" / "text_encoder" / "model.safetensors"
    key = (file_sha256(vae_file)[:10], file_sha256(text_file)[:10])
    path = cache / f"unet_inputs_{key[0]}_{key[1]}.pt"
    if path.exists():
        return torch.load(path, weights_only=True)
    images, captions = load_training_images(data_dir, cache)
    vae = AutoencoderKL.from_pretrained(work / "autoencoder" / "model").to(device).eval()
    text_encoder = CLIPTextModel.from_pretrained(work / "clip" / "text_encoder").to(device).eval()
    tokenizer = load_tokenizer(work / "tokenizer")
    latents = torch.cat([vae.encode(to_unit(chunk, device)).latent_dist.mean.cpu() for chunk in images.split(256)])
    latents = latents * vae.config.scaling_factor
    unique = sorted(set(captions)) + [""]
    position = {c: i for i, c in enumerate(unique)}
    embeds = []
    for start in range(0, len(unique), 256):
        tokens = tokenizer(unique[start : start + 256], padding="max_length", max_length=77, truncation=True, return_tensors="pt")
        embeds.append(text_encoder(tokens.input_ids.to(device)).last_hidden_state.half().cpu())
    result = {"latents": latents, "caption_index": torch.tensor([position[c] for c in captions]), "text": torch.cat(embeds)}
    with atomic_path(path) as temporary:
        torch.save(result, temporary)
    log(f"[unet] encoded {len(latents)} latents {tuple(latents.shape[1:])} (std {latents.std():.3f}), {len(unique)} captions")
    return result


def train_unet(
    data_dir: Path,
    work: Path,
    workdir: Path,
    config: UNetConfig,
    budget: Budget,
    device,
    resume: bool,
    log=print,
    grow_from: Path | None = None,
) -> dict:
    """Train the base UNet from scratch, or (`grow_from`: a trained UNet folder) grow it to
    `config.down_blocks` with `grow_unet` and train on."""
    workdir = Path(workdir)
    inputs = encode_training_set(data_dir, Path(work), workdir.parent / "cache", device, log)
    latents, caption_index, text = inputs["latents"], inputs["caption_index"], inputs["text"]
    empty = len(text) - 1
    scheduler = make_scheduler()
    alphas_cumprod, prediction_type = noise_schedule(scheduler.config)
    if grow_from is None:
        unet = build_unet(config, latents.shape[1], latents.shape[-1], text.shape[-1])
    else:
        bind_parent(workdir, Path(grow_from))
        unet = grow_unet(grow_from, config.down_blocks, seed=config.seed)
    unet = unet.to(device).train()
    optimizer = torch.optim.AdamW(unet.parameters(), lr=config.lr, weight_decay=0.01)
    ema = EMA(unet, config.ema_decay)
    loop = Loop(workdir.name, workdir, {"unet": unet}, optimizer, config.seed, budget, config.lr, config.warmup, ema={"unet": ema}, log=log)

    def step(index: int, generator: torch.Generator) -> float:
        batch = torch.randint(len(latents), (config.batch_size,), generator=generator)
        drop = torch.rand(config.batch_size, generator=generator) < config.caption_dropout
        ids = torch.where(drop, torch.full_like(batch, empty), caption_index[batch])
        x0 = latents[batch].to(device)
        noise = torch.randn(x0.shape, generator=generator).to(device)
        timesteps = torch.randint(0, len(alphas_cumprod), (config.batch_size,), generator=generator).to(device)
        noisy = add_noise(alphas_cumprod, x0, noise, timesteps)
        target = prediction_target(prediction_type, alphas_cumprod, x0, noise, timesteps)
        prediction = unet(noisy, timesteps, encoder_hidden_states=text[ids].float().to(device)).sample
        loss = per_sample_mse(prediction, target).mean()
        return optimizer_step(optimizer, loss, unet.parameters(), 1.0)

    loop.run(step, resume)
    ema.copy_to(unet)
    unet.cpu().eval().save_pretrained(workdir / "model")
    scheduler.save_pretrained(workdir / "scheduler")
    log(f"[{workdir.name}] saved the EMA UNet → {workdir / 'model'}")
    return stage_summary(loop, output=str(workdir / "model"), params_m=round(sum(p.numel() for p in unet.parameters()) / 1e6, 2))
