"""The training manifest: one JSON object per line (JSONL), one training sample source per object.

Three kinds of record (full format with examples in docs/data.md):

    {"modality": "image", "image": "imgs/0001.png", "caption": "a blob in the snow",
     "mask": "masks/0001.png", "subject": "id-17"}
    {"modality": "video", "video": "clips/0001.mp4", "caption": "a bot on the beach"}
    {"modality": "video", "video": "clips/0002.mp4",
     "captions": [{"start": 0, "end": 11, "caption": "a red bot in the snow"}, ...]}
    {"modality": "video", "views": ["views/s3/00.png", "views/s3/01.png"], "caption": "..."}

Relative paths are relative to the folder that holds the manifest. `load_manifest` checks the
*structure* of every line at once and raises `FlexIPInputError` naming the line; it never opens the
media files: a missing or corrupt file is a per-sample problem that the dataset skips and counts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from flexip.atomic import write_text
from flexip.errors import FlexIPInputError

Modality = Literal["image", "video"]
MODALITIES: tuple[str, ...] = ("image", "video")

#: Fields every record kind understands; anything else is kept in `Record.extra`.
_COMMON_FIELDS = {"modality", "caption", "captions", "subject"}


@dataclass(frozen=True)
class CaptionSpan:
    """A caption for frames `start`..`end` of a video, both inclusive (0-based decoded frame indices)."""

    start: int
    end: int
    caption: str

    def covers(self, frame: int) -> bool:
        return self.start <= frame <= self.end


@dataclass(frozen=True)
class ImageRecord:
    """A still image (modality "image", the invariant data). Without `caption`, the caption is read at
    sample time from a sidecar text file with the image's stem (`imgs/0001.txt`). `mask` is white on
    the subject."""

    image: Path
    caption: str | None = None
    mask: Path | None = None
    subject: str | None = None
    source: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    modality: ClassVar[Modality] = "image"
    kind: ClassVar[str] = "image"

    def sidecar_caption_path(self) -> Path:
        return self.image.with_suffix(".txt")


@dataclass(frozen=True)
class VideoRecord:
    """A video clip (modality "video", the variant data). Captions: per frame span (`captions`), else
    the clip's `caption`, else a sidecar text file with the video's stem, read at sample time.
    `mask`: optional clip of the same frames, white on the subject, to isolate the reference frame's
    subject like an image record's mask."""

    video: Path
    caption: str | None = None
    captions: tuple[CaptionSpan, ...] = ()
    subject: str | None = None
    mask: Path | None = None
    source: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    modality: ClassVar[Modality] = "video"
    kind: ClassVar[str] = "video"

    def sidecar_caption_path(self) -> Path:
        return self.video.with_suffix(".txt")

    def caption_for_frame(self, frame: int) -> str | None:
        """The span caption covering `frame`, else the clip caption (None when neither exists)."""
        for span in self.captions:
            if span.covers(frame):
                return span.caption
        return self.caption


@dataclass(frozen=True)
class MultiViewRecord:
    """A multi-view capture of one subject: still images of it from different viewpoints. Counts as
    modality "video" (variant data). Captions: one per view (`captions`) or one for all (`caption`).
    `masks`: optional subject masks, one per view (white on the subject)."""

    views: tuple[Path, ...]
    caption: str | None = None
    captions: tuple[str, ...] | None = None
    subject: str | None = None
    masks: tuple[Path, ...] | None = None
    source: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    modality: ClassVar[Modality] = "video"
    kind: ClassVar[str] = "multiview"

    def caption_for_view(self, view: int) -> str | None:
        if self.captions is not None:
            return self.captions[view]
        return self.caption


Record = ImageRecord | VideoRecord | MultiViewRecord


