"""The subject: `compile_sprite` turns an identity and a caption's property changes (colour, pattern, shape) into a
`Sprite`; `paint_subject` paints one into a window of the frame, with top-lit shading and a dark outline.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from flexip_miniworld.identity import HARMONIC_ORDERS, Identity
from flexip_miniworld.render.body_plans import PROPORTIONS, parts, proportion
from flexip_miniworld.render.colours import mix
from flexip_miniworld.render.sprite import Sprite, body_mask, pattern_mask, primitive_mask, union_mask
from flexip_miniworld.scene import COLOURS, PATTERN_WORDS


class ShapeChange(NamedTuple):
    """What a shape word does to the body."""

    roundness: float  # the superellipse exponent it takes
    wobble: float  # share of the identity's outline harmonics it keeps
    elongation: float | None  # share of the identity's aspect - 1 it keeps (None: the aspect as it is)
    spikes: float  # amplitude of the spikes it adds


SHAPE_CHANGES: dict[str, ShapeChange] = {
    "boxy": ShapeChange(roundness=7.0, wobble=0.2, elongation=0.6, spikes=0.0),
    "round": ShapeChange(roundness=2.0, wobble=0.0, elongation=0.3, spikes=0.0),
    "spiky": ShapeChange(roundness=2.0, wobble=0.5, elongation=None, spikes=0.32),
}
#: The sprite's bounding box is measured on a grid of this many points over ±BOX_REACH body units.
BOX_REACH, BOX_POINTS = 3.6, 81
#: The dark silhouette outline is this many body units wide.
OUTLINE_WIDTH = 0.09


@lru_cache(maxsize=8192)
def compile_sprite(identity: Identity, colour: str | None = None, pattern: str | None = None, shape: str | None = None) -> Sprite:
    """The identity's primitives, with the caption's property changes (colour, pattern, shape) applied."""
    aspect, roundness, spikes = identity.aspect, identity.roundness, 0.0
    amplitudes = tuple(a for a, _ in identity.harmonics)
    phases = tuple(p for _, p in identity.harmonics)
    if shape is not None:
        change = SHAPE_CHANGES[shape]
        roundness, spikes = change.roundness, change.spikes
        amplitudes = tuple(change.wobble * a for a in amplitudes)
        if change.elongation is not None:
            aspect = 1.0 + change.elongation * (aspect - 1.0)
    primary = COLOURS[colour] if colour is not None else identity.primary
    body = Sprite(
        aspect=aspect,
        roundness=float(roundness),
        orders=HARMONIC_ORDERS,
        amplitudes=amplitudes,
        phases=phases,
        spikes=spikes,
        spike_phase=phases[0],
        cap_cut=proportion(identity, "cap_cut") if "cap_cut" in PROPORTIONS[identity.noun] else None,
        primary=primary,
        secondary=identity.secondary,
        accent=identity.accent,
        outline=mix(primary, (0, 0, 0), 0.7),
        pattern=PATTERN_WORDS[pattern] if pattern is not None else identity.pattern,
        pattern_freq=identity.pattern_freq,
        pattern_angle=identity.pattern_angle,
        pattern_phase=identity.pattern_phase,
        marks=identity.marks,
        back=(),
        front=(),
        centre=(0.0, 0.0),
        half_extent=(1.0, 1.0),
    )
    back, front = parts(identity, body)
    sp = Sprite(**{**body.__dict__, "back": back, "front": front})
    # Bounding box, measured by evaluating the sprite's union on a coarse grid (one step of margin).
    grid = np.linspace(-BOX_REACH, BOX_REACH, BOX_POINTS, dtype=np.float32)
    step = float(grid[1] - grid[0])
    u, v = grid[None, :], grid[:, None]
    union = union_mask(sp, u + 0 * v, v + 0 * u)
    assert not (union[0].any() or union[-1].any() or union[:, 0].any() or union[:, -1].any()), "sprite too large"
    cols = grid[np.any(union, axis=0)]
    rows = grid[np.any(union, axis=1)]
    centre = ((cols[0] + cols[-1]) / 2, (rows[0] + rows[-1]) / 2)
    half = ((cols[-1] - cols[0]) / 2 + step, (rows[-1] - rows[0]) / 2 + step)
    return Sprite(**{**sp.__dict__, "centre": tuple(map(float, centre)), "half_extent": tuple(map(float, half))})


def _palette(sp: Sprite) -> np.ndarray:
    """Colour per label: 0 = background, then back primitives, body, pattern, marks, front primitives."""
    colours = [(0.0, 0.0, 0.0)] + [c for _, _, c in sp.back] + [sp.primary, sp.secondary, sp.accent]
    colours += [c for _, _, c in sp.front]
    return np.asarray(colours, np.float32)


def paint_subject(sp: Sprite, u, v, canvas: np.ndarray, labels: np.ndarray, pixels_per_unit: float) -> None:
    """Paint the sprite into a window of the frame (`canvas` float32 h×w×3, `labels` int16 h×w) given
    every pixel's body coordinates `u`, `v`. Labels say which part each pixel shows (0 = background)."""
    label = 1
    body = body_mask(sp, u, v)
    for kind, params, _ in sp.back:
        np.copyto(labels, label, where=primitive_mask(kind, params, u, v, body))
        label += 1
    np.copyto(labels, label, where=body)
    np.copyto(labels, label + 1, where=body & pattern_mask(sp, u, v))
    for mu, mv, mr in sp.marks:
        np.copyto(labels, label + 2, where=body & (((u - mu) ** 2 + (v - mv) ** 2) < mr * mr))
    label += 3
    for kind, params, _ in sp.front:
        np.copyto(labels, label, where=primitive_mask(kind, params, u, v, body))
        label += 1
    union = labels > 0
    # Palette colours with top-lit shading (brighter above), then the dark silhouette outline.
    shade = (1.06 - 0.08 * np.clip(v, -1.5, 1.5)).astype(np.float32)
    np.copyto(canvas, _palette(sp)[labels] * shade[..., None], where=union[..., None])
    k = max(1, int(round(OUTLINE_WIDTH * pixels_per_unit)))
    inner = union.copy()
    inner[:, k:] &= union[:, :-k]
    inner[:, :-k] &= union[:, k:]
    inner[k:, :] &= union[:-k, :]
    inner[:-k, :] &= union[k:, :]
    np.copyto(canvas, np.asarray(sp.outline, np.float32), where=(union & ~inner)[..., None])
