"""What a miniworld dataset's content depends on: `WorldConfig`, and `item_rng`, the random stream of each item."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flexip.errors import FlexIPInputError
from flexip_miniworld.identity import SEED_RANGE
from flexip_miniworld.render import SUPERSAMPLE

#: Salts that keep the random streams of the item kinds apart.
KIND_SALT = {"image": 1, "video": 2, "views": 3, "heldout": 4, "pairs": 5}


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


def item_rng(config: WorldConfig, kind: str, index: int) -> np.random.Generator:
    """The random stream of item `index` of `kind` (a key of KIND_SALT): a pure function of the three."""
    return np.random.default_rng([int(config.seed), KIND_SALT[kind], int(index)])
