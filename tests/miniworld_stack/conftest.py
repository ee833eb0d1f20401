"""A tiny miniworld dataset and a tiny stack built from it, shared by the tests of this folder."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    from flexip_miniworld.dataset import WorldConfig, make_dataset

    root = tmp_path_factory.mktemp("miniworld_stack")
    make_dataset(root / "data", WorldConfig(identities=6, heldout=2, frames=6, views=3), images=40, videos=2, multiview=2, workers=1, progress=False)
    torch.set_num_threads(1)
    return root


def budget(steps: int):
    from flexip_miniworld.stack.loop import Budget

    return Budget(max_steps=steps, checkpoint_steps=1, log_every=1)


TINY = {
    "autoencoder": dict(channels=(8, 16, 16), latent_channels=4, batch_size=4, warmup=1),
    "clip": dict(text_hidden=16, text_layers=1, vision_hidden=16, vision_layers=1, patch_size=8, heads=2, projection_dim=8, batch_size=6, warmup=1),
    "dino": dict(hidden=16, layers=1, heads=2, patch_size=8, prototypes=16, head_hidden=16, bottleneck=8, local_crops=1, batch_size=4, warmup=1),
    "unet": dict(channels=(16, 32, 32), head_dim=8, batch_size=4, warmup=1),
}


@pytest.fixture(scope="session")
def tiny():
    """(configs of every tiny stage, budget(steps) → Budget)."""
    return TINY, budget


@pytest.fixture(scope="session")
def tiny_stack(tiny_world):
    """tokenizer → autoencoder → clip → unet → dino, 2 steps each, next to tiny_world/data."""
    from flexip_miniworld.stack.autoencoder import AutoencoderConfig, train_autoencoder
    from flexip_miniworld.stack.clip import ClipConfig, train_clip
    from flexip_miniworld.stack.dino import DinoConfig, train_dino
    from flexip_miniworld.stack.tokenizer import build_tokenizer
    from flexip_miniworld.stack.unet import UNetConfig, train_unet

    data, work = tiny_world / "data", tiny_world
    quiet = lambda message: None  # noqa: E731
    build_tokenizer(work / "tokenizer", quiet)
    results = {
        "autoencoder": train_autoencoder(data, work / "autoencoder", AutoencoderConfig(**TINY["autoencoder"]), budget(2), "cpu", False, quiet),
        "clip": train_clip(data, work / "tokenizer", work / "clip", ClipConfig(**TINY["clip"]), budget(2), "cpu", False, quiet),
    }
    results["unet"] = train_unet(data, work, work / "unet", UNetConfig(**TINY["unet"]), budget(2), "cpu", False, quiet)
    results["dino"] = train_dino(data, work / "dino", DinoConfig(**TINY["dino"]), budget(2), "cpu", False, quiet)
    return work, results
