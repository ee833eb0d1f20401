"""Build a training manifest from a folder tree (the conventions are documented in docs/data.md):

    ROOT/images/**/NAME.{png,jpg,jpeg,webp,bmp}   still image, caption in NAME.txt beside it
    ROOT/masks/**/NAME.{png,...}                   optional subject mask, same relative path as the image
    ROOT/videos/**/NAME.{mp4,mov,webm,mkv,avi,m4v} clip, caption in NAME.txt and/or per-span captions
                                                   in NAME.captions.json
    ROOT/multiview/SUBJECT/*.{png,jpg,...}         one multi-view capture per folder, views in name order,
                                                   caption in caption.txt or one VIEW.txt per view

Images and videos in a subfolder get the subfolder path as their `subject`; a multi-view capture gets
its folder name. Entries without a caption (or captures with fewer than 2 views) are left out and
counted. Media files are not opened (a corrupt file is skipped at training time). The manifest is
written atomically; paths in it are relative to its folder.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flexip.data.manifest import parse_record, relative_path, write_manifest
from flexip.errors import FlexIPInputError

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v")
SECTIONS: tuple[str, ...] = ("images", "videos", "multiview")
SPAN_SIDECAR_SUFFIX = ".captions.json"


@dataclass
class BuildReport:
    """What `scan_folders` found: the manifest entries (JSON dicts), counts per kind, and the entries
    left out by reason (with a few example paths per reason)."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    left_out: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    out: Path | None = None

    def leave_out(self, reason: str, path: Path) -> None:
        self.left_out[reason] += 1
        self.examples.setdefault(reason, [])
        if len(self.examples[reason]) < 3:
            self.examples[reason].append(str(path))

    def summary(self) -> str:
        lines = []
        if self.out is not None:
            lines.append(f"wrote {len(self.entries)} records to {self.out}")
        else:
            lines.append(f"found {len(self.entries)} records")
        lines.append(f"  images: {self.counts['image']}, videos: {self.counts['video']}, multi-view captures: {self.counts['multiview']}")
        for reason, count in sorted(self.left_out.items()):
            shown = ", ".join(self.examples.get(reason, []))
            lines.append(f"  left out ({reason}): {count}" + (f", e.g. {shown}" if shown else ""))
        return "\n".join(lines)


def build_manifest(root: str | os.PathLike, out: str | os.PathLike | None = None) -> BuildReport:
    """Scan `root` and write the manifest to `out` (default: ROOT/manifest.jsonl), atomically.

    Raises `FlexIPInputError` when `root` is not a folder, holds none of images/, videos/, multiview/,
    a span-caption sidecar is malformed, or nothing usable was found.
    """
    root = Path(root)
    out = Path(out) if out is not None else root / "manifest.jsonl"
    report = scan_folders(root, manifest_dir=out.resolve().parent)
    if not report.entries:
        reasons = ", ".join(f"{r}: {n}" for r, n in sorted(report.left_out.items())) or "no media files"
        raise FlexIPInputError(f"no usable records under {root} ({reasons}); see docs/data.md for the layout")
    write_manifest(report.entries, out)
    report.out = out
    return report


def scan_folders(root: str | os.PathLike, manifest_dir: str | os.PathLike) -> BuildReport:
    """Collect manifest entries under `root` (paths relative to `manifest_dir`), in sorted order."""
    root = Path(root)
    if not root.is_dir():
        raise FlexIPInputError(f"data root is not a folder: {root}")
    if not any((root / section).is_dir() for section in SECTIONS):
        raise FlexIPInputError(f"{root} holds none of the folders {', '.join(s + '/' for s in SECTIONS)}; see docs/data.md for the layout")
    manifest_dir = Path(manifest_dir).resolve()
    report = BuildReport()
    _scan_images(root, manifest_dir, report)
    _scan_videos(root, manifest_dir, report)
    _scan_multiview(root, manifest_dir, report)
    return report


def _media_files(folder: Path, extensions: tuple[str, ...]) -> list[Path]:
    if not folder.is_dir():
        return []
    found = [
        path
        for path in folder.rglob("*")
        if path.suffix.lower() in extensions and path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    ]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _sidecar_text(path: Path) -> str | None:
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError as error:
        raise FlexIPInputError(f"caption file is not UTF-8 text: {path} ({error})") from None
    return text or None


def _subject(path: Path, section: Path) -> str | None:
    parent = path.parent.relative_to(section).as_posix()
    return None if parent == "." else parent


def _scan_images(root: Path, manifest_dir: Path, report: BuildReport) -> None:
    section, masks = root / "images", root / "masks"
    for image in _media_files(section, IMAGE_EXTENSIONS):
        caption = _sidecar_text(image.with_suffix(".txt"))
        if caption is None:
            report.leave_out("image_without_caption", image)
            continue
        entry: dict[str, Any] = {"modality": "image", "image": relative_path(image, manifest_dir), "caption": caption}
        relative = image.relative_to(section).with_suffix("")
        for extension in IMAGE_EXTENSIONS:
            mask = masks / relative.parent / (relative.name + extension)
            if mask.is_file():
                entry["mask"] = relative_path(mask, manifest_dir)
                break
        subject = _subject(image, section)
        if subject is not None:
            entry["subject"] = subject
        report.entries.append(entry)
        report.counts["image"] += 1


def _scan_videos(root: Path, manifest_dir: Path, report: BuildReport) -> None:
    section = root / "videos"
    for video in _media_files(section, VIDEO_EXTENSIONS):
        entry: dict[str, Any] = {"modality": "video", "video": relative_path(video, manifest_dir)}
        caption = _sidecar_text(video.with_suffix(".txt"))
        if caption is not None:
            entry["caption"] = caption
        spans_file = video.with_name(video.stem + SPAN_SIDECAR_SUFFIX)
        if spans_file.is_file():
            try:
                spans = json.loads(spans_file.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise FlexIPInputError(f"span caption file is not valid JSON: {spans_file} ({error})") from None
            if isinstance(spans, dict) and "captions" in spans:
                spans = spans["captions"]
            entry["captions"] = spans
            parse_record(entry, root=manifest_dir, source=str(spans_file))  # checks the spans' structure
        if "caption" not in entry and "captions" not in entry:
            report.leave_out("video_without_caption", video)
            continue
        subject = _subject(video, section)
        if subject is not None:
            entry["subject"] = subject
        report.entries.append(entry)
        report.counts["video"] += 1


def _scan_multiview(root: Path, manifest_dir: Path, report: BuildReport) -> None:
    section = root / "multiview"
    if not section.is_dir():
        return
    for folder in sorted(p for p in section.iterdir() if p.is_dir() and not p.name.startswith(".")):
        views = sorted(
            (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")),
            key=lambda p: p.name,
        )
        if len(views) < 2:
            report.leave_out("multiview_too_few_views", folder)
            continue
        entry: dict[str, Any] = {
            "modality": "video",
            "views": [relative_path(v, manifest_dir) for v in views],
            "subject": folder.name,
        }
        per_view = [_sidecar_text(v.with_suffix(".txt")) for v in views]
        shared = _sidecar_text(folder / "caption.txt")
        if all(c is not None for c in per_view):
            entry["captions"] = per_view
        elif shared is not None:
            entry["caption"] = shared
        else:
            report.leave_out("multiview_without_caption", folder)
            continue
        report.entries.append(entry)
        report.counts["multiview"] += 1
