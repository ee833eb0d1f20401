"""Writing a miniworld dataset: `make_dataset` renders images, video clips, multi-view captures and held-out
identities and writes the manifest and the held-out files.

Layout of OUT_DIR (every path in a JSONL file is relative to OUT_DIR)::

    manifest.jsonl       training rows, the format `flexip train` reads:
        {"modality": "image", "image": "images/000123.png", "caption": "a blob in the snow", "subject": "train-00017"}
        {"modality": "video", "video": "videos/000045.mp4", "caption": ..., "subject": ...}       one caption
        {"modality": "video", "video": ..., "captions": [{"start": 0, "end": 11, "caption": ...}, ...], ...}
        {"modality": "video", "views": ["views/000003/00.png", ...], "caption": ..., "subject": ...}
    heldout.jsonl        one row per held-out identity: references (plain backdrop, centred, default style),
                         test prompts, and a true render of the identity for every prompt ("targets")
    pairs.jsonl          calibration pairs: "real-vs-real" (one identity, two scenes) and
                         "real-vs-other" (two identities)
    identities.jsonl     every identity's parameters (training and held-out)
    world.json           how the data was made (seed, size, counts, vocabulary)

Every item is a pure function of (world config, kind, index), so a run is idempotent and resumable:
files are written to a temporary name and renamed into place, existing files are kept, and the
JSONL files are rewritten at the end. Raising a count extends a dataset; other settings must match.

The parts live beside this module and are importable from it too: `world` (`WorldConfig`), `items` (training
items and manifest rows), `heldout` (held-out items and calibration pairs), `files` (PNG, JSONL and mp4 files).
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from multiprocessing import get_context
from pathlib import Path

from tqdm import tqdm

from flexip.atomic import is_temporary, write_text
from flexip.errors import FlexIPInputError
from flexip_miniworld.files import load_jsonl, read_video, save_png, write_jsonl, write_video
from flexip_miniworld.heldout import calibration_pairs, heldout_item, heldout_prompt_texts
from flexip_miniworld.identity import CLASSES, make_identity
from flexip_miniworld.items import ImageItem, image_item, manifest_row, render_clip, video_item, view_paths, views_item
from flexip_miniworld.render import render
from flexip_miniworld.scene import BACKGROUNDS, COLOURS, PATTERN_WORDS, PLACEMENTS, SHAPES, SIZES, STYLES
from flexip_miniworld.world import WorldConfig

FORMAT_VERSION = 1


def _produce(job: tuple) -> int:
    """Render and write one job; returns the number of frames rendered."""
    kind, root, config, payload = job
    root = Path(root)
    if kind == "image":
        item: ImageItem = payload
        identity = make_identity("train", item.subject_index, config.seed)
        save_png(root / item.path, render(identity, item.text, item.pose, config.size, config.supersample))
        return 1
    if kind == "video":
        frames = render_clip(config, "train", payload.subject_index, payload.clip)
        write_video(root / payload.path, frames, config.fps, config.codec)
        return len(frames)
    if kind == "views":
        frames = render_clip(config, "train", payload.subject_index, payload.clip)
        for relative, frame in zip(view_paths(payload), frames):
            save_png(root / relative, frame)
        return len(frames)
    if kind == "heldout":
        identity = make_identity("heldout", payload["index"], config.seed)
        for relative, text, pose in payload["renders"]:
            save_png(root / relative, render(identity, text, pose, config.size, config.supersample))
        return len(payload["renders"])
    raise AssertionError(kind)


def _remove_stale_temporaries(root: Path) -> None:
    """Delete the temporary files of an interrupted run (complete files were renamed into place)."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            if is_temporary(name):
                Path(dirpath, name).unlink(missing_ok=True)


def _check_world(root: Path, config: WorldConfig) -> None:
    path = root / "world.json"
    if not path.exists():
        return
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))["config"]
    except (ValueError, KeyError, TypeError) as error:
        raise FlexIPInputError(f"{path} is not a miniworld world.json ({error}); use an empty folder") from None
    wanted = asdict(config)
    different = {k: (recorded.get(k), v) for k, v in wanted.items() if recorded.get(k) != v}
    if different:
        listed = ", ".join(f"{k}: {old!r} there, {new!r} now" for k, (old, new) in different.items())
        raise FlexIPInputError(
            f"{root} holds a miniworld dataset made with other settings ({listed}); use another folder, or the same settings to extend it"
        )


