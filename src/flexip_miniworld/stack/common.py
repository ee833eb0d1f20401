"""What the stage trainers of the miniature stack share besides their `Loop` (stack/loop.py): hashes of
data and weights, the parent binding of derived stages, the training images as tensors, and one update.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from flexip.atomic import atomic_path, write_json
from flexip.errors import FlexIPInputError
from flexip.hashing import file_sha256
from flexip_miniworld.dataset import load_jsonl


def folder_hashes(folder: Path, root: Path | None = None) -> dict[str, str]:
    """sha256 of every file under `folder`, keyed by its path relative to `root` (default: folder)."""
    root = Path(root or folder)
    return {str(p.relative_to(root)): file_sha256(p) for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def weights_hash(folder: Path) -> str:
    """One sha256 over the sha256 of every .safetensors file in a model folder."""
    digest = hashlib.sha256()
    for name, value in folder_hashes(folder).items():
        if name.endswith(".safetensors"):
            digest.update(f"{name}={value}".encode())
    return digest.hexdigest()


def bind_parent(workdir: Path, parent: Path) -> None:
    """Record in `workdir/parent.json` the weights a derived stage starts from (`decoder` from the
    autoencoder, `unet_grow` from the UNet); raise if workdir already holds work derived from others
    (the parent was retrained: resuming would mix two models)."""
    path, digest = Path(workdir) / "parent.json", weights_hash(parent)
    if path.exists() and json.loads(path.read_text())["sha256"] != digest:
        raise FlexIPInputError(f"{workdir} was trained from other {parent} weights (retrained since?); delete {workdir} to start it over")
    Path(workdir).mkdir(parents=True, exist_ok=True)
    write_json(path, {"parent": str(parent), "sha256": digest})


def derived_output(workdir: Path, parent: Path) -> bool:
    """True if `workdir/model` exists and was derived from `parent` as it is now; False if the stage has
    not finished; raises if it was derived from other weights (a stale stage must not be shipped)."""
    if not (Path(workdir) / "model").is_dir():
        return False
    recorded = json.loads((Path(workdir) / "parent.json").read_text())["sha256"] if (Path(workdir) / "parent.json").exists() else None
    if recorded != weights_hash(parent):
        raise FlexIPInputError(f"{workdir / 'model'} was derived from other {parent} weights; re-run its stage (delete {workdir} first)")
    return True


def data_hash(data_dir: Path) -> str:
    """Identifies a miniworld dataset: sha256 over its manifest, held-out list and world.json."""
    digest = hashlib.sha256()
    for name in ("world.json", "manifest.jsonl", "heldout.jsonl"):
        path = Path(data_dir) / name
        if path.exists():
            digest.update(name.encode())
            digest.update(file_sha256(path).encode())
    return digest.hexdigest()


# ---- training data --------------------------------------------------------------------------------


def load_training_images(data_dir: Path, cache_dir: Path, limit: int | None = None) -> tuple[torch.Tensor, list[str]]:
    """(uint8 images [N, 3, H, W], captions) of the manifest's image rows, cached as one .npz."""
    from PIL import Image

    data_dir = Path(data_dir)
    rows = load_jsonl(data_dir / "manifest.jsonl")
    rows = [row for row in rows if row.get("modality") == "image"][:limit]
    if not rows:
        raise FlexIPInputError(f"{data_dir}/manifest.jsonl has no image rows; run `flexip miniworld make-data` first")
    cache = Path(cache_dir) / f"images_{len(rows)}_{data_hash(data_dir)[:12]}.npz"
    if cache.exists():
        stored = np.load(cache)
        return torch.from_numpy(stored["images"]), [row["caption"] for row in rows]
    images = np.stack([np.asarray(Image.open(data_dir / row["image"]).convert("RGB")) for row in rows])  # [N, H, W, 3]
    images = np.ascontiguousarray(images.transpose(0, 3, 1, 2))  # [N, 3, H, W]
    cache.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache) as temporary:
        np.savez(temporary, images=images)
    return torch.from_numpy(images), [row["caption"] for row in rows]


def to_unit(images_u8: torch.Tensor, device) -> torch.Tensor:
    """uint8 [B, 3, H, W] → float in [-1, 1] on `device`."""
    return images_u8.to(device=device, dtype=torch.float32).div(127.5).sub(1.0)


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, parameters, max_norm: float) -> float:
    """One update of every stage trainer: clear, backpropagate, clip the gradient norm, step; the loss as a float."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(parameters, max_norm)
    optimizer.step()
    return loss.item()
