"""The file formats of a miniworld dataset, written atomically: PNG frames (`save_png`), JSONL tables (`write_jsonl`,
`load_jsonl`) and mp4 clips (`write_video`, `read_video`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from flexip.atomic import atomic_path, write_text


def save_png(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as temporary:
        Image.fromarray(array).save(temporary, format="PNG")


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def load_jsonl(path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


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
