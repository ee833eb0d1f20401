"""What every stage trainer of the miniature stack shares: devices, atomic files, hashes, the
training data as tensors, and `Loop` — a resumable, deterministic training loop.

Determinism: every step draws its randomness from a generator seeded by (seed, step), so a run that
stops at a checkpoint and resumes takes exactly the steps of a straight run (on one device).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from flexip.atomic import atomic_path, write_text
from flexip.errors import FlexIPInputError
from flexip.hashing import file_sha256
from flexip_miniworld.dataset import load_jsonl


def step_generator(seed: int, step: int) -> torch.Generator:
    """The CPU generator of one training step (independent of everything before it)."""
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + int(step) * 7919) % (2**63))


# ---- files ----------------------------------------------------------------------------------------

def atomic_write_json(path: Path, value) -> None:
    write_text(path, json.dumps(value, indent=2) + "\n")


def folder_hashes(folder: Path, root: Path | None = None) -> dict[str, str]:
    """sha256 of every file under `folder`, keyed by its path relative to `root` (default: folder)."""
    root = Path(root or folder)
    return {str(p.relative_to(root)): file_sha256(p) for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def weights_hash(folder: Path) -> str:
    """One sha256 over the sha256 of every .safetensors file in a model folder."""
    digest = hashlib.sha256()
    for name, value in folder_hashes(folder).items():
        if name.endswith(".safetensors"):
            digest.update(f"{name}={value}".encode())
    return digest.hexdigest()


def bind_parent(workdir: Path, parent: Path) -> None:
    """Record in `workdir/parent.json` the weights a derived stage starts from (`decoder` from the
    autoencoder, `unet_grow` from the UNet); raise if workdir already holds work derived from others
    (the parent was retrained: resuming would mix two models)."""
    path, digest = Path(workdir) / "parent.json", weights_hash(parent)
    if path.exists() and json.loads(path.read_text())["sha256"] != digest:
        raise FlexIPInputError(f"{workdir} was trained from other {parent} weights (retrained since?); delete {workdir} to start it over")
    Path(workdir).mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {"parent": str(parent), "sha256": digest})


def derived_output(workdir: Path, parent: Path) -> bool:
    """True if `workdir/model` exists and was derived from `parent` as it is now; False if the stage has
    not finished; raises if it was derived from other weights (a stale stage must not be shipped)."""
    if not (Path(workdir) / "model").is_dir():
        return False
    recorded = json.loads((Path(workdir) / "parent.json").read_text())["sha256"] if (Path(workdir) / "parent.json").exists() else None
    if recorded != weights_hash(parent):
        raise FlexIPInputError(f"{workdir / 'model'} was derived from other {parent} weights; re-run its stage (delete {workdir} first)")
    return True


def data_hash(data_dir: Path) -> str:
    """Identifies a miniworld dataset: sha256 over its manifest, held-out list and world.json."""
    digest = hashlib.sha256()
    for name in ("world.json", "manifest.jsonl", "heldout.jsonl"):
        path = Path(data_dir) / name
        if path.exists():
            digest.update(name.encode())
            digest.update(file_sha256(path).encode())
    return digest.hexdigest()


# ---- training data --------------------------------------------------------------------------------

def load_training_images(data_dir: Path, cache_dir: Path, limit: int | None = None) -> tuple[torch.Tensor, list[str]]:
    """(uint8 images [N, 3, H, W], captions) of the manifest's image rows, cached as one .npz."""
    from PIL import Image

    data_dir = Path(data_dir)
    rows = load_jsonl(data_dir / "manifest.jsonl")
    rows = [row for row in rows if row.get("modality") == "image"][:limit]
    if not rows:
        raise FlexIPInputError(f"{data_dir}/manifest.jsonl has no image rows; run `flexip miniworld make-data` first")
    cache = Path(cache_dir) / f"images_{len(rows)}_{data_hash(data_dir)[:12]}.npz"
    if cache.exists():
        stored = np.load(cache)
        return torch.from_numpy(stored["images"]), [row["caption"] for row in rows]
    images = np.stack([np.asarray(Image.open(data_dir / row["image"]).convert("RGB")) for row in rows])  # [N, H, W, 3]
    images = np.ascontiguousarray(images.transpose(0, 3, 1, 2))  # [N, 3, H, W]
    cache.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache) as temporary:
        np.savez(temporary, images=images)
    return torch.from_numpy(images), [row["caption"] for row in rows]


def to_unit(images_u8: torch.Tensor, device) -> torch.Tensor:
    """uint8 [B, 3, H, W] → float in [-1, 1] on `device`."""
    return images_u8.to(device=device, dtype=torch.float32).div(127.5).sub(1.0)


# ---- learning rate, EMA ---------------------------------------------------------------------------

