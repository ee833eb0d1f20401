"""What the run reports: per-modality loss, γ values, skip counts, and the per-step random generator.

Numbers are accumulated between log steps on every process and summed across processes when logged
(`accelerator.reduce`), so a log line describes the whole run, not one GPU.
"""

from __future__ import annotations

from collections import Counter

import torch

from flexip.data.samples import SKIP_REASONS
from flexip.data.seeding import derived_seed

MODALITIES = ("image", "video")


def step_generator(seed: int, step: int, micro_batch: int, rank: int) -> torch.Generator:
    """The CPU generator of every random draw of one micro-batch (timesteps, noise, γ, dropout): derived
    from (seed, step, micro-batch, process) only, so a resumed run draws exactly what a straight one would."""
    return torch.Generator(device="cpu").manual_seed(derived_seed("train-step", seed, step, micro_batch, rank) & (2**63 - 1))


def format_skips(counts: Counter) -> str:
    """'corrupt_image=1 video_too_short=2', or 'none'."""
    items = [f"{reason}={count}" for reason, count in sorted(counts.items()) if count]
    return " ".join(items) if items else "none"


class RunningStats:
    """Per-modality loss sums and γ values since the last log."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.loss_sum = {m: 0.0 for m in MODALITIES}
        self.count = {m: 0 for m in MODALITIES}
        self.gammas: dict[str, list[torch.Tensor]] = {m: [] for m in MODALITIES}

    def add(self, per_sample_loss: torch.Tensor, gammas: torch.Tensor, modalities: list[str]) -> None:
        losses = per_sample_loss.detach().float().cpu()
        for modality in MODALITIES:
            mask = torch.tensor([m == modality for m in modalities])
            if mask.any():
                self.loss_sum[modality] += float(losses[mask].sum())
                self.count[modality] += int(mask.sum())
                self.gammas[modality].append(gammas[mask])

    def reduced(self, accelerator) -> dict[str, float]:
        """{'loss': ..., 'loss/image': ..., 'loss/video': ...} over all processes (modalities seen only)."""
        local = torch.tensor([v for m in MODALITIES for v in (self.loss_sum[m], float(self.count[m]))], dtype=torch.float64)
        total = accelerator.reduce(local.to(accelerator.device), reduction="sum").cpu()
        values, loss_sum, count = {}, 0.0, 0.0
        for index, modality in enumerate(MODALITIES):
            modality_sum, modality_count = float(total[2 * index]), float(total[2 * index + 1])
            if modality_count:
                values[f"loss/{modality}"] = modality_sum / modality_count
            loss_sum, count = loss_sum + modality_sum, count + modality_count
        if count:
            values["loss"] = loss_sum / count
        return values

    def gamma_values(self) -> dict[str, torch.Tensor]:
        """This process's γ draws since the last log, by modality."""
        return {m: torch.cat(v) for m, v in self.gammas.items() if v}


def reduce_skips(counts: Counter, accelerator) -> Counter:
    """Sum skip counts over processes (every process must call this at the same point)."""
    reasons = list(SKIP_REASONS)  # the same order on every process
    local = torch.tensor([counts.get(reason, 0) for reason in reasons], dtype=torch.float64, device=accelerator.device)
    total = accelerator.reduce(local, reduction="sum").cpu()
    return Counter({reason: int(value) for reason, value in zip(reasons, total.tolist()) if value})
