"""Training samples from manifest records: a map-style torch Dataset, a modality-mixing sampler and a
collate function that keeps PIL images.

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

import hashlib
import logging
import random
from collections import Counter
from dataclasses import replace
from typing import Any, Iterator, Mapping, Sequence

from PIL import Image
from torch.utils.data import Dataset, Sampler

from flexip.data.augment import NO_AUGMENT, ReferenceAugment, augment_reference
from flexip.data.images import load_image
from flexip.data.manifest import MODALITIES, ImageRecord, MultiViewRecord, Record, VideoRecord
from flexip.data.video import VideoReadError, count_frames, read_frames
from flexip.errors import FlexIPInputError

logger = logging.getLogger(__name__)

#: Why a record can be skipped at sample time.
SKIP_REASONS: tuple[str, ...] = (
    "missing_file",  # image, video, view or mask file does not exist
    "corrupt_image",  # image or view unreadable (empty, not an image, truncated, too large)
    "corrupt_mask",  # mask file unreadable
    "bad_mask",  # mask size differs from the image's, or the mask has no white pixels
    "corrupt_video",  # video unreadable, no video stream, or ends before its stated frame count
    "video_too_short",  # fewer than min_gap + 1 frames (or no captioned frame has a partner frame)
    "missing_caption",  # no caption field, no sidecar .txt, or an empty caption
)


class _Skip(Exception):
    """Internal: this record cannot give a sample now; `reason` is one of SKIP_REASONS."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def derived_rng(*parts: Any) -> random.Random:
    """A `random.Random` seeded from a stable hash of `parts` (the same in every process and run,
    unaffected by PYTHONHASHSEED)."""
    digest = hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "little"))


