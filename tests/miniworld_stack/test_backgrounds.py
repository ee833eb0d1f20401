"""Background-swap augmentation of the DINO stages: masks, backdrops, compositing."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def test_mask_covers_the_subject_and_render_matches():
    from flexip_miniworld.identity import make_identity
    from flexip_miniworld.render import render, render_background, render_with_mask
    from flexip_miniworld.scene import Pose, SceneText

    identity, text, pose = make_identity("train", 3), SceneText(background="beach"), Pose(bg_variant=2, pan=0.3)
    image, coverage = render_with_mask(identity, text, pose)
    assert np.array_equal(image, render(identity, text, pose))  # the same frame `render` gives
    assert coverage.shape == (32, 32) and 0.0 <= coverage.min() and coverage.max() == 1.0
    assert 0.05 < coverage.mean() < 0.6  # a subject, not the whole frame
    backdrop = render_background("beach", pose).astype(int)
    # far from the subject (no covered pixel within 2 px) the frame is the bare backdrop
    near = torch.nn.functional.max_pool2d(torch.from_numpy(coverage)[None, None], 5, stride=1, padding=2)[0, 0].numpy() > 0
    assert np.abs(image.astype(int) - backdrop)[~near].max() <= 2
    assert np.abs(image.astype(int) - backdrop)[coverage == 1.0].mean() > 10  # and the subject is not


def test_swap_keeps_the_subject_and_replaces_the_backdrop():
    from flexip_miniworld.stack.backgrounds import background_bank, swap_backgrounds

    bank = background_bank(11, 32, 2, seed=0)
    assert bank.shape == (11, 3, 32, 32) and bank.dtype == torch.uint8
    assert len({bytes(b.numpy()) for b in bank}) == 11  # 11 different backdrops (plain + 10 kinds)
    x = torch.rand(4, 3, 32, 32)
    masks = torch.zeros(4, 1, 32, 32, dtype=torch.uint8)
    masks[:, :, 8:24, 8:24] = 255
    g = torch.Generator().manual_seed(0)
    swapped = swap_backgrounds(x, masks, bank, 1.0, g)
    assert torch.equal(swapped[:, :, 8:24, 8:24], x[:, :, 8:24, 8:24])
    assert (swapped[:, :, :8] - x[:, :, :8]).abs().mean() > 0.1
    assert torch.equal(swap_backgrounds(x, masks, bank, 0.0, g), x)  # probability 0: untouched
    assert torch.equal(swap_backgrounds(x, torch.full_like(masks, 255), bank, 1.0, g), x)  # all subject: untouched


def test_masks_of_a_dataset_are_cached_and_checked(tiny_world, tmp_path):
    from flexip.errors import FlexIPInputError
    from flexip_miniworld.stack.backgrounds import load_subject_masks
    from flexip_miniworld.stack.common import load_training_images

    data = tiny_world / "data"
    masks = load_subject_masks(data, tmp_path / "cache")
    images, _ = load_training_images(data, tmp_path / "cache")
    assert masks.shape == (images.shape[0], 1, 32, 32) and masks.dtype == torch.uint8
    assert (masks.float().mean(dim=(1, 2, 3)) > 0).all()
    assert len(list((tmp_path / "cache").glob("masks_*.npz"))) == 1
    assert torch.equal(load_subject_masks(data, tmp_path / "cache"), masks)  # from the cache
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.jsonl").write_text((data / "manifest.jsonl").read_text())
    with pytest.raises(FlexIPInputError, match="world.json"):
        load_subject_masks(broken, tmp_path / "cache2")


def test_dino_trains_with_background_swaps(tiny_world, tiny, tmp_path):
    from flexip_miniworld.stack.dino import DinoConfig, train_dino

    configs, budget = tiny
    result = train_dino(
        tiny_world / "data",
        tmp_path / "dino",
        DinoConfig(**configs["dino"], background_swap=1.0, frame_pairs=True),
        budget(2),
        "cpu",
        False,
        lambda message: None,
    )
    assert result["steps"] == 2 and np.isfinite(result["final_loss"])
    assert (tmp_path / "dino" / "model" / "model.safetensors").exists()


def test_masked_manifest_gives_image_references_a_plain_backdrop(tiny_world, tmp_path):
    import random
    import shutil

    from PIL import Image

    from flexip.data.augment import ReferenceAugment, augment_reference
    from flexip.data.manifest import ImageRecord, load_manifest
    from flexip_miniworld.stack.backgrounds import load_subject_masks, masked_manifest

    data = tmp_path / "data"
    shutil.copytree(tiny_world / "data", data)
    original = (data / "manifest.jsonl").read_text()
    path = masked_manifest(data, tmp_path / "cache")
    assert (data / "manifest.jsonl").read_text() == original  # left as it is
    records = load_manifest(path)
    images = [r for r in records if isinstance(r, ImageRecord)]
    assert images and all(r.mask is not None for r in images)
    assert len(records) == sum(1 for line in original.splitlines() if line.strip())
    masks = load_subject_masks(data, tmp_path / "cache")
    first = np.asarray(Image.open(data / images[0].mask))
    assert np.array_equal(first > 127, masks[0, 0].numpy() > 127)
    plain = ReferenceAugment(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0, background=(210, 210, 210), mask_margin=0.0)
    for record in images:
        if (np.asarray(Image.open(data / record.mask)) > 127).all():
            continue  # a styled scene keeps its backdrop (coverage 1)
        reference = augment_reference(Image.open(data / record.image).convert("RGB"), random.Random(0), plain, Image.open(data / record.mask))
        pixels = np.asarray(reference).reshape(-1, 3)
        assert (pixels == 210).all(axis=1).any()  # the scene's backdrop is gone, the plain one shows
        break
    else:
        pytest.fail("no unstyled image in the tiny world")
    assert masked_manifest(data, tmp_path / "cache") == path  # written once