def load_manifest(path: str | os.PathLike) -> list[Record]:
    """Read a JSONL manifest into typed records, checking every line's structure.

    Raises `FlexIPInputError` (with the file name and line number) for: a missing or empty manifest,
    invalid JSON, a line that is not an object, an unknown modality, missing or mistyped path and
    caption fields. Blank lines are ignored. Media files are not opened here.
    """
    manifest = Path(path)
    if not manifest.is_file():
        raise FlexIPInputError(f"manifest not found: {manifest}")
    root = manifest.resolve().parent
    records: list[Record] = []
    data = manifest.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise FlexIPInputError(f"{manifest}: line {line} is not UTF-8 text (a JSONL manifest is UTF-8, one JSON object per line)") from None
    for number, line in enumerate(text.split("\n"), start=1):  # not splitlines(): JSON strings may hold U+2028
        if not line.strip():
            continue
        where = f"{manifest.name}:{number}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            raise FlexIPInputError(f"{manifest}: line {number} is not valid JSON ({error.msg})") from None
        except (ValueError, RecursionError) as error:  # valid JSON that Python will not hold: a 5000-digit number, deep nesting
            raise FlexIPInputError(f"{manifest}: line {number} cannot be read ({type(error).__name__}: {error})") from None
        records.append(parse_record(entry, root=root, source=where))
    if not records:
        raise FlexIPInputError(f"manifest is empty: {manifest} has no records (expected one JSON object per line)")
    return records


def parse_record(entry: Any, root: str | os.PathLike, source: str = "") -> Record:
    """One manifest object → a typed record; relative paths are resolved against `root`.

    `source` names the entry in error messages and skip logs (e.g. "manifest.jsonl:12").
    """
    where = source or "manifest record"
    if not isinstance(entry, dict):
        raise FlexIPInputError(f"{where}: expected a JSON object, got {type(entry).__name__}")
    modality = entry.get("modality")
    if modality not in MODALITIES:
        raise FlexIPInputError(f"{where}: unknown modality {modality!r}; expected 'image' or 'video'")
    root = Path(root)
    subject = _optional_string(entry, "subject", where)
    caption = _optional_string(entry, "caption", where)
    if modality == "image":
        if "views" in entry or "video" in entry:
            raise FlexIPInputError(f"{where}: an image record takes an 'image' path, not 'video' or 'views'")
        if "captions" in entry:
            raise FlexIPInputError(f"{where}: an image record takes one 'caption', not 'captions'")
        image = _path_field(entry, "image", root, where, required=True)
        mask = _path_field(entry, "mask", root, where, required=False)
        extra = _extra(entry, {"image", "mask"})
        return ImageRecord(image=image, caption=caption, mask=mask, subject=subject, source=where, extra=extra)

    has_video, has_views = "video" in entry, "views" in entry
    if has_video == has_views:
        raise FlexIPInputError(f"{where}: a video record needs exactly one of 'video' (a clip) or 'views' (a multi-view capture)")
    if has_video:
        video = _path_field(entry, "video", root, where, required=True)
        spans = _parse_spans(entry.get("captions"), where)
        mask = _path_field(entry, "mask", root, where, required=False)
        extra = _extra(entry, {"video", "mask"})
        return VideoRecord(video=video, caption=caption, captions=spans, subject=subject, mask=mask, source=where, extra=extra)

    views_value = entry["views"]
    if not isinstance(views_value, list) or not all(isinstance(v, str) and v.strip() for v in views_value):
        raise FlexIPInputError(f"{where}: 'views' must be a list of image paths (non-empty strings)")
    if len(views_value) < 2:
        raise FlexIPInputError(f"{where}: a multi-view record needs at least 2 views, got {len(views_value)}")
    views = tuple(_resolve(v, root) for v in views_value)
    view_captions = None
    if "captions" in entry:
        value = entry["captions"]
        if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
            raise FlexIPInputError(f"{where}: 'captions' of a multi-view record must be a list of strings, one per view")
        if len(value) != len(views):
            raise FlexIPInputError(f"{where}: 'captions' has {len(value)} entries but there are {len(views)} views (one caption per view)")
        view_captions = tuple(value)
    view_masks = None
    if "masks" in entry:
        value = entry["masks"]
        if not isinstance(value, list) or not all(isinstance(m, str) and m.strip() for m in value) or len(value) != len(views):
            raise FlexIPInputError(f"{where}: 'masks' of a multi-view record must be a list of {len(views)} image paths, one per view")
        view_masks = tuple(_resolve(m, root) for m in value)
    extra = _extra(entry, {"views", "masks"})
    return MultiViewRecord(views=views, caption=caption, captions=view_captions, subject=subject, masks=view_masks, source=where, extra=extra)


