"""Miniworld subjects: an identity is a bundle of continuous parameters drawn from one seed.

Text names only the class noun ("a blob", "a bird"); everything else that makes a subject *this*
subject — the wobble of its outline, its two exact colours, the frequency, angle and phase of its
pattern, where its marks sit, its eyes, its accessory and the proportions of its limbs — is a
continuous value that no caption can carry. Identity therefore has to come from a reference image.

The cues are deliberately bold (large colour areas, low-frequency patterns, a strong silhouette), so
that they survive a 32×32 render and a small autoencoder.

Seeds: a training identity `i` has seed `TRAIN_SEED_BASE + i`, a held-out identity `j` has seed
`HELDOUT_SEED_BASE + j`; both ranges have `SEED_RANGE` values and do not overlap. The world seed is
mixed in, so a different world seed gives a different population over the same id ranges.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

from flexip.errors import FlexIPInputError

#: Class nouns, the only part of an identity that text names. Each has its own body plan.
CLASSES: tuple[str, ...] = ("blob", "bot", "bird", "fish", "bug", "mushroom")
#: Fill patterns of the body (secondary colour over primary). "stripes"/"spots" are also reachable by text.
PATTERNS: tuple[str, ...] = ("stripes", "spots", "checker", "rings", "belly", "zigzag")
#: Accessories; None means the subject wears nothing.
ACCESSORIES: tuple[str | None, ...] = (None, "hat", "bow", "scarf")
#: Outline harmonics used for every identity (k = 2..6); k = 1 would only shift the body.
HARMONIC_ORDERS: tuple[int, ...] = (2, 3, 4, 5, 6)
MAX_MARKS = 2

SPLITS = ("train", "heldout")
SEED_RANGE = 1_000_000
TRAIN_SEED_BASE = 0
HELDOUT_SEED_BASE = SEED_RANGE

Colour = tuple[float, float, float]


@dataclass(frozen=True)
class Identity:
    """One subject. Immutable and hashable (it keys the renderer's sprite cache)."""

    name: str  # "train-00017" / "heldout-00003": the manifest's subject id
    split: str
    index: int
    seed: int  # identity seed, from the split's range
    world_seed: int
    noun: str  # class noun, one of CLASSES
    aspect: float  # body half-width / half-height
    roundness: float  # superellipse exponent of the body (2 = ellipse, larger = boxier)
    harmonics: tuple[tuple[float, float], ...]  # (amplitude, phase) per order in HARMONIC_ORDERS
    primary: Colour  # body colour, RGB in [0, 1]
    secondary: Colour  # pattern and limb colour
    accent: Colour  # marks, beak, antenna tips, stem
    pattern: str  # one of PATTERNS
    pattern_freq: float  # cycles per body unit (the body is 2 units tall)
    pattern_angle: float  # radians
    pattern_phase: float  # radians
    marks: tuple[tuple[float, float, float], ...]  # (u, v, radius) in body units, 1..MAX_MARKS
    eye_size: float
    eye_gaze: float  # pupil offset, -1..1 of the eye radius
    facing: int  # +1 right, -1 left (birds and fish look that way)
    features: tuple[float, float, float]  # class-specific proportions in [0, 1]
    accessory: str | None
    accessory_colour: Colour

    def vector(self) -> np.ndarray:
        """All parameters as one float vector (for collision checks and nearest-neighbour tests)."""
        marks = list(self.marks) + [(0.0, 0.0, 0.0)] * (MAX_MARKS - len(self.marks))
        values = [
            CLASSES.index(self.noun),
            self.aspect,
            self.roundness,
            *[x for pair in self.harmonics for x in pair],
            *self.primary,
            *self.secondary,
            *self.accent,
            PATTERNS.index(self.pattern),
            self.pattern_freq,
            self.pattern_angle,
            self.pattern_phase,
            *[x for mark in marks for x in mark],
            self.eye_size,
            self.eye_gaze,
            self.facing,
            *self.features,
            ACCESSORIES.index(self.accessory),
            *self.accessory_colour,
        ]
        return np.asarray(values, dtype=np.float64)

    def to_json(self) -> dict:
        """A JSON-friendly record of every parameter (written to identities.jsonl)."""
        record = asdict(self)
        for key, value in record.items():
            if isinstance(value, tuple):
                record[key] = _listify(value)
        return record


def _listify(value):
    if isinstance(value, (tuple, list)):
        return [_listify(v) for v in value]
    return value


def identity_seed(split: str, index: int) -> int:
    """The seed of identity `index` of `split`; the two splits' seed ranges are disjoint."""
    if split not in SPLITS:
        raise FlexIPInputError(f"identity split must be one of {SPLITS}, got {split!r}")
    if not 0 <= int(index) < SEED_RANGE:
        raise FlexIPInputError(f"identity index must be in [0, {SEED_RANGE}), got {index}")
    base = TRAIN_SEED_BASE if split == "train" else HELDOUT_SEED_BASE
    return base + int(index)


def identity_name(split: str, index: int) -> str:
    return f"{split}-{int(index):05d}"


def _luma(rgb: Colour) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _hsv(h: float, s: float, v: float) -> Colour:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return (round(r, 4), round(g, 4), round(b, 4))


def _contrasting(rng: np.random.Generator, against: Colour, min_luma_gap: float, hue: float) -> Colour:
    """A colour of another hue whose brightness differs clearly from `against` (bold two-tone cues)."""
    colour = against
    for _ in range(64):
        h = hue + rng.uniform(0.2, 0.8)
        colour = _hsv(h, rng.uniform(0.35, 1.0), rng.uniform(0.15, 1.0))
        if abs(_luma(colour) - _luma(against)) >= min_luma_gap:
            return colour
    # Rare: force the gap by pushing the value to the far end.
    h = hue + 0.5
    return _hsv(h, 0.8, 0.15 if _luma(against) > 0.5 else 0.98)


@lru_cache(maxsize=65536)
def make_identity(split: str, index: int, world_seed: int = 0) -> Identity:
    """Draw identity `index` of `split` (deterministic in split, index and world seed)."""
    seed = identity_seed(split, index)
    rng = np.random.default_rng([int(world_seed), seed])
    noun = CLASSES[int(index) % len(CLASSES)]  # balanced classes within each split

    if noun == "fish":
        aspect = rng.uniform(1.35, 1.8)
    elif noun == "mushroom":
        aspect = rng.uniform(1.25, 1.6)
    elif noun == "bird":
        aspect = rng.uniform(1.05, 1.35)
    else:
        aspect = rng.uniform(0.8, 1.25)
    roundness = rng.uniform(3.2, 5.0) if noun == "bot" else rng.uniform(1.8, 2.6)
    wobble = 0.16 if noun == "blob" else 0.06
    harmonics = tuple(
        (round(float(rng.uniform(0.0, wobble) / math.sqrt(k - 1)), 5), round(float(rng.uniform(0, 2 * math.pi)), 5)) for k in HARMONIC_ORDERS
    )

    hue = float(rng.uniform(0, 1))
    primary = _hsv(hue, rng.uniform(0.45, 0.95), rng.uniform(0.45, 0.98))
    secondary = _contrasting(rng, primary, 0.25, hue)
    accent = _contrasting(rng, primary, 0.2, hue + 0.37)

    pattern = PATTERNS[int(rng.integers(len(PATTERNS)))]
    pattern_freq = float(rng.uniform(0.7, 1.2) if pattern in ("checker", "spots") else rng.uniform(0.8, 1.4))
    n_marks = int(rng.integers(1, MAX_MARKS + 1))
    marks = []
    for _ in range(n_marks):
        angle = rng.uniform(0, 2 * math.pi)
        dist = rng.uniform(0.15, 0.55)
        marks.append(
            (
                round(float(dist * math.cos(angle) * aspect), 5),
                round(float(dist * math.sin(angle)), 5),
                round(float(rng.uniform(0.17, 0.3)), 5),
            )
        )

    accessory_choices = [a for a in ACCESSORIES if not (noun == "bot" and a == "hat")]
    accessory = accessory_choices[int(rng.integers(len(accessory_choices)))]
    return Identity(
        name=identity_name(split, index),
        split=split,
        index=int(index),
        seed=seed,
        world_seed=int(world_seed),
        noun=noun,
        aspect=round(float(aspect), 5),
        roundness=round(float(roundness), 5),
        harmonics=harmonics,
        primary=primary,
        secondary=secondary,
        accent=accent,
        pattern=pattern,
        pattern_freq=round(pattern_freq, 5),
        pattern_angle=round(float(rng.uniform(0, math.pi)), 5),
        pattern_phase=round(float(rng.uniform(0, 2 * math.pi)), 5),
        marks=tuple(marks),
        eye_size=round(float(rng.uniform(0.14, 0.22)), 5),
        eye_gaze=round(float(rng.uniform(-0.6, 0.6)), 5),
        facing=1 if rng.uniform() < 0.5 else -1,
        features=tuple(round(float(x), 5) for x in rng.uniform(0, 1, size=3)),
        accessory=accessory,
        accessory_colour=_contrasting(rng, primary, 0.2, hue + 0.6),
    )


def make_identities(split: str, count: int, world_seed: int = 0) -> list[Identity]:
    if count < 0:
        raise FlexIPInputError(f"identity count must be ≥ 0, got {count}")
    return [make_identity(split, i, world_seed) for i in range(count)]
