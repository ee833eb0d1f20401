"""The backgrounds: what each one is made of (`GRADIENTS`, `FABRIC`, `SCENERY`), and `background_canvas`, which draws
the wide canvas of a (kind, variant) once and caches it.

A canvas is a base (a vertical sky-to-ground gradient, or for "fabric" a woven texture) with the background's scenery
drawn over it in order. All randomness comes from one generator seeded by (kind, variant), so a canvas is a pure
function of (kind, variant, height).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from flexip.errors import FlexIPInputError
from flexip_miniworld.identity import Colour
from flexip_miniworld.render import scenery
from flexip_miniworld.render.colours import WHITE
from flexip_miniworld.render.scenery import BG_WIDTH
from flexip_miniworld.scene import BACKGROUNDS

#: Gradient bases: (top colour, bottom colour). None is the plain studio backdrop, shifted by a tone per variant.
GRADIENTS: dict[str | None, tuple[Colour, Colour]] = {
    None: ((0.88, 0.88, 0.88), (0.78, 0.78, 0.78)),
    "snow": ((0.7, 0.8, 0.93), (0.88, 0.92, 0.97)),
    "beach": ((0.35, 0.62, 0.95), (0.7, 0.85, 0.98)),
    "forest": ((0.1, 0.28, 0.12), (0.17, 0.38, 0.16)),
    "night": ((0.02, 0.03, 0.1), (0.07, 0.1, 0.26)),
    "grass": ((0.5, 0.74, 0.98), (0.8, 0.9, 0.99)),
    "city": ((0.6, 0.72, 0.87), (0.82, 0.85, 0.9)),
    "table": ((0.93, 0.86, 0.74), (0.84, 0.76, 0.63)),
    "underwater": ((0.05, 0.56, 0.7), (0.02, 0.2, 0.42)),
    "desert": ((0.99, 0.74, 0.42), (0.98, 0.88, 0.66)),
}
#: The studio backdrop's grey is shifted by a tone drawn from ±STUDIO_TONE (every kind draws it, to keep the streams apart).
STUDIO_TONE = 0.03
#: The woven "fabric" base: a colour shaded by two crossing sine weaves (angle and frequency drawn per variant).
FABRIC = {
    "colour": (0.96, 0.6, 0.76),
    "angle": (0.4, 1.1),
    "frequency": (2.5, 4.0),
    "phase": (0.0, 6.3),
    "cross_weight": 0.5,
    "cross_frequency": 1.7,
    "cross_angle": 0.5,
    "depth": 0.09,
}

#: Scenery drawn over the base, in order: (drawer, its parameters). Fractions are of the frame height.
SCENERY: dict[str | None, tuple] = {
    None: (),
    "snow": (
        (
            scenery.pines,
            dict(
                count=(3, 6),
                height=(0.12, 0.22),
                base=0.58,
                half_width=0.35,
                colour=(0.22, 0.4, 0.34),
                cap_half_width=0.12,
                cap_base=0.7,
                cap_colour=WHITE,
            ),
        ),
        (scenery.ground, dict(level=0.58, amplitude=0.03, colour=(0.97, 0.98, 1.0))),
        (scenery.drifts, dict(count=4, y=(0.7, 0.95), half_size=(0.2, 0.02), colour=(0.85, 0.9, 0.97))),
        (scenery.dots, dict(count=45, y=(0.0, 1.0), radius=(0.006, 0.012), colour=WHITE)),
    ),
    "beach": (
        (scenery.disc, dict(x=(0.1, 1.4), half_width=0.07, top=0.08, bottom=0.22, colour=(1.0, 0.93, 0.4))),
        (scenery.band, dict(top=0.42, bottom=0.6, colour=(0.04, 0.36, 0.7))),
        (scenery.ground, dict(level=0.57, amplitude=0.015, colour=WHITE)),
        (scenery.ground, dict(level=0.6, amplitude=0.015, colour=(0.94, 0.84, 0.57))),
        (scenery.dots, dict(count=30, y=(0.65, 1.0), radius=(0.004, 0.008), colour=(0.8, 0.68, 0.42))),
    ),
    "forest": (
        (scenery.trunks, dict(count=(5, 8), width=(0.05, 0.1), bottom=0.82, colour=(0.33, 0.21, 0.1))),
        (scenery.foliage, dict(count=10, y=(-0.05, 0.3), radius=(0.1, 0.2), colour=((0.08, 0.2), (0.42, 0.6), (0.1, 0.2)))),
        (scenery.ground, dict(level=0.78, amplitude=0.02, colour=(0.27, 0.19, 0.09))),
        (scenery.dots, dict(count=25, y=(0.8, 1.0), radius=(0.006, 0.012), colour=(0.55, 0.42, 0.12))),
    ),
    "night": (
        (scenery.dots, dict(count=60, y=(0.0, 0.7), radius=(0.003, 0.008), colour=(0.95, 0.95, 0.85))),
        (scenery.disc, dict(x=(0.1, 1.4), half_width=0.07, top=0.06, bottom=0.2, colour=(0.96, 0.94, 0.75))),
        (scenery.ground, dict(level=0.74, amplitude=0.03, colour=(0.05, 0.08, 0.11))),
    ),
    "grass": (
        (scenery.clouds, dict(count=3, radius=(0.04, 0.07), y=(0.1, 0.3), colour=(0.98, 0.98, 1.0))),
        (scenery.ground, dict(level=0.52, amplitude=0.03, colour=(0.3, 0.72, 0.22))),
        (scenery.blades, dict(count=40, y=(0.56, 1.0), half_width=0.008, height=0.03, colour=(0.18, 0.52, 0.14))),
        (scenery.dots, dict(count=20, y=(0.58, 1.0), radius=(0.006, 0.01), colour=(1.0, 0.95, 0.3))),
    ),
    "city": (
        (
            scenery.buildings,
            dict(
                start=(0.0, 0.1),
                width=(0.12, 0.24),
                top=(0.1, 0.45),
                grey=(0.32, 0.58),
                blue=0.04,
                gap=0.01,
                street=0.76,
                windows=dict(
                    below_roof=0.04,
                    lowest=0.7,
                    row_pitch=0.07,
                    inset=0.03,
                    margin=0.05,
                    column_pitch=0.06,
                    size=(0.025, 0.035),
                    lit=0.6,
                    lit_colour=(0.96, 0.86, 0.4),
                    dark_colour=(0.2, 0.22, 0.28),
                ),
            ),
        ),
        (scenery.band, dict(top=0.76, bottom=1.0, colour=(0.27, 0.27, 0.3))),
        (scenery.lane_marks, dict(pitch=0.16, length=0.08, top=0.87, bottom=0.885, colour=(0.95, 0.95, 0.9))),
    ),
    "table": (
        (
            scenery.picture,
            dict(x=(0.1, 1.2), parts=(((0.0, 0.1, 0.2, 0.35), (0.45, 0.3, 0.2)), ((0.02, 0.12, 0.18, 0.33), (0.5, 0.7, 0.85)))),
        ),
        (scenery.band, dict(top=0.62, bottom=1.0, colour=(0.62, 0.4, 0.2))),
        (scenery.grain, dict(count=9, y=(0.66, 1.0), tilt=(-0.03, 0.03), width=90, colour=(0.5, 0.31, 0.14))),
        (scenery.band, dict(top=0.615, bottom=0.64, colour=(0.74, 0.52, 0.29))),
    ),
    "underwater": (
        (
            scenery.weeds,
            dict(count=(4, 8), phase=(0.0, 6.3), height=(0.3, 0.6), sway=0.03, wiggle=9, points=12, width=30, colour=(0.1, 0.52, 0.28)),
        ),
        (scenery.ground, dict(level=0.88, amplitude=0.02, colour=(0.76, 0.7, 0.5))),
        (scenery.dots, dict(count=18, y=(0.0, 0.85), radius=(0.01, 0.025), colour=(0.85, 0.95, 1.0), ring=100)),
    ),
    "desert": (
        (scenery.disc, dict(x=(0.1, 1.4), half_width=0.1, top=0.06, bottom=0.26, colour=(1.0, 0.96, 0.75))),
        (scenery.ground, dict(level=0.55, amplitude=0.05, colour=(0.88, 0.64, 0.36))),
        (scenery.ground, dict(level=0.68, amplitude=0.04, colour=(0.93, 0.74, 0.44))),
        (
            scenery.cacti,
            dict(
                count=(1, 3),
                height=(0.2, 0.3),
                width=0.035,
                colour=(0.24, 0.55, 0.25),
                parts=(
                    ((-1, 1), (0.66, 1.0), (0.7, 0.0)),  # trunk
                    ((-3, -1), (0.66, 0.6), (0.66, 0.5)),  # arm
                    ((-3, -2), (0.66, 0.85), (0.66, 0.5)),  # its upright end
                ),
            ),
        ),
    ),
    "fabric": (),
}


def _vertical_gradient(height: int, width: int, top: Colour, bottom: Colour) -> np.ndarray:
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    top = np.asarray(top, np.float32)
    bottom = np.asarray(bottom, np.float32)
    return np.broadcast_to(top * (1 - t) + bottom * t, (height, width, 3)).copy()


def _fabric(
    rng,
    height: int,
    width: int,
    colour: Colour,
    angle,
    frequency,
    phase,
    cross_weight: float,
    cross_frequency: float,
    cross_angle: float,
    depth: float,
) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) / height
    a = rng.uniform(*angle)
    f = rng.uniform(*frequency)
    wave = np.sin(2 * math.pi * f * (xx * math.cos(a) + yy * math.sin(a)) + rng.uniform(*phase))
    a2 = a + cross_angle
    wave += cross_weight * np.sin(2 * math.pi * f * cross_frequency * (xx * math.cos(a2) + yy * math.sin(a2)))
    shade = (1.0 + depth * wave)[..., None]
    return np.asarray(colour, np.float32) * shade


def _draw_background(kind: str | None, variant: int, height: int) -> np.ndarray:
    if kind not in SCENERY:
        raise FlexIPInputError(f"unknown background {kind!r}; known: {list(BACKGROUNDS)}")
    width = int(round(height * BG_WIDTH))
    rng = np.random.default_rng([0xB6, [None, *BACKGROUNDS].index(kind), int(variant)])
    tone = rng.uniform(-STUDIO_TONE, STUDIO_TONE)
    if kind == "fabric":
        base = _fabric(rng, height, width, **FABRIC)
    else:
        top, bottom = GRADIENTS[kind]
        if kind is None:
            top, bottom = tuple(c + tone for c in top), tuple(c + tone for c in bottom)
        base = _vertical_gradient(height, width, top, bottom)
    image = Image.fromarray((np.clip(base, 0, 1) * 255 + 0.5).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for drawer, parameters in SCENERY[kind]:
        drawer(draw, rng, width, height, **parameters)
    return np.asarray(image)


@lru_cache(maxsize=512)
def background_canvas(kind: str | None, variant: int, height: int) -> np.ndarray:
    """The wide, read-only uint8 canvas (height × 1.5·height × 3) of a background kind and variant (cached;
    `background_canvas.cache_clear()` empties the cache)."""
    canvas = _draw_background(kind, int(variant), int(height))
    canvas.setflags(write=False)
    return canvas