def record_to_json(record: Record, root: str | os.PathLike) -> dict[str, Any]:
    """The inverse of `parse_record`: paths are written relative to `root` when they lie below it."""
    root = Path(root).resolve()
    entry: dict[str, Any] = {"modality": record.modality}
    if isinstance(record, ImageRecord):
        entry["image"] = relative_path(record.image, root)
        if record.mask is not None:
            entry["mask"] = relative_path(record.mask, root)
    elif isinstance(record, VideoRecord):
        entry["video"] = relative_path(record.video, root)
        if record.mask is not None:
            entry["mask"] = relative_path(record.mask, root)
        if record.captions:
            entry["captions"] = [{"start": s.start, "end": s.end, "caption": s.caption} for s in record.captions]
    else:
        entry["views"] = [relative_path(v, root) for v in record.views]
        if record.masks is not None:
            entry["masks"] = [relative_path(m, root) for m in record.masks]
        if record.captions is not None:
            entry["captions"] = list(record.captions)
    if record.caption is not None:
        entry["caption"] = record.caption
    if record.subject is not None:
        entry["subject"] = record.subject
    for key, value in record.extra.items():
        entry.setdefault(key, value)
    return entry


def write_manifest(entries: Iterable[Record | Mapping[str, Any]], path: str | os.PathLike) -> int:
    """Write records (or ready JSON dicts) as JSONL, atomically (`flexip.atomic`), so a reader never sees
    half a manifest. Returns the number of lines written."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    root = out.resolve().parent
    lines = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            entry = record_to_json(entry, root)
        lines.append(json.dumps(dict(entry), ensure_ascii=False))
    write_text(out, "".join(line + "\n" for line in lines))
    return len(lines)


def relative_path(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """`path` relative to `root` with forward slashes when it lies below `root`, else absolute."""
    absolute = Path(path).resolve()
    try:
        return absolute.relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return absolute.as_posix()


# --- field helpers ---------------------------------------------------------------------------------


def _resolve(value: str, root: Path) -> Path:
    path = Path(value)
    return path if path.is_absolute() else root / path


def _path_field(entry: dict, key: str, root: Path, where: str, required: bool) -> Path | None:
    if key not in entry or entry[key] is None:
        if required:
            raise FlexIPInputError(f"{where}: missing required field {key!r} (a path to the file)")
        return None
    value = entry[key]
    if not isinstance(value, str) or not value.strip():
        raise FlexIPInputError(f"{where}: field {key!r} must be a non-empty path string, got {value!r}")
    return _resolve(value, root)


def _optional_string(entry: dict, key: str, where: str) -> str | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise FlexIPInputError(f"{where}: field {key!r} must be a string, got {type(value).__name__}")
    return value


def _parse_spans(value: Any, where: str) -> tuple[CaptionSpan, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        raise FlexIPInputError(
            f'{where}: \'captions\' of a video must be a non-empty list of {{"start": frame, "end": frame, "caption": text}} objects'
        )
    spans = []
    for position, item in enumerate(value):
        label = f"{where}: captions[{position}]"
        if not isinstance(item, dict) or not {"start", "end", "caption"} <= item.keys():
            raise FlexIPInputError(f"{label} must be an object with 'start', 'end' and 'caption'")
        start, end, caption = item["start"], item["end"], item["caption"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)):
            raise FlexIPInputError(f"{label}: 'start' and 'end' must be integer frame indices")
        if start < 0 or end < start:
            raise FlexIPInputError(f"{label}: need 0 <= start <= end (inclusive frame indices), got {start}..{end}")
        if not isinstance(caption, str):
            raise FlexIPInputError(f"{label}: 'caption' must be a string")
        spans.append(CaptionSpan(start, end, caption))
    ordered = sorted(spans, key=lambda s: s.start)
    for previous, current in zip(ordered, ordered[1:]):
        if current.start <= previous.end:
            raise FlexIPInputError(
                f"{where}: caption spans {previous.start}..{previous.end} and {current.start}..{current.end} overlap; each frame may have one caption"
            )
    return tuple(ordered)


def _extra(entry: dict, own: set[str]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k not in _COMMON_FIELDS and k not in own}
