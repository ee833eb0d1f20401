"""Derived random generators: every random choice of the data pipeline comes from a generator seeded by
the values that identify it (seed, epoch, index, attempt, ...), never from a shared stream, so a sample or a
sampler draw can be recomputed alone, in any process: the exact-resume guarantee."""

from __future__ import annotations

import hashlib
import random
from typing import Any


def derived_seed(*parts: Any) -> int:
    """A 64-bit seed from a stable hash of `parts` (the same in every process and run, unaffected by PYTHONHASHSEED)."""
    digest = hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def derived_rng(*parts: Any) -> random.Random:
    """A `random.Random` seeded with `derived_seed(*parts)`."""
    return random.Random(derived_seed(*parts))
