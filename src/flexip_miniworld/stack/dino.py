"""Stages `dino` and `eval_dino`: a tiny `transformers.Dinov2Model` trained self-supervised, without labels.

DINO self-distillation (Caron et al. 2021): a student and an EMA teacher see different crops of one
image (2 global crops at full size, several small local crops: multi-crop); the student's softmax over
K prototypes must match the teacher's sharpened, centred softmax on the global crops. The teacher's
momentum follows a cosine from `momentum` to 1; the centre is an EMA of teacher outputs (against
collapse). The CLS token feeds the head, so the CLS token is what DINO-I compares. Augmentations keep
colours (they are identity in this world): random resized crops, flips, mild brightness only, plus
background swaps (`backgrounds.py`): every view gets its own random backdrop behind the image's own
subject, so that the views agree through the subject and not through the background.

Output: model/ (the teacher's Dinov2Model + a BitImageProcessorPil config).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from flexip_miniworld.dataset import load_jsonl
from flexip_miniworld.stack.backgrounds import background_bank, load_subject_masks, swap_backgrounds
from flexip_miniworld.stack.common import load_training_images, optimizer_step
from flexip_miniworld.stack.loop import Budget, Loop, stage_summary

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class DinoConfig:
    hidden: int = 96
    layers: int = 4
    heads: int = 4
    patch_size: int = 4
    mlp_ratio: int = 2
    prototypes: int = 512
    head_hidden: int = 256
    bottleneck: int = 64
    local_crops: int = 4
    local_size: int = 16
    global_scale: tuple = (0.45, 1.0)
    local_scale: tuple = (0.12, 0.4)
    student_temp: float = 0.1
    teacher_temp: float = 0.04
    center_momentum: float = 0.9
    momentum: float = 0.99
    lr: float = 1e-3
    warmup: int = 100
    batch_size: int = 48
    frame_pairs: bool = False  # global crops from two frames of one clip / two views of one capture
    background_swap: float = 0.0  # probability that a view's backdrop is replaced (image rows only)
    seed: int = 30


DINO_CONFIGS = {
    "dino": DinoConfig(background_swap=0.8),
    "eval_dino": DinoConfig(
        hidden=64,
        layers=3,
        heads=4,
        patch_size=8,
        prototypes=256,
        head_hidden=192,
        local_crops=2,
        local_size=16,
        global_scale=(0.5, 1.0),
        lr=1.5e-3,
        batch_size=48,
        frame_pairs=True,
        background_swap=0.7,
        seed=1030,
    ),
}


class DinoHead(torch.nn.Module):
    def __init__(self, dim: int, hidden: int, bottleneck: int, prototypes: int):
        super().__init__()
        self.mlp = torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, bottleneck))
        self.prototypes = torch.nn.utils.parametrizations.weight_norm(torch.nn.Linear(bottleneck, prototypes, bias=False))

    def forward(self, cls: torch.Tensor) -> torch.Tensor:
        return self.prototypes(F.normalize(self.mlp(cls), dim=-1))  # [B, K] logits


def image_processor(size: int):
    from transformers import BitImageProcessorPil

    return BitImageProcessorPil(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        do_convert_rgb=True,
        image_mean=list(IMAGENET_MEAN),
        image_std=list(IMAGENET_STD),
    )


def build_dino(config: DinoConfig, size: int):
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(config.seed)
    return Dinov2Model(
        Dinov2Config(
            hidden_size=config.hidden,
            num_hidden_layers=config.layers,
            num_attention_heads=config.heads,
            mlp_ratio=config.mlp_ratio,
            image_size=size,
            patch_size=config.patch_size,
        )
    )


def random_resized_crops(x: torch.Tensor, size: int, scale: tuple, generator: torch.Generator) -> torch.Tensor:
    """One random crop per image (area fraction in `scale`, aspect 3/4–4/3, random flip), resized to `size`."""
    batch = x.shape[0]
    area = torch.empty(batch).uniform_(scale[0], scale[1], generator=generator)
    log_aspect = torch.empty(batch).uniform_(math.log(3 / 4), math.log(4 / 3), generator=generator)
    width = (area * log_aspect.exp()).sqrt().clamp(max=1.0)
    height = (area / log_aspect.exp()).sqrt().clamp(max=1.0)
    cx = (torch.rand(batch, generator=generator) * 2 - 1) * (1 - width)
    cy = (torch.rand(batch, generator=generator) * 2 - 1) * (1 - height)
    flip = torch.where(torch.rand(batch, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(batch, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = width * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = height, cy
    grid = F.affine_grid(theta.to(x.device), [batch, 3, size, size], align_corners=False)
    crops = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    brightness = torch.empty(batch, 1, 1, 1).uniform_(0.85, 1.15, generator=generator).to(x.device)
    return (crops * brightness).clamp(0, 1)


def normalize(x01: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, device=x01.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x01.device).view(1, 3, 1, 1)
    return (x01 - mean) / std


def load_clip_frames(data_dir: Path, cache_dir: Path) -> torch.Tensor:
    """uint8 [clips, frames, 3, H, W]: every training video (decoded) and multi-view capture, cached."""
    import numpy as np
    from PIL import Image

    from flexip_miniworld.dataset import read_video
    from flexip_miniworld.stack.common import data_hash

    cache = Path(cache_dir) / f"clip_frames_{data_hash(data_dir)[:12]}.npy"
    if cache.exists():
        return torch.from_numpy(np.load(cache))
    rows = load_jsonl(Path(data_dir) / "manifest.jsonl")
    clips = []
    for row in rows:
        if row.get("modality") != "video":
            continue
        if "video" in row:
            frames = read_video(Path(data_dir) / row["video"])
        else:
            frames = [np.asarray(Image.open(Path(data_dir) / view).convert("RGB")) for view in row["views"]]
        clips.append(np.stack(frames))
    length = min(8, *(len(clip) for clip in clips))  # the first 8 frames / views, or fewer where a clip is shorter
    array = np.ascontiguousarray(np.stack([clip[:length] for clip in clips]).transpose(0, 1, 4, 2, 3))  # [clips, length, 3, H, W]
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, array)
    return torch.from_numpy(array)


def train_dino(data_dir: Path, workdir: Path, config: DinoConfig, budget: Budget, device, resume: bool, log=print) -> dict:
    workdir = Path(workdir)
    images, _ = load_training_images(data_dir, workdir.parent / "cache")
    clips = load_clip_frames(data_dir, workdir.parent / "cache") if config.frame_pairs else None
    masks = bank = None
    if config.background_swap > 0:
        masks = load_subject_masks(data_dir, workdir.parent / "cache")
        bank = background_bank(1024, images.shape[-1], 4, config.seed)
    size = images.shape[-1]
    student = build_dino(config, size).to(device).train()
    teacher = build_dino(config, size).to(device).eval()
    student_head = DinoHead(config.hidden, config.head_hidden, config.bottleneck, config.prototypes).to(device)
    teacher_head = DinoHead(config.hidden, config.head_hidden, config.bottleneck, config.prototypes).to(device)
    teacher.load_state_dict(student.state_dict())
    teacher_head.load_state_dict(student_head.state_dict())
    for module in (teacher, teacher_head):
        module.requires_grad_(False)
    center = torch.zeros(1, config.prototypes, device=device)
    parameters = list(student.parameters()) + list(student_head.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=0.04)
    holder = torch.nn.Module()  # the centre travels with the checkpoint
    holder.register_buffer("center", center)
    modules = {"student": student, "student_head": student_head, "teacher": teacher, "teacher_head": teacher_head, "center": holder}
    loop = Loop(workdir.name, workdir, modules, optimizer, config.seed, budget, config.lr, config.warmup, log=log)

    def cls(model, head, views):
        return head(model(pixel_values=normalize(views)).last_hidden_state[:, 0])

    def step(index: int, generator: torch.Generator) -> float:
        batch = torch.randint(len(images), (config.batch_size,), generator=generator)
        x = images[batch].to(device=device, dtype=torch.float32) / 255.0
        second = x
        # subject coverage per image; 255 everywhere (= keep the backdrop) for clip frames, which have none
        coverage = masks[batch] if masks is not None else None
        if clips is not None:  # half the batch: two frames of one clip (same subject, other pose/light/pan)
            half = config.batch_size // 2
            chosen = torch.randint(len(clips), (half,), generator=generator)
            first_frame = torch.randint(clips.shape[1], (half,), generator=generator)
            other_frame = (first_frame + torch.randint(1, clips.shape[1], (half,), generator=generator)) % clips.shape[1]
            x = torch.cat([x[half:], clips[chosen, first_frame].to(device=device, dtype=torch.float32) / 255.0])
            second = torch.cat([x[: config.batch_size - half], clips[chosen, other_frame].to(device=device, dtype=torch.float32) / 255.0])
            if coverage is not None:
                coverage = torch.cat([coverage[half:], torch.full((half, *coverage.shape[1:]), 255, dtype=coverage.dtype)])

        def view(image: torch.Tensor) -> torch.Tensor:
            if coverage is None:
                return image
            return swap_backgrounds(image, coverage, bank, config.background_swap, generator)

        globals_ = [random_resized_crops(view(v), size, config.global_scale, generator) for v in (x, second)]
        locals_ = [random_resized_crops(view(x), config.local_size, config.local_scale, generator) for _ in range(config.local_crops)]
        with torch.no_grad():
            teacher_logits = cls(teacher, teacher_head, torch.cat(globals_))  # [2B, K]
            targets = F.softmax((teacher_logits - holder.center) / config.teacher_temp, dim=-1).chunk(2)
        student_out = list(cls(student, student_head, torch.cat(globals_)).chunk(2))
        if locals_:
            student_out += list(cls(student, student_head, torch.cat(locals_)).chunk(config.local_crops))
        loss, terms = 0.0, 0
        for t, target in enumerate(targets):
            for s, logits in enumerate(student_out):
                if s == t:
                    continue
                loss = loss + torch.sum(-target * F.log_softmax(logits / config.student_temp, dim=-1), dim=-1).mean()
                terms += 1
        loss = loss / terms
        value = optimizer_step(optimizer, loss, parameters, 3.0)
        with torch.no_grad():
            momentum = 1 - (1 - config.momentum) * 0.5 * (1 + math.cos(math.pi * min(1.0, loop.progress())))
            for t_param, s_param in zip(list(teacher.parameters()) + list(teacher_head.parameters()), parameters):
                t_param.mul_(momentum).add_(s_param.detach(), alpha=1 - momentum)
            holder.center.mul_(config.center_momentum).add_(teacher_logits.mean(0, keepdim=True), alpha=1 - config.center_momentum)
        return value

    loop.run(step, resume)
    out = workdir / "model"
    teacher.cpu().save_pretrained(out)
    image_processor(size).save_pretrained(out)
    log(f"[{workdir.name}] saved the teacher → {out}")
    return stage_summary(loop, output=str(out))
