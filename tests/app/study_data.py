"""A small study on disk: three methods whose images are told apart by colour (so a test can vote for a method the
page shows only as a letter), two subjects, two prompts, and the subjects' reference photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"FlexIP": (200, 30, 30), "IP-Adapter": (30, 200, 30), "ELITE": (30, 30, 200)}
SUBJECTS = ("dog", "teapot")
PROMPTS = ("a dog in the snow", "on a wooden table")


def make_method_folders(root: Path) -> tuple[dict[str, Path], Path]:
    """IMAGES/<subject>/<prompt>/0.png for each method, and references/<subject>/*.png."""
    methods = {}
    for name, colour in COLOURS.items():
        for subject in SUBJECTS:
            for prompt in PROMPTS:
                folder = root / name / subject / prompt
                folder.mkdir(parents=True)
                Image.new("RGB", (24, 24), colour).save(folder / "0.png")
        methods[name] = root / name
    for index, subject in enumerate(SUBJECTS):
        folder = root / "references" / subject
        folder.mkdir(parents=True)
        for view in range(2):
            Image.new("RGB", (24, 24), (120 + 40 * index, 120, 20 * view)).save(folder / f"view{view}.jpg")
    return methods, root / "references"


def method_of(image) -> str:
    """Which method made a candidate image (its colour)."""
    with Image.open(image) if isinstance(image, (str, Path)) else image as opened:
        mean = np.asarray(opened.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0)
    return min(COLOURS, key=lambda name: float(np.abs(mean - np.array(COLOURS[name])).sum()))
