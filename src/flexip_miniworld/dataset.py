"""Writing a miniworld dataset: images, video clips, multi-view captures, a manifest and held-out files.

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
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image
from tqdm import tqdm

from flexip.atomic import atomic_path, is_temporary, write_text
from flexip.errors import FlexIPInputError
from flexip_miniworld.identity import CLASSES, SEED_RANGE, make_identity
from flexip_miniworld.render import SUPERSAMPLE, render
from flexip_miniworld.scene import (
    BACKGROUNDS,
    COLOURS,
    PATTERN_WORDS,
    PLACEMENTS,
    SHAPES,
    SIZES,
    STYLES,
    Clip,
    Pose,
    SceneText,
    caption,
    caption_spans,
    sample_clip,
    sample_pose,
    sample_scene_text,
    sample_views,
)

FORMAT_VERSION = 1
# Salts that keep the random streams of the item kinds apart.
_KIND_SALT = {"image": 1, "video": 2, "views": 3, "heldout": 4, "pairs": 5}
REFERENCES_PER_IDENTITY = 3
PAIRS_PER_IDENTITY = 3


@dataclass(frozen=True)
class WorldConfig:
    """What a dataset's content depends on (besides the item counts)."""

    seed: int = 0
    size: int = 32
    supersample: int = SUPERSAMPLE
    identities: int = 500  # training identities
    heldout: int = 60  # held-out identities
    frames: int = 24  # frames per video clip
    views: int = 8  # views per multi-view capture
    fps: int = 8
    codec: str = "libx264"

    def __post_init__(self) -> None:
        if not (16 <= self.size <= 512) or self.size % 2:
            raise FlexIPInputError(f"--size must be an even number of pixels in [16, 512] (video needs even dims), got {self.size}")
        if not 1 <= self.supersample <= 8:
            raise FlexIPInputError(f"supersample must be in [1, 8], got {self.supersample}")
        if not 1 <= self.identities <= SEED_RANGE:
            raise FlexIPInputError(f"--identities must be in [1, {SEED_RANGE}], got {self.identities}")
        if not 0 <= self.heldout <= SEED_RANGE:
            raise FlexIPInputError(f"--heldout must be in [0, {SEED_RANGE}], got {self.heldout}")
        if self.frames < 2:
            raise FlexIPInputError(f"--frames must be ≥ 2, got {self.frames}")
        if self.views < 1:
            raise FlexIPInputError(f"--views must be ≥ 1, got {self.views}")
        if not 1 <= self.fps <= 120:
            raise FlexIPInputError(f"fps must be in [1, 120], got {self.fps}")
        if self.codec not in ("libx264", "mpeg4"):
            raise FlexIPInputError(f"codec must be 'libx264' or 'mpeg4', got {self.codec!r}")
        if not 0 <= self.seed < 2**63:
            raise FlexIPInputError(f"--seed must be a non-negative integer, got {self.seed}")


# ----------------------------------------------------------------------------------------------
# Item specifications (cheap, deterministic) and their rendering


def _rng(config: WorldConfig, kind: str, index: int) -> np.random.Generator:
    return np.random.default_rng([int(config.seed), _KIND_SALT[kind], int(index)])


@dataclass(frozen=True)
class ImageItem:
    path: str
    subject_index: int
    text: SceneText
    pose: Pose


@dataclass(frozen=True)
class ClipItem:
    kind: str  # "video" or "views"
    path: str  # the .mp4 file, or the folder of views
    subject_index: int
    clip: Clip


def image_item(config: WorldConfig, index: int) -> ImageItem:
    rng = _rng(config, "image", index)
    subject = int(rng.integers(config.identities))
    text = sample_scene_text(rng)
    return ImageItem(f"images/{index:06d}.png", subject, text, sample_pose(rng))


def video_item(config: WorldConfig, index: int) -> ClipItem:
    rng = _rng(config, "video", index)
    subject = int(rng.integers(config.identities))
    return ClipItem("video", f"videos/{index:06d}.mp4", subject, sample_clip(rng, config.frames))


def views_item(config: WorldConfig, index: int) -> ClipItem:
    rng = _rng(config, "views", index)
    subject = int(rng.integers(config.identities))
    return ClipItem("views", f"views/{index:06d}", subject, sample_views(rng, config.views))


def view_paths(item: ClipItem) -> list[str]:
    return [f"{item.path}/{i:02d}.png" for i in range(len(item.clip.poses))]


def manifest_row(config: WorldConfig, item) -> dict:
    identity = make_identity("train", item.subject_index, config.seed)
    if isinstance(item, ImageItem):
        return {"modality": "image", "image": item.path, "caption": caption(identity.noun, item.text), "subject": identity.name}
    spans = caption_spans(identity.noun, item.clip.texts)
    row: dict = {"modality": "video"}
    row["video" if item.kind == "video" else "views"] = item.path if item.kind == "video" else view_paths(item)
    if len(spans) == 1:
        row["caption"] = spans[0]["caption"]
    else:
        row["captions"] = spans
    row["subject"] = identity.name
    return row


