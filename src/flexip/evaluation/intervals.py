"""How sure is a step of a sweep? Paired, cluster-bootstrap intervals for differences between conditions.

A γ sweep scores the same (subject, prompt, noise) cells under every condition, so the difference
between two conditions is measured cell by cell (paired). Cells of one subject are not independent
(they share references and identity), so the bootstrap resamples whole subjects (clusters), not cells.
Pure functions of score tensors; nothing here looks at images or models.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from flexip.errors import FlexIPInputError


@dataclass(frozen=True)
class StepInterval:
    """Mean of (later − earlier) over all cells, and its bootstrap interval [low, high]."""

    mean: float
    low: float
    high: float

    @property
    def sign(self) -> int:
        """+1 / −1 when the interval excludes 0 (a resolved rise / fall), 0 when it does not."""
        return 1 if self.low > 0 else -1 if self.high < 0 else 0


def step_intervals(scores: torch.Tensor, groups: torch.Tensor, resamples: int = 2000, level: float = 0.95, seed: int = 0) -> list[StepInterval]:
    """For scores of shape (conditions, cells) and each cell's group (cluster) id, the interval of every
    adjacent step `scores[k + 1] − scores[k]`, from `resamples` draws of the groups with replacement
    (percentile interval at `level`, deterministic for a seed)."""
    scores = torch.as_tensor(scores, dtype=torch.float64)
    groups = torch.as_tensor(groups)
    if scores.ndim != 2 or scores.shape[0] < 2:
        raise FlexIPInputError(f"scores must be (conditions ≥ 2, cells), got shape {tuple(scores.shape)}")
    if groups.shape != (scores.shape[1],):
        raise FlexIPInputError(f"groups must give one id per cell ({scores.shape[1]}), got shape {tuple(groups.shape)}")
    if not 0.0 < level < 1.0 or resamples < 1:
        raise FlexIPInputError(f"need 0 < level < 1 and resamples ≥ 1, got level={level}, resamples={resamples}")
    steps = scores[1:] - scores[:-1]  # (steps, cells)
    ids, cluster = torch.unique(groups, return_inverse=True)
    # per cluster: the sum of each step's differences and the number of cells
    sums = torch.zeros(steps.shape[0], len(ids), dtype=torch.float64).index_add_(1, cluster, steps)
    counts = torch.bincount(cluster, minlength=len(ids)).to(torch.float64)
    draws = torch.randint(len(ids), (resamples, len(ids)), generator=torch.Generator().manual_seed(seed))
    weights = torch.zeros(resamples, len(ids), dtype=torch.float64).scatter_add_(1, draws, torch.ones_like(draws, dtype=torch.float64))
    means = (weights @ sums.T) / (weights @ counts).unsqueeze(1)  # (resamples, steps)
    tail = (1.0 - level) / 2
    low, high = torch.quantile(means, tail, dim=0), torch.quantile(means, 1.0 - tail, dim=0)
    centre = steps.mean(dim=1)
    return [StepInterval(float(m), float(lo), float(hi)) for m, lo, hi in zip(centre, low, high)]


__all__ = ["StepInterval", "step_intervals"]
