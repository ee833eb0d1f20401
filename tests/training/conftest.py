"""A small training set written by the tests themselves (PNG images, real mp4 clips via PyAV), and a
config factory for the tiny-random stack. Nothing is downloaded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flexip.data.video import write_video
from flexip.training.config import TrainConfig


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    """Each test builds its own Accelerator; accelerate keeps process-wide singletons otherwise. One torch
    thread: the toy models are far faster single-threaded on a busy 2-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    _reset_accelerate()


def _blob_image(rng: np.random.Generator, size: int, color) -> np.ndarray:
    array = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
    quarter = size // 4
    array[quarter : 3 * quarter, quarter : 3 * quarter] = color
    return array


def write_dataset(
    root: Path, images: int = 4, videos: int = 2, corrupt: bool = False, short_video: bool = False, size: int = 32, masks: bool = False
) -> Path:
    """Images with captions, mp4 clips whose subject moves, optionally a corrupt PNG and a 1-frame clip;
    `masks`: every image and clip also gets its subject mask (image) / mask clip."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    entries = []
    colors = [(220, 40, 40), (40, 220, 40), (40, 40, 220), (220, 220, 40), (220, 40, 220), (40, 220, 220)]
    for i in range(images):
        path = root / f"img{i}.png"
        Image.fromarray(_blob_image(rng, size, colors[i % len(colors)])).save(path)
        entries.append({"modality": "image", "image": path.name, "caption": f"a blob number {i}"})
        if masks:
            mask = np.zeros((size, size), np.uint8)
            mask[size // 4 : 3 * (size // 4), size // 4 : 3 * (size // 4)] = 255
            Image.fromarray(mask).save(root / f"img{i}_mask.png")
            entries[-1]["mask"] = f"img{i}_mask.png"
    for i in range(videos):
        frames, mask_frames = [], []
        for f in range(8):
            frame = np.full((size, size, 3), 30, np.uint8)
            x = 2 + 2 * f
            frame[8:24, x : x + 12] = colors[(i + 3) % len(colors)]
            frames.append(frame)
            mask_frames.append(np.where(frame == 30, 0, 255).astype(np.uint8))
        path = write_video(frames, root / f"clip{i}.mp4", fps=8)
        entries.append({"modality": "video", "video": path.name, "caption": f"a moving box {i}"})
        if masks:
            entries[-1]["mask"] = write_video(mask_frames, root / f"clip{i}_mask.mp4", fps=8).name
    if corrupt:
        (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
        entries.append({"modality": "image", "image": "broken.png", "caption": "broken"})
    if short_video:
        path = write_video([np.full((size, size, 3), 90, np.uint8)], root / "short.mp4", fps=8)
        entries.append({"modality": "video", "video": path.name, "caption": "one frame only"})
    manifest = root / "manifest.jsonl"
    manifest.write_text("\n".join(json.dumps(e) for e in entries) + "\n", encoding="utf-8")
    return manifest


def make_config(manifest: Path, output_dir: Path, **sections) -> TrainConfig:
    """A fast tiny-random config; `sections` override per section, e.g. optim={"max_steps": 4}."""
    raw = {
        "model": {"base": "tiny-random"},
        "data": {"manifest": str(manifest), "min_gap": 1, "max_gap": 4},
        "optim": {"batch_size": 4, "max_steps": 4, "lr": 1e-3},
        "runtime": {"device": "cpu", "seed": 0},
        "logging": {
            "output_dir": str(output_dir),
            "tensorboard": False,
            "progress_bar": False,
            "validate_every": 0,
            "checkpoint_every": 1000,
            "log_every": 1000,
        },
    }
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    return TrainConfig.from_dict(raw)


@pytest.fixture(name="write_dataset")
def write_dataset_fixture():
    return write_dataset


@pytest.fixture(name="make_config")
def make_config_fixture():
    return make_config


@pytest.fixture(name="reset_accelerate")
def reset_accelerate_fixture():
    """Call between two Trainers in one test (as a new process would start fresh)."""
    return _reset_accelerate


def _reset_accelerate():
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