class FlexIPDataset(Dataset):
    """Map-style dataset over manifest records; `dataset[i]` or `dataset[(i, epoch)]` gives a sample
    dict (see the module docstring).

    Args:
        records: from `load_manifest` (at least one).
        seed: base seed of every random choice.
        min_gap, max_gap: the reference and target frames of a video sample are `min_gap..max_gap`
            frames apart (inclusive; `max_gap=None`: no upper bound). A clip needs `min_gap + 1` frames.
        augment: reference augmentation of image samples.
        video_augment: optional augmentation of the reference frame/view of video samples (default none:
            the other frame already differs).
        subject_references: probability that an image sample's reference is another image record of
            the same `subject` (its own mask and augmentation) instead of the target itself, so identity
            has to be carried across scenes rather than copied. Records without a subject, or whose
            subject has no other image, always use their own image. 0 (default): never.
        variant_masks: probability that the reference of a clip or capture with subject masks (`mask` /
            `masks`) is isolated on the plain backdrop; otherwise it keeps its scene (and gets
            `video_augment`). Either way the sample carries its target mask. 1 (default): always.
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
        if min_gap < 1:
            raise FlexIPInputError(f"min_gap must be >= 1 (two different frames), got {min_gap}")
        if max_gap is not None and max_gap < min_gap:
            raise FlexIPInputError(f"max_gap must be >= min_gap, got min_gap={min_gap}, max_gap={max_gap}")
        if max_attempts < 1:
            raise FlexIPInputError(f"max_attempts must be >= 1, got {max_attempts}")
        if not 0.0 <= subject_references <= 1.0:
            raise FlexIPInputError(f"subject_references is a probability in [0, 1], got {subject_references}")
        if not 0.0 <= variant_masks <= 1.0:
            raise FlexIPInputError(f"variant_masks is a probability in [0, 1], got {variant_masks}")
        self.seed = int(seed)
        self.min_gap = int(min_gap)
        self.max_gap = None if max_gap is None else int(max_gap)
        self.augment = augment
        self.video_augment = video_augment
        self.subject_references = float(subject_references)
        self.variant_masks = float(variant_masks)
        self.max_attempts = int(max_attempts)
        self.epoch = 0
        self.indices_by_modality: dict[str, list[int]] = {m: [] for m in MODALITIES}
        self.images_by_subject: dict[str, list[int]] = {}
        for position, record in enumerate(self.records):
            self.indices_by_modality[record.modality].append(position)
            if isinstance(record, ImageRecord) and record.subject is not None:
                self.images_by_subject.setdefault(record.subject, []).append(position)
        self.skipped: Counter[str] = Counter()
        self._frame_counts: dict[str, int] = {}
        self._warned: set[tuple[str, str]] = set()

    # --- public API ---------------------------------------------------------------------------------

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
                sample = self._make_sample(record, rng)
            except _Skip as skip:
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

    # --- one record → one sample --------------------------------------------------------------------

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

    def _make_sample(self, record: Record, rng: random.Random) -> dict[str, Any]:
        partner, target_mask = None, None
        if isinstance(record, ImageRecord):
            reference, target, caption, partner, target_mask = self._image_sample(record, rng)
            frames = None
        elif isinstance(record, VideoRecord):
            reference, target, caption, frames = self._video_sample(record, rng)
        else:
            reference, target, caption, frames = self._multiview_sample(record, rng)
        isolate = False
        if isinstance(record, VideoRecord) and record.mask is not None:
            isolate = self._draw_isolation(rng)
            reference, target_mask = self._isolate_frame(record, reference, frames, rng, isolate)
        elif isinstance(record, MultiViewRecord) and record.masks is not None:
            isolate = self._draw_isolation(rng)
            reference, target_mask = self._isolate_view(record, reference, frames, rng, isolate)
        if record.modality == "video" and not isolate and self.video_augment is not None:
            reference = augment_reference(reference, rng, self.video_augment)
        return {
            "reference": reference,
            "target": target,
            "caption": caption,
            "modality": record.modality,
            "kind": record.kind,
            "subject": record.subject,
            "source": record.source,
            "frames": frames,
            "partner": partner,
            "target_mask": target_mask,
        }

    def _image_sample(self, record: ImageRecord, rng: random.Random):
        caption = _caption(record.caption, record.sidecar_caption_path(), record.image)
        target = _read_image(record.image, "corrupt_image")
        own_mask = None if record.mask is None else _read_image(record.mask, "corrupt_mask")
        partner = self._subject_partner(record, rng)
        source = record if partner is None else self.records[partner]
        if partner is None:
            image, mask = target, own_mask
        else:
            image = _read_image(source.image, "corrupt_image")
            mask = None if source.mask is None else _read_image(source.mask, "corrupt_mask")
        reference = _augment_masked(image, rng, self.augment, mask, f"mask {source.mask}")
        return reference, target, caption, partner, own_mask

    def _subject_partner(self, record: ImageRecord, rng: random.Random) -> int | None:
        """Another image record of `record`'s subject, with probability `subject_references` (no
        random draw at all when that is 0, so such runs keep their exact sample sequence)."""
        if self.subject_references <= 0.0 or record.subject is None:
            return None
        if rng.random() >= self.subject_references:
            return None
        others = [i for i in self.images_by_subject.get(record.subject, ()) if self.records[i] is not record]
        return others[rng.randrange(len(others))] if others else None

    def _video_sample(self, record: VideoRecord, rng: random.Random):
        if not record.video.is_file():
            raise _Skip("missing_file", f"video not found: {record.video}")
        frame_count = self._frame_count(record)
        if frame_count < self.min_gap + 1:
            raise _Skip(
                "video_too_short",
                f"{record.video} has {frame_count} frames; a frame gap of {self.min_gap} needs {self.min_gap + 1}",
            )
        clip_caption = record.caption
        if clip_caption is None or not clip_caption.strip():
            clip_caption = _read_sidecar(record.sidecar_caption_path())
        if _usable(clip_caption):
            captioned = list(range(frame_count))
        else:
            captioned = [frame for frame in range(frame_count) if _usable(_span_caption(record, frame))]
        if not captioned:
            raise _Skip("missing_caption", f"no caption for any frame of {record.video} (no 'caption', "
                                           f"'captions' or sidecar {record.sidecar_caption_path().name})")
        gap = self.min_gap
        targets = [t for t in captioned if t - gap >= 0 or t + gap <= frame_count - 1]
        if not targets:
            raise _Skip("video_too_short", f"no captioned frame of {record.video} has a partner {gap}+ frames away")
        target = targets[rng.randrange(len(targets))]
        reference = self._partner_frame(target, frame_count, rng)
        try:
            reference_image, target_image = read_frames(record.video, [reference, target])
        except VideoReadError as error:
            raise _Skip("corrupt_video", str(error)) from None
        except Exception as error:  # see _read_image
            raise _Skip("corrupt_video", f"cannot decode {record.video}: {type(error).__name__}: {error}") from None
        caption = _span_caption(record, target)
        caption = caption if _usable(caption) else clip_caption
        return reference_image, target_image, caption.strip(), (reference, target)

    def _variant_isolation(self) -> ReferenceAugment:
        """How a clip's or capture's masked reference is made: `video_augment` if set, else no augmentation
        with the image samples' backdrop and margin (so references of both modalities look alike)."""
        return self.video_augment or replace(NO_AUGMENT, background=self.augment.background, mask_margin=self.augment.mask_margin)

    def _draw_isolation(self, rng: random.Random) -> bool:
        """Whether a clip's or capture's reference is isolated (`variant_masks`; no draw at 1)."""
        return self.variant_masks >= 1.0 or rng.random() < self.variant_masks

    def _isolate_view(self, record: MultiViewRecord, reference: Image.Image, views: tuple[int, int], rng: random.Random,
                      isolate: bool = True):
        """(the reference view's subject on a plain backdrop, or the view as it is when not `isolate`;
        the target view's mask)."""
        mask, target_mask = (_read_image(record.masks[v], "corrupt_mask") for v in views)
        if not isolate:
            return reference, target_mask
        return _augment_masked(reference, rng, self._variant_isolation(), mask, f"mask {record.masks[views[0]]}"), target_mask

    def _isolate_frame(self, record: VideoRecord, reference: Image.Image, frames: tuple[int, int], rng: random.Random,
                       isolate: bool = True):
        """(the reference frame's subject on a plain backdrop (`_variant_isolation`), or the frame as it
        is when not `isolate`; the target frame's mask), from the record's mask clip."""
        if not record.mask.is_file():
            raise _Skip("missing_file", f"mask clip not found: {record.mask}")
        try:
            mask, target_mask = read_frames(record.mask, list(frames))
        except Exception as error:  # VideoReadError, or any decoder error on a hostile file
            raise _Skip("corrupt_mask", f"mask clip {record.mask}, frames {frames}: {error}") from None
        if not isolate:
            return reference, target_mask
        isolated = _augment_masked(reference, rng, self._variant_isolation(), mask, f"mask clip {record.mask}, frame {frames[0]}")
        return isolated, target_mask

    def _partner_frame(self, target: int, frame_count: int, rng: random.Random) -> int:
        """A frame `min_gap..max_gap` away from `target` (before or after), uniformly among them."""
        max_gap = frame_count - 1 if self.max_gap is None else self.max_gap
        before = range(max(0, target - max_gap), target - self.min_gap + 1)
        after = range(target + self.min_gap, min(frame_count - 1, target + max_gap) + 1)
        choice = rng.randrange(len(before) + len(after))
        return before[choice] if choice < len(before) else after[choice - len(before)]

    def _multiview_sample(self, record: MultiViewRecord, rng: random.Random):
        count = len(record.views)
        target = rng.randrange(count)
        reference = rng.randrange(count - 1)
        reference += reference >= target
        caption = record.caption_for_view(target)
        if not _usable(caption):
            raise _Skip("missing_caption", f"no caption for view {target} ({record.views[target]})")
        target_image = _read_image(record.views[target], "corrupt_image")
        reference_image = _read_image(record.views[reference], "corrupt_image")
        return reference_image, target_image, caption.strip(), (reference, target)

    def _frame_count(self, record: VideoRecord) -> int:
        key = str(record.video)
        if key not in self._frame_counts:
            try:
                self._frame_counts[key] = count_frames(record.video)
            except VideoReadError as error:
                raise _Skip("corrupt_video", str(error)) from None
            except Exception as error:  # see _read_image
                raise _Skip("corrupt_video", f"cannot decode {record.video}: {type(error).__name__}: {error}") from None
        return self._frame_counts[key]

    def _log_skip(self, record: Record, skip: _Skip) -> None:
        key = (record.source, skip.reason)
        level = logging.DEBUG if key in self._warned else logging.WARNING
        self._warned.add(key)
        logger.log(level, "skipping %s (%s): %s", record.source or "record", skip.reason, skip)


