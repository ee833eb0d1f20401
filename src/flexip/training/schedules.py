"""Learning-rate schedules: a linear warm-up, then constant, linear or cosine decay over the run's progress
(0 → 1), down to `floor` × the base rate. Used by `flexip train` (progress counted in steps after the
warm-up) and by the miniworld stage trainers (progress in steps or in their wall-clock budget)."""

from __future__ import annotations

import math

SCHEDULES = ("constant", "linear", "cosine")


def scheduled_lr(base_lr: float, step: int, warmup: int, progress: float, schedule: str = "cosine", floor: float = 0.0) -> float:
    """base · (step + 1) / warmup during the warm-up; then base · (floor + (1 − floor) · d) with d = 1, 1 − p
    or ½(1 + cos πp) for progress p clamped to [0, 1]."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = min(1.0, max(0.0, progress))
    if schedule == "constant":
        return base_lr
    if schedule == "linear":
        decayed = 1.0 - progress
    elif schedule == "cosine":
        decayed = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        raise ValueError(f"unknown schedule {schedule!r}; one of {', '.join(SCHEDULES)}")  # configs check this first
    return base_lr * (floor + (1.0 - floor) * decayed)
