"""The modality-mixing sampler: record indices drawn so that images and videos appear in a set ratio."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from torch.utils.data import Dataset, Sampler

from flexip.data.manifest import MODALITIES, Record
from flexip.data.seeding import derived_rng
from flexip.errors import FlexIPInputError


class ModalityMixSampler(Sampler):
    """Draws record indices so that modalities appear in a given ratio, e.g. {"image": 0.5, "video": 0.5}.

    Draw `i` of an epoch picks a modality with probability proportional to its ratio, then a record of
    that modality uniformly; both come from a generator derived from (seed, epoch, i) alone, so any
    draw can be recomputed directly: resuming after `k` draws is `set_epoch(epoch, start=k)`, with no
    replay. Yields `(index, epoch)` keys for `FlexIPDataset`.

    Args:
        records: the dataset's records (or the dataset itself: anything with a `records` list).
        ratios: modality → weight (normalized; need not sum to 1). Modalities left out are never drawn.
            None: proportional to the number of records (plain uniform sampling over records).
        num_samples: draws per epoch for this replica (default: the number of records).
        seed: base seed.
        num_replicas, rank: for distributed training, replica `rank` takes global draws
            `rank, rank + num_replicas, ...` so replicas never share a draw.
    """

    def __init__(
        self,
        records: Sequence[Record] | Dataset,
        ratios: Mapping[str, float] | None = None,
        *,
        num_samples: int | None = None,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        records = list(getattr(records, "records", records))  # a dataset: its records
        if not records:
            raise FlexIPInputError("ModalityMixSampler needs at least one record")
        self.pools: dict[str, list[int]] = {m: [] for m in MODALITIES}
        for position, record in enumerate(records):
            self.pools[record.modality].append(position)
        if ratios is None:
            ratios = {m: float(len(pool)) for m, pool in self.pools.items()}
        self.ratios = _normalize_ratios(ratios, self.pools)
        self.num_samples = len(records) if num_samples is None else int(num_samples)
        if self.num_samples < 1:
            raise FlexIPInputError(f"num_samples must be >= 1, got {self.num_samples}")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise FlexIPInputError(f"need num_replicas >= 1 and 0 <= rank < num_replicas, got {num_replicas}, {rank}")
        self.seed, self.num_replicas, self.rank = int(seed), int(num_replicas), int(rank)
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch; `start` skips this replica's first `start` draws (exact resume)."""
        if not 0 <= start <= self.num_samples:
            raise FlexIPInputError(f"start must be in [0, {self.num_samples}], got {start}")
        self.epoch, self.start = int(epoch), int(start)

    def draw(self, position: int, epoch: int | None = None) -> int:
        """The record index of this replica's draw number `position` in `epoch` (default: current)."""
        epoch = self.epoch if epoch is None else epoch
        global_draw = position * self.num_replicas + self.rank
        rng = derived_rng("mix", self.seed, epoch, global_draw)
        threshold, chosen = rng.random(), None
        cumulative = 0.0
        for modality, weight in self.ratios.items():
            if weight <= 0:
                continue
            chosen = modality
            cumulative += weight
            if threshold < cumulative:
                break
        pool = self.pools[chosen]
        return pool[rng.randrange(len(pool))]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        for position in range(self.start, self.num_samples):
            yield self.draw(position, epoch), epoch

    def __len__(self) -> int:
        return self.num_samples - self.start


def _normalize_ratios(ratios: Mapping[str, float], pools: Mapping[str, list[int]]) -> dict[str, float]:
    unknown = set(ratios) - set(MODALITIES)
    if unknown:
        raise FlexIPInputError(f"unknown modality in ratios: {sorted(unknown)}; expected 'image' and/or 'video'")
    for modality, weight in ratios.items():
        if not (isinstance(weight, (int, float)) and weight >= 0):
            raise FlexIPInputError(f"ratio for {modality!r} must be a number >= 0, got {weight!r}")
        if weight > 0 and not pools[modality]:
            raise FlexIPInputError(f"ratio for {modality!r} is {weight} but the manifest has no {modality} records")
    total = float(sum(ratios.values()))
    if total <= 0:
        raise FlexIPInputError("ratios must have at least one positive weight")
    return {m: float(ratios.get(m, 0.0)) / total for m in MODALITIES}