def make_dataset(
    out_dir,
    config: WorldConfig = WorldConfig(),
    images: int = 1000,
    videos: int = 50,
    multiview: int = 50,
    workers: int = 1,
    progress: bool = True,
) -> dict:
    """Write (or complete) a dataset under `out_dir`; returns a summary (counts and file names)."""
    for name, value in (("images", images), ("videos", videos), ("multiview", multiview)):
        if value < 0:
            raise FlexIPInputError(f"--{name} must be ≥ 0, got {value}")
    if not 1 <= workers <= 64:
        raise FlexIPInputError(f"--workers must be in [1, 64], got {workers}")
    root = Path(out_dir)
    if root.exists() and not root.is_dir():
        raise FlexIPInputError(f"output path exists and is not a folder: {root}")
    root.mkdir(parents=True, exist_ok=True)
    _check_world(root, config)
    _remove_stale_temporaries(root)
    if not (root / "world.json").exists():  # record the settings first, so a resumed run is checked too
        write_text(root / "world.json", json.dumps({"format_version": FORMAT_VERSION, "config": asdict(config), "complete": False}) + "\n")

    image_items = [image_item(config, i) for i in range(images)]
    video_items = [video_item(config, i) for i in range(videos)]
    view_items = [views_item(config, i) for i in range(multiview)]
    heldout_items = [heldout_item(config, j) for j in range(config.heldout)]

    jobs = []
    for item in image_items:
        if not (root / item.path).exists():
            jobs.append(("image", str(root), config, item))
    for item in video_items:
        if not (root / item.path).exists():
            jobs.append(("video", str(root), config, item))
    for item in view_items:
        if not all((root / p).exists() for p in view_paths(item)):
            jobs.append(("views", str(root), config, item))
    for j, entry in enumerate(heldout_items):
        if not all((root / path).exists() for path, _, _ in entry["renders"]):
            jobs.append(("heldout", str(root), config, {"index": j, "renders": entry["renders"]}))

    frames = 0
    with tqdm(total=len(jobs), desc="miniworld", unit="item", disable=not progress) as bar:
        if workers == 1 or len(jobs) < 64:
            for job in jobs:
                frames += _produce(job)
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
                for count in pool.map(_produce, jobs, chunksize=32):
                    frames += count
                    bar.update()

    rows = [manifest_row(config, item) for item in image_items + video_items + view_items]
    write_jsonl(root / "manifest.jsonl", rows)
    write_jsonl(root / "heldout.jsonl", [entry["row"] for entry in heldout_items])
    write_jsonl(root / "pairs.jsonl", calibration_pairs(config))
    identities = [make_identity("train", i, config.seed) for i in range(config.identities)]
    identities += [make_identity("heldout", j, config.seed) for j in range(config.heldout)]
    write_jsonl(root / "identities.jsonl", [identity.to_json() for identity in identities])
    summary = {
        "format_version": FORMAT_VERSION,
        "config": asdict(config),
        "counts": {"images": images, "videos": videos, "multiview": multiview, "heldout": config.heldout},
        "rendered_now": {"jobs": len(jobs), "frames": frames},
        "vocabulary": {
            "nouns": list(CLASSES),
            "backgrounds": BACKGROUNDS,
            "placements": PLACEMENTS,
            "sizes": list(SIZES),
            "shapes": list(SHAPES),
            "colours": list(COLOURS),
            "patterns": list(PATTERN_WORDS),
            "styles": list(STYLES),
        },
        "files": {
            "manifest": "manifest.jsonl",
            "heldout": "heldout.jsonl",
            "pairs": "pairs.jsonl",
            "identities": "identities.jsonl",
        },
    }
    record = {k: v for k, v in summary.items() if k != "rendered_now"}
    record["complete"] = True
    write_text(root / "world.json", json.dumps(record, indent=2) + "\n")
    return summary


__all__ = [
    "WorldConfig",
    "make_dataset",
    "image_item",
    "video_item",
    "views_item",
    "heldout_item",
    "heldout_prompt_texts",
    "calibration_pairs",
    "write_video",
    "read_video",
    "write_jsonl",
    "load_jsonl",
]
