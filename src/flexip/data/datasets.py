"""The training dataset: a map-style torch Dataset of samples over manifest records, robust to bad data.

`SampleBuilder` (samples.py) turns one record into one sample; `ModalityMixSampler` (sampler.py) picks
the records; `collate_samples` (collate.py) batches them.

A sample is a dict:

    reference  PIL RGB   what the adapter sees (augmented still / another frame / another view)
    target     PIL RGB   what the UNet learns to denoise
    caption    str       the target's caption (per-span for videos, per-view for multi-view)
    modality   "image" | "video"          drives the training gate range
    kind       "image" | "video" | "multiview"
    subject    str | None
    source     "manifest.jsonl:12"        where the record came from
    index      int       the record actually used (differs from the requested one after a skip)
    frames     (reference, target) frame or view indices; None for image samples
    partner    int | None  image samples with a same-subject reference: the record whose image it is
    target_mask  PIL | None  the target's subject mask (image mask, or the target frame of a mask clip)
    skipped    dict[str, int]  skips that happened while producing *this* sample (usually empty)

Determinism: every random choice (frames, views, augmentation, replacement records) comes from a
generator derived from (seed, epoch, index, attempt) only, so a sample is reproducible regardless of
worker process, order of access or what was loaded before: the exact-resume guarantee.

Bad data never crashes training: a missing file, unreadable/corrupt image or video, a clip too short
for the frame gap, a missing caption or an unusable mask (of the record or of the same-subject record
lending the reference, or a clip's mask clip) makes the dataset skip the record and draw a
replacement record *of the same modality* (so the sampler's modality ratio is preserved). Each skip is
counted by reason (`SKIP_REASONS`) and logged (a warning the first time per record and reason in a
process). Counting across DataLoader workers: each worker holds its own copy of the dataset, so
`dataset.skip_counts()` in the main process only sees what the main process loaded. The exact global
count is the sum of the per-sample `skipped` increments, which `collate_samples` adds up per batch.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from torch.utils.data import Dataset

from flexip.data.augment import ReferenceAugment
from flexip.data.manifest import MODALITIES, Record
from flexip.data.samples import SampleBuilder, UnusableRecord
from flexip.data.seeding import derived_rng
from flexip.errors import FlexIPInputError

logger = logging.getLogger(__name__)


class FlexIPDataset(Dataset):
    """Map-style dataset over manifest records; `dataset[i]` or `dataset[(i, epoch)]` gives a sample
    dict (see the module docstring).

    Args:
        records: from `load_manifest` (at least one).
        seed: base seed of every random choice.
        min_gap, max_gap, augment, video_augment, subject_references, variant_masks: how a record becomes
            a sample (frame gaps, reference augmentation, same-subject references, mask isolation); see
            `SampleBuilder`.
        max_attempts: replacement draws for one requested index before giving up with
            `FlexIPInputError` (which only happens when nearly all data of a modality is unusable).

    The epoch comes from the key when the key is a tuple `(index, epoch)` (what `ModalityMixSampler`
    yields, robust with persistent DataLoader workers), else from `set_epoch`.
    """

    def __init__(
        self,
        records: Sequence[Record],
        *,
        seed: int = 0,
        min_gap: int = 1,
        max_gap: int | None = 8,
        augment: ReferenceAugment = ReferenceAugment(),
        video_augment: ReferenceAugment | None = None,
        subject_references: float = 0.0,
        variant_masks: float = 1.0,
        max_attempts: int = 50,
    ) -> None:
        self.records = list(records)
        if not self.records:
            raise FlexIPInputError("FlexIPDataset needs at least one record")
        if max_attempts < 1:
            raise FlexIPInputError(f"max_attempts must be >= 1, got {max_attempts}")
        self.samples = SampleBuilder(
            self.records,
            min_gap=min_gap,
            max_gap=max_gap,
            augment=augment,
            video_augment=video_augment,
            subject_references=subject_references,
            variant_masks=variant_masks,
        )
        self.seed = int(seed)
        self.max_attempts = int(max_attempts)
        self.epoch = 0
        self.indices_by_modality: dict[str, list[int]] = {m: [] for m in MODALITIES}
        for position, record in enumerate(self.records):
            self.indices_by_modality[record.modality].append(position)
        self.skipped: Counter[str] = Counter()
        self._warned: set[tuple[str, str]] = set()

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Epoch used by plain integer keys (tuple keys carry their own)."""
        self.epoch = int(epoch)

    def skip_counts(self) -> Counter[str]:
        """Skips seen by *this process's* copy of the dataset, by reason (see the module docstring)."""
        return Counter(self.skipped)

    def modality_counts(self) -> dict[str, int]:
        return {m: len(v) for m, v in self.indices_by_modality.items()}

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, epoch = self._parse_key(key)
        modality = self.records[index].modality
        pool = self.indices_by_modality[modality]
        increments: Counter[str] = Counter()
        candidate = index
        for attempt in range(self.max_attempts):
            rng = derived_rng("sample", self.seed, epoch, index, attempt)
            if attempt > 0:  # replacement: another record of the same modality
                candidate = pool[rng.randrange(len(pool))]
            record = self.records[candidate]
            try:
                sample = self.samples.build(record, rng)
            except UnusableRecord as skip:
                increments[skip.reason] += 1
                self.skipped[skip.reason] += 1
                self._log_skip(record, skip)
                continue
            sample.update(index=candidate, skipped=dict(increments))
            return sample
        raise FlexIPInputError(
            f"{self.max_attempts} {modality} records in a row were unusable while loading index {index} "
            f"(skips: {dict(increments)}); check the data (see the warnings logged by {__name__})"
        )

    def _parse_key(self, key: Any) -> tuple[int, int]:
        if isinstance(key, tuple):
            if len(key) != 2:
                raise FlexIPInputError(f"a dataset key is an index or (index, epoch), got {key!r}")
            index, epoch = int(key[0]), int(key[1])
        else:
            index, epoch = int(key), self.epoch
        if not 0 <= index < len(self.records):
            raise IndexError(f"index {index} out of range for {len(self.records)} records")
        return index, epoch

    def _log_skip(self, record: Record, skip: UnusableRecord) -> None:
        key = (record.source, skip.reason)
        level = logging.DEBUG if key in self._warned else logging.WARNING
        self._warned.add(key)
        logger.log(level, "skipping %s (%s): %s", record.source or "record", skip.reason, skip)
