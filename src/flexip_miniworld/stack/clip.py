"""Stages `clip` and `eval_clip`: a tiny `transformers.CLIPModel` trained contrastively on captions and images.

The conditioning CLIP gives the base model's text encoder (`CLIPTextModel`) and FlexIP's high-level
image encoder (`CLIPVisionModelWithProjection`); the evaluation CLIP (another seed and config) scores
CLIP-T and CLIP-I. Many images share a caption, so the contrastive targets are soft: every image whose
caption equals the text is a positive. Augmentation: a small random shift (no flips: captions say
"on the left").

Outputs under the stage folder: model/ (CLIPModel + tokenizer + image processor), text_encoder/,
image_encoder/ (CLIPVisionModelWithProjection + image processor).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from flexip.training.ema import EMA
from flexip_miniworld.stack.common import load_training_images, optimizer_step
from flexip_miniworld.stack.loop import Budget, Loop, stage_summary

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class ClipConfig:
    text_hidden: int = 64  # = the base UNet's cross-attention width
    text_layers: int = 3
    vision_hidden: int = 96
    vision_layers: int = 4
    patch_size: int = 4
    heads: int = 4
    projection_dim: int = 64
    lr: float = 1e-3
    warmup: int = 100
    batch_size: int = 96
    max_shift: int = 2
    ema_decay: float = 0.99
    seed: int = 20


CLIP_CONFIGS = {
    "clip": ClipConfig(),
    "eval_clip": ClipConfig(
        text_hidden=48,
        text_layers=2,
        vision_hidden=64,
        vision_layers=3,
        patch_size=8,
        heads=4,
        projection_dim=48,
        lr=1.5e-3,
        max_shift=3,
        seed=1020,
    ),
}


def image_processor(size: int):
    from transformers import CLIPImageProcessorPil

    return CLIPImageProcessorPil(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}, image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD)
    )


def build_clip(config: ClipConfig, vocab_size: int, bos: int, eos: int, size: int):
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(config.seed)
    text = dict(
        vocab_size=vocab_size,
        hidden_size=config.text_hidden,
        intermediate_size=2 * config.text_hidden,
        num_hidden_layers=config.text_layers,
        num_attention_heads=config.heads,
        max_position_embeddings=77,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    vision = dict(
        hidden_size=config.vision_hidden,
        intermediate_size=2 * config.vision_hidden,
        num_hidden_layers=config.vision_layers,
        num_attention_heads=config.heads,
        image_size=size,
        patch_size=config.patch_size,
    )
    return CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=config.projection_dim))


def normalize(images_u8: torch.Tensor, device) -> torch.Tensor:
    mean = torch.tensor(CLIP_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=device).view(1, 3, 1, 1)
    return (images_u8.to(device=device, dtype=torch.float32) / 255.0 - mean) / std


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by up to ±max_shift pixels (edge padding)."""
    if max_shift == 0:
        return x
    size = x.shape[-1]
    padded = F.pad(x, (max_shift,) * 4, mode="replicate")
    offsets = torch.randint(0, 2 * max_shift + 1, (x.shape[0], 2), generator=generator).tolist()
    return torch.stack([padded[i, :, dy : dy + size, dx : dx + size] for i, (dy, dx) in enumerate(offsets)])


def train_clip(data_dir: Path, tokenizer_dir: Path, workdir: Path, config: ClipConfig, budget: Budget, device, resume: bool, log=print) -> dict:
    from flexip_miniworld.stack.tokenizer import load_tokenizer

    workdir = Path(workdir)
    images, captions = load_training_images(data_dir, workdir.parent / "cache")
    tokenizer = load_tokenizer(tokenizer_dir)
    unique = sorted(set(captions))
    position = {c: i for i, c in enumerate(unique)}
    caption_index = torch.tensor([position[c] for c in captions])
    tokens = tokenizer(unique, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    model = build_clip(config, len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id, images.shape[-1]).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.05)
    ema = EMA(model, config.ema_decay)
    loop = Loop(workdir.name, workdir, {"clip": model}, optimizer, config.seed, budget, config.lr, config.warmup, ema={"clip": ema}, log=log)

    def step(index: int, generator: torch.Generator) -> float:
        batch = torch.randint(len(images), (config.batch_size,), generator=generator)
        ids = caption_index[batch]
        pixels = random_shift(normalize(images[batch], device), config.max_shift, generator)
        output = model(input_ids=tokens.input_ids[ids].to(device), attention_mask=tokens.attention_mask[ids].to(device), pixel_values=pixels)
        logits = output.logits_per_image  # [B images, B texts]
        same = (ids[:, None] == ids[None, :]).float().to(device)
        targets = same / same.sum(1, keepdim=True)
        loss = 0.5 * (-(targets * logits.log_softmax(1)).sum(1).mean() - (targets * logits.t().log_softmax(1)).sum(1).mean())
        return optimizer_step(optimizer, loss, model.parameters(), 1.0)

    loop.run(step, resume)
    ema.copy_to(model)
    return {**stage_summary(loop), **save_clip(model.eval().cpu(), tokenizer, images.shape[-1], workdir, log)}


def save_clip(model, tokenizer, size: int, workdir: Path, log=print) -> dict:
    from transformers import CLIPTextModel, CLIPVisionModelWithProjection

    processor = image_processor(size)
    model.save_pretrained(workdir / "model")
    tokenizer.save_pretrained(workdir / "model")
    processor.save_pretrained(workdir / "model")
    text = CLIPTextModel(model.config.text_config)
    text.load_state_dict(model.text_model.state_dict())
    text.save_pretrained(workdir / "text_encoder")
    vision_config = model.config.vision_config
    vision_config.projection_dim = model.config.projection_dim
    vision = CLIPVisionModelWithProjection(vision_config)
    vision.vision_model.load_state_dict(model.vision_model.state_dict())
    vision.visual_projection.load_state_dict(model.visual_projection.state_dict())
    vision.save_pretrained(workdir / "image_encoder")
    processor.save_pretrained(workdir / "image_encoder")
    log(f"[{workdir.name}] saved model/, text_encoder/, image_encoder/ under {workdir}")
    return {
        "output": str(workdir / "model"),
        "text_encoder": str(workdir / "text_encoder"),
        "image_encoder": str(workdir / "image_encoder"),
    }
