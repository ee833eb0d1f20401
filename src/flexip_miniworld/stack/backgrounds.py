"""Background-swap augmentation for the label-free DINO stages.

In this world a subject is small and the background fills most of the frame, so plain DINO
self-distillation learns "which background" first: two scenes of one identity look less alike to it
than two identities on one backdrop. Background augmentation (Ryali et al. 2021, "Characterizing and
improving the robustness of self-supervised learning through background augmentations") fixes that
without labels: each view of an image keeps its own foreground and gets a random other backdrop, so the
views agree only through the subject.

The foreground of a training image is its subject coverage, re-rendered from the world spec that made
it (the image rows' paths give their item index); nothing about identities is used. Styled images
(sketch, neon, grayscale, sepia) restyle their backdrop too, so they keep theirs (coverage 1).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from flexip.atomic import atomic_path
from flexip.errors import FlexIPInputError
from flexip_miniworld.dataset import load_jsonl, write_jsonl


def load_subject_masks(data_dir: Path, cache_dir: Path) -> torch.Tensor:
    """uint8 [N, 1, H, W] subject coverage (0–255) of the manifest's image rows, in manifest order (cached)."""
    from flexip_miniworld.dataset import WorldConfig, image_item
    from flexip_miniworld.identity import make_identity
    from flexip_miniworld.render import render_with_mask
    from flexip_miniworld.stack.common import data_hash

    data_dir = Path(data_dir)
    rows = load_jsonl(data_dir / "manifest.jsonl")
    paths = [row["image"] for row in rows if row.get("modality") == "image"]
    cache = Path(cache_dir) / f"masks_{len(paths)}_{data_hash(data_dir)[:12]}.npz"
    if cache.exists():
        return torch.from_numpy(np.load(cache)["masks"])
    try:
        config = WorldConfig(**json.loads((data_dir / "world.json").read_text(encoding="utf-8"))["config"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise FlexIPInputError(f"{data_dir}/world.json is missing or not a miniworld world.json ({error}); background swaps need it") from None
    masks = np.empty((len(paths), 1, config.size, config.size), np.uint8)
    for n, path in enumerate(paths):
        item = image_item(config, int(Path(path).stem))
        image, coverage = render_with_mask(
            make_identity("train", item.subject_index, config.seed), item.text, item.pose, config.size, config.supersample
        )
        if n < 8:  # the spec must still render the stored image (same renderer version)
            from PIL import Image

            stored = np.asarray(Image.open(data_dir / path).convert("RGB"))
            if not np.array_equal(stored, image):
                raise FlexIPInputError(f"{data_dir / path} differs from its re-render; the data was made by another renderer version")
        if item.text.style is not None:
            coverage = np.ones_like(coverage)
        masks[n, 0] = np.round(coverage * 255.0)
    cache.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache) as temporary:
        np.savez(temporary, masks=masks)
    return torch.from_numpy(masks)


def background_bank(count: int, size: int, supersample: int, seed: int) -> torch.Tensor:
    """uint8 [count, 3, size, size]: backdrops of every kind (and the plain one), random variant, pan and light."""
    from flexip_miniworld.render import render_background
    from flexip_miniworld.scene import BACKGROUNDS, BG_VARIANTS, Pose

    rng = np.random.default_rng(seed)
    kinds = [None, *BACKGROUNDS]
    bank = []
    for n in range(count):
        pose = Pose(pan=float(rng.uniform()), light=float(rng.uniform(0.88, 1.1)), bg_variant=int(rng.integers(BG_VARIANTS)))
        bank.append(render_background(kinds[n % len(kinds)], pose, size, supersample))
    return torch.from_numpy(np.ascontiguousarray(np.stack(bank).transpose(0, 3, 1, 2)))


def swap_backgrounds(x: torch.Tensor, masks: torch.Tensor, bank: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor:
    """x (float [B, 3, H, W] in [0, 1]) with, for each image independently with `probability`, its
    backdrop replaced by a random one from `bank`: x · m + backdrop · (1 − m), m the subject coverage."""
    batch = x.shape[0]
    chosen = bank[torch.randint(len(bank), (batch,), generator=generator)].to(device=x.device, dtype=x.dtype) / 255.0
    m = masks.to(device=x.device, dtype=x.dtype) / 255.0
    swap = (torch.rand(batch, generator=generator) < probability).to(device=x.device, dtype=x.dtype).view(batch, 1, 1, 1)
    m = 1.0 - swap * (1.0 - m)  # not swapped: coverage 1 everywhere, the image unchanged
    return x * m + chosen * (1.0 - m)


def masked_manifest(data_dir: Path, cache_dir: Path) -> Path:
    """data_dir/manifest_masked.jsonl: manifest.jsonl with each image row's subject mask (masks/*.png,
    white on the subject, from `load_subject_masks`), so that `flexip train`'s reference augmentation
    isolates the subject on a plain backdrop, as FlexIP and IP-Adapter prepare references. Without it
    the reference of an image sample carries its scene's background, which the caption already names:
    the adapter learns to copy backgrounds (and, given plain-backdrop references, to pale them).
    Written once (atomically); the original manifest is left as it is."""
    from PIL import Image

    data_dir = Path(data_dir)
    out = data_dir / "manifest_masked.jsonl"
    if out.exists():
        return out
    masks = load_subject_masks(data_dir, cache_dir)
    rows = load_jsonl(data_dir / "manifest.jsonl")
    (data_dir / "masks").mkdir(exist_ok=True)
    index = 0
    for row in rows:
        if row.get("modality") != "image":
            continue
        mask_path = Path("masks") / Path(row["image"]).name
        Image.fromarray(np.where(masks[index, 0].numpy() > 127, 255, 0).astype(np.uint8), "L").save(data_dir / mask_path)
        row["mask"] = str(mask_path)
        index += 1
    write_jsonl(out, rows)
    return out