def _usable(caption: str | None) -> bool:
    return caption is not None and bool(caption.strip())


def _span_caption(record: VideoRecord, frame: int) -> str | None:
    for span in record.captions:
        if span.covers(frame):
            return span.caption
    return None


def _read_sidecar(path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() if path.is_file() else None
    except (OSError, UnicodeDecodeError):
        return None


def _caption(inline: str | None, sidecar, media) -> str:
    caption = inline if _usable(inline) else _read_sidecar(sidecar)
    if not _usable(caption):
        raise _Skip("missing_caption", f"no caption for {media} (no 'caption' field and no usable {sidecar.name})")
    return caption.strip()


def _augment_masked(image: Image.Image, rng: random.Random, settings: ReferenceAugment, mask, mask_name: str) -> Image.Image:
    """`augment_reference`, where only the mask can make it fail: a mask of the wrong size or without
    subject pixels makes the record a `bad_mask` skip, named by `mask_name`."""
    try:
        return augment_reference(image, rng, settings, mask)
    except FlexIPInputError as error:
        raise _Skip("bad_mask", f"{mask_name}: {error}") from None


def _read_image(path, corrupt_reason: str) -> Image.Image:
    if not path.is_file():
        raise _Skip("missing_file", f"file not found: {path}")
    try:
        return load_image(path)
    except FlexIPInputError as error:
        raise _Skip(corrupt_reason, str(error)) from None
    except Exception as error:  # decoders raise many types on hostile files; a bad file must not stop training
        raise _Skip(corrupt_reason, f"cannot decode {path}: {type(error).__name__}: {error}") from None


class ModalityMixSampler(Sampler):
    """Draws record indices so that modalities appear in a given ratio, e.g. {"image": 0.5, "video": 0.5}.

    Draw `i` of an epoch picks a modality with probability proportional to its ratio, then a record of
    that modality uniformly; both come from a generator derived from (seed, epoch, i) alone, so any
    draw can be recomputed directly: resuming after `k` draws is `set_epoch(epoch, start=k)`, with no
    replay. Yields `(index, epoch)` keys for `FlexIPDataset`.

    Args:
        records: the dataset's records (or the `FlexIPDataset` itself).
        ratios: modality → weight (normalized; need not sum to 1). Modalities left out are never drawn.
            None: proportional to the number of records (plain uniform sampling over records).
        num_samples: draws per epoch for this replica (default: the number of records).
        seed: base seed.
        num_replicas, rank: for distributed training, replica `rank` takes global draws
            `rank, rank + num_replicas, ...` so replicas never share a draw.
    """

    def __init__(
        self,
        records: Sequence[Record] | FlexIPDataset,
        ratios: Mapping[str, float] | None = None,
        *,
        num_samples: int | None = None,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        records = records.records if isinstance(records, FlexIPDataset) else list(records)
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
