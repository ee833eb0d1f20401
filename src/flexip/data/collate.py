"""Batching samples: a DataLoader `collate_fn` that keeps PIL images and sums the per-sample skip counts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from flexip.errors import FlexIPInputError


def collate_samples(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """DataLoader `collate_fn` that keeps PIL images: a dict of lists (one entry per sample), except
    `skipped`, which becomes one Counter summed over the batch (add these up for global skip counts)."""
    if not samples:
        raise FlexIPInputError("cannot collate an empty batch")
    batch: dict[str, Any] = {key: [sample[key] for sample in samples] for key in samples[0] if key != "skipped"}
    total: Counter[str] = Counter()
    for sample in samples:
        total.update(sample.get("skipped", {}))
    batch["skipped"] = total
    return batch
