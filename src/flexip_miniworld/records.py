"""An evaluation's finished identities, kept on disk so that a killed `flexip miniworld evaluate` resumes.

Rendering is the cost of an evaluation (20 identities × 8 prompts × 14 conditions take half an hour on the
CPU), so each held-out identity's images are scored as soon as they are made, and the scores, the embeddings
identification needs and the sample grid's images are saved, atomically, as OUT/identities/KEY/NN.pt. A rerun
with the same settings loads them instead of rendering again. KEY hashes everything the records depend on:
method, adapter weights, the preset's weights (base, reference encoders, evaluation encoders), identities,
prompts, dial values, steps, guidance, seed, adapter scale. So records of other settings (or of an adapter
trained again in the same folder) are never mixed in. The folder is removed
once evaluation.json is written.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from flexip.atomic import atomic_path

FOLDER = "identities"


def settings_key(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def pack_images(images: list[Image.Image]) -> list[torch.Tensor]:
    return [torch.from_numpy(np.asarray(image.convert("RGB")).copy()) for image in images]


def unpack_images(tensors: list[torch.Tensor]) -> list[Image.Image]:
    return [Image.fromarray(tensor.numpy()) for tensor in tensors]


class IdentityRecords:
    """OUT/identities/KEY/NN.pt: one finished identity's record (a dict of tensors, lists and strings)."""

    def __init__(self, out_dir: Path, settings: dict):
        self.root = Path(out_dir) / FOLDER
        self.folder = self.root / settings_key(settings)

    def path(self, index: int) -> Path:
        return self.folder / f"{index:02d}.pt"

    def load(self, index: int, subject: str) -> dict | None:
        """Identity `index`'s record if a finished one for `subject` is on disk, else None."""
        path = self.path(index)
        if not path.is_file():
            return None
        record = torch.load(path, weights_only=True)
        return record if record.get("subject") == subject else None

    def save(self, index: int, record: dict) -> None:
        with atomic_path(self.path(index)) as temporary:
            torch.save(record, temporary)

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
