"""One manifest record + a random generator → one training sample: the reference the adapter sees and
the target the UNet learns to denoise.

    image       the target image; the reference is that image (or, with `subject_references`, another image
                of the same subject), augmented and, with a mask, isolated on a plain backdrop
    video clip  two frames `min_gap..max_gap` apart: the target a captioned frame, the reference the other
    multi-view  two different views of a capture: the target view and another one
    masks       a clip's mask clip or a capture's view masks isolate the reference's subject (`variant_masks`)

A record that cannot give a sample now (a missing or corrupt file, a clip too short, no caption, a bad mask)
raises `UnusableRecord`, whose `reason` is one of `SKIP_REASONS`; `FlexIPDataset` then draws a replacement.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from PIL import Image

from flexip.data.augment import NO_AUGMENT, ReferenceAugment, augment_reference
from flexip.data.images import load_image
from flexip.data.manifest import ImageRecord, MultiViewRecord, Record, VideoRecord
from flexip.data.video import VideoReadError, count_frames, read_frames
from flexip.errors import FlexIPInputError

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


class UnusableRecord(Exception):
    """This record cannot give a sample now; `reason` is one of SKIP_REASONS."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class SampleBuilder:
    """How a record becomes a sample (see the module docstring): `build(record, rng)`, with these settings.

    Args:
        records: all records of the dataset (same-subject references are looked up among them).
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
    """

    def __init__(
        self,
        records: Sequence[Record],
        *,
        min_gap: int = 1,
        max_gap: int | None = 8,
        augment: ReferenceAugment = ReferenceAugment(),
        video_augment: ReferenceAugment | None = None,
        subject_references: float = 0.0,
        variant_masks: float = 1.0,
    ) -> None:
        if min_gap < 1:
            raise FlexIPInputError(f"min_gap must be >= 1 (two different frames), got {min_gap}")
        if max_gap is not None and max_gap < min_gap:
            raise FlexIPInputError(f"max_gap must be >= min_gap, got min_gap={min_gap}, max_gap={max_gap}")
        if not 0.0 <= subject_references <= 1.0:
            raise FlexIPInputError(f"subject_references is a probability in [0, 1], got {subject_references}")
        if not 0.0 <= variant_masks <= 1.0:
            raise FlexIPInputError(f"variant_masks is a probability in [0, 1], got {variant_masks}")
        self.records = records
        self.min_gap = int(min_gap)
        self.max_gap = None if max_gap is None else int(max_gap)
        self.augment = augment
        self.video_augment = video_augment
        self.subject_references = float(subject_references)
        self.variant_masks = float(variant_masks)
        self.images_by_subject: dict[str, list[int]] = {}
        for position, record in enumerate(self.records):
            if isinstance(record, ImageRecord) and record.subject is not None:
                self.images_by_subject.setdefault(record.subject, []).append(position)
        self._frame_counts: dict[str, int] = {}

    def build(self, record: Record, rng: random.Random) -> dict[str, Any]:
        """The sample of `record` drawn with `rng` (without `index` and `skipped`, which the dataset adds);
        raises `UnusableRecord` when the record cannot give one."""
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
            raise UnusableRecord("missing_file", f"video not found: {record.video}")
        frame_count = self._frame_count(record)
        if frame_count < self.min_gap + 1:
            raise UnusableRecord(
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
            raise UnusableRecord(
                "missing_caption",
                f"no caption for any frame of {record.video} (no 'caption', 'captions' or sidecar {record.sidecar_caption_path().name})",
            )
        gap = self.min_gap
        targets = [t for t in captioned if t - gap >= 0 or t + gap <= frame_count - 1]
        if not targets:
            raise UnusableRecord("video_too_short", f"no captioned frame of {record.video} has a partner {gap}+ frames away")
        target = targets[rng.randrange(len(targets))]
        reference = self._partner_frame(target, frame_count, rng)
        try:
            reference_image, target_image = read_frames(record.video, [reference, target])
        except VideoReadError as error:
            raise UnusableRecord("corrupt_video", str(error)) from None
        except Exception as error:  # see _read_image
            raise UnusableRecord("corrupt_video", f"cannot decode {record.video}: {type(error).__name__}: {error}") from None
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

    def _isolate_view(self, record: MultiViewRecord, reference: Image.Image, views: tuple[int, int], rng: random.Random, isolate: bool = True):
        """(the reference view's subject on a plain backdrop, or the view as it is when not `isolate`;
        the target view's mask)."""
        mask, target_mask = (_read_image(record.masks[v], "corrupt_mask") for v in views)
        if not isolate:
            return reference, target_mask
        return _augment_masked(reference, rng, self._variant_isolation(), mask, f"mask {record.masks[views[0]]}"), target_mask

    def _isolate_frame(self, record: VideoRecord, reference: Image.Image, frames: tuple[int, int], rng: random.Random, isolate: bool = True):
        """(the reference frame's subject on a plain backdrop (`_variant_isolation`), or the frame as it
        is when not `isolate`; the target frame's mask), from the record's mask clip."""
        if not record.mask.is_file():
            raise UnusableRecord("missing_file", f"mask clip not found: {record.mask}")
        try:
            mask, target_mask = read_frames(record.mask, list(frames))
        except Exception as error:  # VideoReadError, or any decoder error on a hostile file
            raise UnusableRecord("corrupt_mask", f"mask clip {record.mask}, frames {frames}: {error}") from None
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
            raise UnusableRecord("missing_caption", f"no caption for view {target} ({record.views[target]})")
        target_image = _read_image(record.views[target], "corrupt_image")
        reference_image = _read_image(record.views[reference], "corrupt_image")
        return reference_image, target_image, caption.strip(), (reference, target)

    def _frame_count(self, record: VideoRecord) -> int:
        key = str(record.video)
        if key not in self._frame_counts:
            try:
                self._frame_counts[key] = count_frames(record.video)
            except VideoReadError as error:
                raise UnusableRecord("corrupt_video", str(error)) from None
            except Exception as error:  # see _read_image
                raise UnusableRecord("corrupt_video", f"cannot decode {record.video}: {type(error).__name__}: {error}") from None
        return self._frame_counts[key]


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
        raise UnusableRecord("missing_caption", f"no caption for {media} (no 'caption' field and no usable {sidecar.name})")
    return caption.strip()


def _augment_masked(image: Image.Image, rng: random.Random, settings: ReferenceAugment, mask, mask_name: str) -> Image.Image:
    """`augment_reference`, where only the mask can make it fail: a mask of the wrong size or without
    subject pixels makes the record a `bad_mask` skip, named by `mask_name`."""
    try:
        return augment_reference(image, rng, settings, mask)
    except FlexIPInputError as error:
        raise UnusableRecord("bad_mask", f"{mask_name}: {error}") from None


def _read_image(path, corrupt_reason: str) -> Image.Image:
    if not path.is_file():
        raise UnusableRecord("missing_file", f"file not found: {path}")
    try:
        return load_image(path)
    except FlexIPInputError as error:
        raise UnusableRecord(corrupt_reason, str(error)) from None
    except Exception as error:  # decoders raise many types on hostile files; a bad file must not stop training
        raise UnusableRecord(corrupt_reason, f"cannot decode {path}: {type(error).__name__}: {error}") from None