def warmup_cosine(progress: float, step: int, warmup: int, floor: float = 0.1) -> float:
    """Multiplier of the base lr: linear warm-up over `warmup` steps, then cosine to `floor` at progress 1."""
    if step < warmup:
        return (step + 1) / warmup
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, parameters, max_norm: float) -> float:
    """One update of every stage trainer: clear, backpropagate, clip the gradient norm, step; the loss as a float."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(parameters, max_norm)
    optimizer.step()
    return loss.item()


class EMA:
    """Exponential moving average of a module's float parameters and buffers."""

    def __init__(self, module: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}

    @torch.no_grad()
    def update(self, module: torch.nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        for key, value in module.state_dict().items():
            if value.dtype.is_floating_point:
                self.shadow[key].mul_(decay).add_(value.detach(), alpha=1 - decay)
            else:
                self.shadow[key].copy_(value)

    def copy_to(self, module: torch.nn.Module) -> None:
        module.load_state_dict(self.shadow)


# ---- the loop -------------------------------------------------------------------------------------

@dataclass
class Budget:
    max_steps: int
    max_seconds: float = float("inf")  # wall-clock budget over all sittings
    checkpoint_seconds: float = 120.0  # checkpoint at least this often ...
    checkpoint_steps: int | None = None  # ... and every this many steps (exact resume tests)
    log_every: int = 25


@dataclass
class Loop:
    """A resumable training loop over `step_fn(step, generator) -> loss` with the state in `modules`,
    `optimizer` and (optionally) `ema`; checkpoints to `workdir/checkpoint.pt` atomically."""

    name: str
    workdir: Path
    modules: dict
    optimizer: torch.optim.Optimizer
    seed: int
    budget: Budget
    base_lr: float
    warmup: int = 0
    ema: dict = field(default_factory=dict)  # name -> EMA
    log: Callable[[str], None] = print
    step: int = 0
    elapsed: float = 0.0
    losses: list = field(default_factory=list)  # (step, loss) every log_every steps

    @property
    def checkpoint_path(self) -> Path:
        return Path(self.workdir) / "checkpoint.pt"

    def progress(self) -> float:
        return max(self.step / self.budget.max_steps, self.elapsed / self.budget.max_seconds)

    def finished(self) -> bool:
        return self.step >= self.budget.max_steps or self.elapsed >= self.budget.max_seconds

    def save(self) -> None:
        with atomic_path(self.checkpoint_path) as temporary:
            torch.save({
                "step": self.step, "elapsed": self.elapsed, "losses": self.losses,
                "modules": {k: m.state_dict() for k, m in self.modules.items()},
                "optimizer": self.optimizer.state_dict(),
                "ema": {k: e.shadow for k, e in self.ema.items()},
            }, temporary)

    def restore(self) -> bool:
        if not self.checkpoint_path.exists():
            return False
        state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)  # tensors and numbers only
        for key, module in self.modules.items():
            module.load_state_dict(state["modules"][key])
        self.optimizer.load_state_dict(state["optimizer"])
        for key, ema in self.ema.items():
            ema.shadow = {k: v.to(next(iter(ema.shadow.values())).device) for k, v in state["ema"][key].items()}
        self.step, self.elapsed, self.losses = state["step"], state["elapsed"], state["losses"]
        self.log(f"[{self.name}] resumed at step {self.step} ({self.elapsed:.0f} s done)")
        return True

    def run(self, step_fn: Callable[[int, torch.Generator], float], resume: bool) -> None:
        if not (resume and self.restore()):
            self.step, self.elapsed, self.losses = 0, 0.0, []
        last_save = time.perf_counter()
        window: list[float] = []
        while not self.finished():
            started = time.perf_counter()
            scale = warmup_cosine(self.progress(), self.step, self.warmup)
            for group in self.optimizer.param_groups:
                group["lr"] = self.base_lr * scale
            loss = float(step_fn(self.step, step_generator(self.seed, self.step)))
            if not math.isfinite(loss):
                raise RuntimeError(f"[{self.name}] loss became {loss} at step {self.step}")
            for key, ema in self.ema.items():
                ema.update(self.modules[key], self.step)
            self.step += 1
            self.elapsed += time.perf_counter() - started
            window.append(loss)
            if self.step % self.budget.log_every == 0 or self.finished():
                self.losses.append((self.step, sum(window) / len(window)))
                self.log(f"[{self.name}] step {self.step} loss {self.losses[-1][1]:.4f} lr {self.base_lr * scale:.2e} {self.elapsed:.0f}s")
                window = []
            every = self.budget.checkpoint_steps
            if (every and self.step % every == 0) or time.perf_counter() - last_save > self.budget.checkpoint_seconds:
                self.save()
                last_save = time.perf_counter()
        self.save()

    def final_loss(self) -> float | None:
        return self.losses[-1][1] if self.losses else None


def stage_summary(loop: Loop, **extra) -> dict:
    """What a stage reports to the build manifest."""
    return {"steps": loop.step, "seconds": round(loop.elapsed, 1), "final_loss": loop.final_loss(), "seed": loop.seed,
            "losses": [[s, round(v, 5)] for s, v in loop.losses], **extra}
