"""`Loop`: the resumable, deterministic training loop every stage trainer of the miniature stack runs,
assembled from flexip's own training pieces — the step-seeded generator (`flexip.training.tracking`), the
EMA (`flexip.training.ema`), the learning-rate schedule (`flexip.training.schedules`) and the checkpoint
folders (`flexip.training.checkpointing`: safetensors + JSON, written aside and published atomically,
rotated, the newest complete one resumed).

Determinism: every step draws its randomness from a generator derived from (seed, step) only, so a run
that stops at a checkpoint and resumes takes exactly the steps of a straight run (on one device).

Checkpoint layout: `WORKDIR/checkpoints/step-000100/training_state/` with `modules`, `optimizer` and
`ema` state trees and `trainer_state.json` (stage, step, elapsed seconds, loss curve).
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from flexip.errors import FlexIPError
from flexip.training import checkpointing as ckpt
from flexip.training.ema import EMA
from flexip.training.schedules import scheduled_lr
from flexip.training.tracking import step_generator

KEEP_CHECKPOINTS = 2


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
    `optimizer` and (optionally) `ema`; the learning rate warms up, then follows a cosine to 0.1 × base
    over the budget's progress (steps or seconds, whichever runs out first)."""

    name: str
    workdir: Path
    modules: dict
    optimizer: torch.optim.Optimizer
    seed: int
    budget: Budget
    base_lr: float
    warmup: int = 0
    ema: dict[str, EMA] = field(default_factory=dict)  # module name -> its EMA
    log: Callable[[str], None] = print
    step: int = 0
    elapsed: float = 0.0
    losses: list = field(default_factory=list)  # [step, mean loss] every log_every steps

    def progress(self) -> float:
        return max(self.step / self.budget.max_steps, self.elapsed / self.budget.max_seconds)

    def finished(self) -> bool:
        return self.step >= self.budget.max_steps or self.elapsed >= self.budget.max_seconds

    def save(self) -> Path:
        def write(folder: Path) -> None:
            state = folder / ckpt.STATE_DIR
            state.mkdir()
            ckpt.save_state_tree({key: module.state_dict() for key, module in self.modules.items()}, state, "modules")
            ckpt.save_state_tree(self.optimizer.state_dict(), state, "optimizer")
            if self.ema:
                ckpt.save_state_tree({key: ema.state_dict() for key, ema in self.ema.items()}, state, "ema")
            ckpt.save_trainer_state(state, {"stage": self.name, "step": self.step, "elapsed": self.elapsed, "losses": self.losses, "seed": self.seed})

        return ckpt.write_checkpoint(self.workdir, self.step, write, keep=KEEP_CHECKPOINTS)

    def restore(self) -> bool:
        checkpoint = ckpt.resolve_resume(self.workdir, "latest", warn=lambda message: self.log(f"[{self.name}] {message}"))
        if checkpoint is None:
            return False
        state_dir = checkpoint / ckpt.STATE_DIR
        modules = ckpt.load_state_tree(state_dir, "modules")
        for key, module in self.modules.items():
            module.load_state_dict(modules[key])
        self.optimizer.load_state_dict(ckpt.load_state_tree(state_dir, "optimizer"))
        if self.ema:
            emas = ckpt.load_state_tree(state_dir, "ema")
            for key, ema in self.ema.items():
                ema.load_state_dict(emas[key])
        state = ckpt.load_trainer_state(checkpoint)
        self.step, self.elapsed, self.losses = int(state["step"]), float(state["elapsed"]), [list(pair) for pair in state["losses"]]
        self.log(f"[{self.name}] resumed at step {self.step} ({self.elapsed:.0f} s done) from {checkpoint.name}")
        return True

    def run(self, step_fn: Callable[[int, torch.Generator], float], resume: bool) -> None:
        if not (resume and self.restore()):  # restore() cleans up interrupted writes before it looks
            # a fresh start replaces an earlier run's checkpoints: left there, their higher steps would outlive
            # (and rotate away) this run's, and a later resume would pick them up
            shutil.rmtree(ckpt.checkpoints_root(self.workdir), ignore_errors=True)
            self.step, self.elapsed, self.losses = 0, 0.0, []
        last_save, saved_step = time.perf_counter(), None
        window: list[float] = []
        while not self.finished():
            started = time.perf_counter()
            lr = scheduled_lr(self.base_lr, self.step, self.warmup, self.progress(), "cosine", floor=0.1)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            loss = float(step_fn(self.step, step_generator(self.seed, self.step, 0, 0)))
            if not math.isfinite(loss):
                raise FlexIPError(f"[{self.name}] the loss became {loss} at step {self.step}: stopped, no checkpoint written (lower the lr)")
            for key, ema in self.ema.items():
                ema.update(self.modules[key])
            self.step += 1
            self.elapsed += time.perf_counter() - started
            window.append(loss)
            if self.step % self.budget.log_every == 0 or self.finished():
                self.losses.append([self.step, sum(window) / len(window)])
                self.log(f"[{self.name}] step {self.step} loss {self.losses[-1][1]:.4f} lr {lr:.2e} {self.elapsed:.0f}s")
                window = []
            every = self.budget.checkpoint_steps
            if (every and self.step % every == 0) or time.perf_counter() - last_save > self.budget.checkpoint_seconds:
                self.save()
                last_save, saved_step = time.perf_counter(), self.step
        if saved_step != self.step:
            self.save()

    def final_loss(self) -> float | None:
        return self.losses[-1][1] if self.losses else None


def stage_summary(loop: Loop, **extra) -> dict:
    """What a stage reports to the build manifest."""
    return {
        "steps": loop.step,
        "seconds": round(loop.elapsed, 1),
        "final_loss": loop.final_loss(),
        "seed": loop.seed,
        "losses": [[s, round(v, 5)] for s, v in loop.losses],
        **extra,
    }
