"""Small media factories for the data tests: every file is made in tmp_path, nothing is downloaded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flexip.data.video import write_video


def frame_value(index: int) -> int:
    """Frame i of a test clip is a flat gray of this value, so a decoded frame tells its own index."""
    return 10 + 9 * index


@pytest.fixture
def frame_index():
    """Recover the index of a decoded test frame from its mean gray value."""

    def index_of(image: Image.Image) -> int:
        return int(round((float(np.asarray(image).mean()) - 10) / 9))

    return index_of


@pytest.fixture
def make_video():
    def make(path: Path, frames: int = 12, size: int = 32, fps: int = 8) -> Path:
        arrays = [np.full((size, size, 3), frame_value(i), np.uint8) for i in range(frames)]
        return write_video(arrays, path, fps=fps)

    return make


@pytest.fixture
def make_image():
    def make(path: Path, size: int = 32, color=(200, 30, 30), caption: str | None = None) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(abs(hash(path.name)) % 2**32)
        array = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        array[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = color
        Image.fromarray(array).save(path)
        if caption is not None:
            path.with_suffix(".txt").write_text(caption + "\n", encoding="utf-8")
        return path

    return make


@pytest.fixture
def write_jsonl():
    def write(path: Path, entries) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [e if isinstance(e, str) else json.dumps(e) for e in entries]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    return write