def render_clip(config: WorldConfig, split: str, subject_index: int, clip: Clip) -> list[np.ndarray]:
    identity = make_identity(split, subject_index, config.seed)
    return [render(identity, text, pose, config.size, config.supersample) for text, pose in zip(clip.texts, clip.poses)]


# ----------------------------------------------------------------------------------------------
# Held-out identities: references, test prompts, true renders, calibration pairs

def heldout_prompt_texts(config: WorldConfig, index: int) -> list[SceneText]:
    """The 12 test scenes of held-out identity `index`, DreamBench-like: six recontextualisations
    (background only; `calibration_pairs` relies on them coming first), then a colour, a pattern, a
    shape, a style, a layout and a combined change."""
    rng = _rng(config, "heldout", index)
    backgrounds = list(BACKGROUNDS)
    order = rng.permutation(len(backgrounds))
    texts = [SceneText(background=backgrounds[i]) for i in order[:6]]
    pick = lambda options: list(options)[int(rng.integers(len(options)))]  # noqa: E731
    texts.append(SceneText(colour=pick(COLOURS)))
    texts.append(SceneText(pattern=pick(PATTERN_WORDS), background=backgrounds[order[6]]))
    texts.append(SceneText(shape=pick(SHAPES)))
    texts.append(SceneText(style=pick(STYLES), background=backgrounds[order[7]]))
    texts.append(SceneText(size=pick(SIZES), placement=pick(PLACEMENTS), background=backgrounds[order[8]]))
    texts.append(SceneText(colour=pick(COLOURS), background=backgrounds[order[9]], style=pick(STYLES)))
    return texts


def heldout_item(config: WorldConfig, index: int) -> dict:
    """The held-out row of identity `index` plus what to render: {"row", "renders": [(path, text, pose)]}."""
    identity = make_identity("heldout", index, config.seed)
    rng = _rng(config, "heldout", SEED_RANGE + index)
    folder = f"heldout/{identity.name}"
    renders = []
    references = []
    for r in range(REFERENCES_PER_IDENTITY):
        pose = sample_pose(rng, jitter=0.3)
        path = f"{folder}/ref_{r}.png"
        renders.append((path, SceneText(), Pose(**{**asdict(pose), "pan": 0.5})))
        references.append(path)
    texts = heldout_prompt_texts(config, index)
    targets = []
    for p, text in enumerate(texts):
        path = f"{folder}/target_{p:02d}.png"
        renders.append((path, text, sample_pose(rng)))
        targets.append(path)
    row = {
        "subject": identity.name,
        "noun": identity.noun,
        "references": references,
        "prompts": [caption(identity.noun, t) for t in texts],
        "targets": targets,
    }
    return {"row": row, "renders": renders}


def calibration_pairs(config: WorldConfig) -> list[dict]:
    """Real-vs-real pairs (one held-out identity in two background-only scenes) and real-vs-other
    pairs (the same scenes, two different identities)."""
    if config.heldout == 0:
        return []
    pairs = []
    rng = _rng(config, "pairs", 0)
    for j in range(config.heldout):
        name = make_identity("heldout", j, config.seed).name
        # Targets 0..5 are the background-only prompts (see heldout_prompt_texts).
        for _ in range(PAIRS_PER_IDENTITY):
            a, b = rng.choice(6, size=2, replace=False)
            pairs.append({
                "kind": "real-vs-real",
                "a": f"heldout/{name}/target_{a:02d}.png",
                "b": f"heldout/{name}/target_{b:02d}.png",
                "subject_a": name,
                "subject_b": name,
            })
        if config.heldout > 1:
            for _ in range(PAIRS_PER_IDENTITY):
                other = (j + 1 + int(rng.integers(config.heldout - 1))) % config.heldout
                other_name = make_identity("heldout", other, config.seed).name
                a, b = rng.choice(6, size=2, replace=False)
                pairs.append({
                    "kind": "real-vs-other",
                    "a": f"heldout/{name}/target_{a:02d}.png",
                    "b": f"heldout/{other_name}/target_{b:02d}.png",
                    "subject_a": name,
                    "subject_b": other_name,
                })
    return pairs


# ----------------------------------------------------------------------------------------------
# Atomic file writing


def save_png(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as temporary:
        Image.fromarray(array).save(temporary, format="PNG")


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def write_video(path: Path, frames: list[np.ndarray], fps: int = 8, codec: str = "libx264") -> None:
    """uint8 RGB frames (even height and width) → mp4 (yuv420p), atomically, with a constant quantizer:
    CRF's rate control gave different bytes for the same frames depending on what the process had
    encoded before; a constant QP (4 for libx264, qscale 2 for mpeg4) is reproducible."""
    from flexip.data.video import write_video as encode

    encode(frames, path, fps, codec=codec, qp=4 if codec == "libx264" else 2)


def read_video(path: Path) -> list[np.ndarray]:
    """Decode every frame of a video file to uint8 RGB arrays (used by tests and `preview`)."""
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


# ----------------------------------------------------------------------------------------------
# Producing items (runs in worker processes)


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
            f"{root} holds a miniworld dataset made with other settings ({listed}); "
            "use another folder, or the same settings to extend it"
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


def load_jsonl(path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


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
    "load_jsonl",
]
