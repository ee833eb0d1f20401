"""The elements backgrounds are made of: one drawer per kind of scenery, parameterised by `backgrounds.SCENERY`.

Every drawer has the signature `(draw, rng, W, H, **parameters)`: it draws onto a PIL canvas W × H pixels and takes
every position and size from `rng` and its parameters (fractions of H; ranges `(low, high)` to draw from). Public drawers: `ground`, `dots`, `drifts`, `disc`, `band`, `pines`, `trunks`,
`foliage`, `clouds`, `blades`, `buildings`, `lane_marks`, `picture`, `grain`, `weeds`, `cacti`.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import ImageDraw

from flexip_miniworld.identity import Colour
from flexip_miniworld.render.colours import to_uint8

#: Background canvases are this many frame widths wide, so the camera can pan.
BG_WIDTH = 1.5
#: A wavy horizon has this many waves across the canvas (drawn uniformly) and is a polygon of this many points.
GROUND_WAVES = (1.0, 3.0)
GROUND_POINTS = 24

Draw = ImageDraw.ImageDraw
Range = tuple[float, float]


def ground(draw: Draw, rng, W: int, H: int, level: float, amplitude: float, colour: Colour) -> None:
    """Fill everything below a gently waving horizon at `level` (fraction of height)."""
    k = rng.uniform(*GROUND_WAVES)
    phase = rng.uniform(0, 2 * math.pi)
    points = [(x, H * (level + amplitude * math.sin(k * 2 * math.pi * x / H / BG_WIDTH + phase))) for x in np.linspace(0, W, GROUND_POINTS)]
    draw.polygon(points + [(W, H), (0, H)], fill=to_uint8(colour))


def dots(draw: Draw, rng, W: int, H: int, count: int, y: Range, radius: Range, colour: Colour, ring: int | None = None) -> None:
    """`count` discs at random places (snowflakes, stars, flowers); with `ring`, circles of width height // `ring`."""
    for _ in range(count):
        x = rng.uniform(0, W)
        cy = rng.uniform(*y) * H
        r = rng.uniform(*radius) * H
        if ring is None:
            draw.ellipse((x - r, cy - r, x + r, cy + r), fill=to_uint8(colour))
        else:
            draw.ellipse((x - r, cy - r, x + r, cy + r), outline=to_uint8(colour), width=max(1, H // ring))


def drifts(draw: Draw, rng, W: int, H: int, count: int, y: Range, half_size: tuple[float, float], colour: Colour) -> None:
    """`count` flat ellipses of one size (snowdrifts)."""
    for _ in range(count):
        x, cy = rng.uniform(0, W), rng.uniform(*y) * H
        rx, ry = half_size[0] * H, half_size[1] * H
        draw.ellipse((x - rx, cy - ry, x + rx, cy + ry), fill=to_uint8(colour))


def disc(draw: Draw, rng, W: int, H: int, x: Range, half_width: float, top: float, bottom: float, colour: Colour) -> None:
    """One disc in the sky (a sun, the moon) at a random height-fraction `x`."""
    cx = rng.uniform(*x) * H
    draw.ellipse((cx - half_width * H, top * H, cx + half_width * H, bottom * H), fill=to_uint8(colour))


def band(draw: Draw, rng, W: int, H: int, top: float, bottom: float, colour: Colour) -> None:
    """A full-width rectangle between two height fractions (the sea, a road, a table top)."""
    draw.rectangle((0, top * H, W, bottom * H), fill=to_uint8(colour))


def pines(
    draw: Draw,
    rng,
    W: int,
    H: int,
    count: tuple[int, int],
    height: Range,
    base: float,
    half_width: float,
    colour: Colour,
    cap_half_width: float,
    cap_base: float,
    cap_colour: Colour,
) -> None:
    """Triangular trees standing on `base`, with a cap of `cap_colour` from `cap_base` of their height up."""
    for _ in range(int(rng.integers(*count))):
        x = rng.uniform(0, W)
        h = rng.uniform(*height) * H
        base_y = base * H
        draw.polygon([(x - half_width * h, base_y), (x + half_width * h, base_y), (x, base_y - h)], fill=to_uint8(colour))
        draw.polygon(
            [(x - cap_half_width * h, base_y - cap_base * h), (x + cap_half_width * h, base_y - cap_base * h), (x, base_y - h)],
            fill=to_uint8(cap_colour),
        )


def trunks(draw: Draw, rng, W: int, H: int, count: tuple[int, int], width: Range, bottom: float, colour: Colour) -> None:
    """Tree trunks from the top of the frame down to `bottom`."""
    for _ in range(int(rng.integers(*count))):
        x = rng.uniform(0, W)
        w = rng.uniform(*width) * H
        draw.rectangle((x - w / 2, 0, x + w / 2, bottom * H), fill=to_uint8(colour))


def foliage(draw: Draw, rng, W: int, H: int, count: int, y: Range, radius: Range, colour: tuple[Range, Range, Range]) -> None:
    """`count` discs whose red, green and blue are each drawn from a range (a canopy)."""
    for _ in range(count):
        x, cy = rng.uniform(0, W), rng.uniform(*y) * H
        r = rng.uniform(*radius) * H
        shade = tuple(rng.uniform(*channel) for channel in colour)
        draw.ellipse((x - r, cy - r, x + r, cy + r), fill=to_uint8(shade))


def clouds(draw: Draw, rng, W: int, H: int, count: int, radius: Range, y: Range, colour: Colour) -> None:
    """Clouds of three discs side by side."""
    for _ in range(count):
        x = rng.uniform(0, W)
        r = rng.uniform(*radius) * H
        cy = rng.uniform(*y) * H
        for dx in (-r, 0, r):
            draw.ellipse((x + dx - r, cy - r, x + dx + r, cy + r), fill=to_uint8(colour))


def blades(draw: Draw, rng, W: int, H: int, count: int, y: Range, half_width: float, height: float, colour: Colour) -> None:
    """Thin upright triangles (blades of grass)."""
    for _ in range(count):
        x, base_y = rng.uniform(0, W), rng.uniform(*y) * H
        h = height * H
        draw.polygon([(x - half_width * H, base_y), (x + half_width * H, base_y), (x, base_y - h)], fill=to_uint8(colour))


def buildings(
    draw: Draw,
    rng,
    W: int,
    H: int,
    start: Range,
    width: Range,
    top: Range,
    grey: Range,
    blue: float,
    gap: float,
    street: float,
    windows: dict,
) -> None:
    """A row of grey blocks from a random start to the right edge, each with a grid of lit or dark windows."""
    x = -rng.uniform(*start) * H
    while x < W:
        w = rng.uniform(*width) * H
        roof = rng.uniform(*top) * H
        g = rng.uniform(*grey)
        draw.rectangle((x, roof, x + w - gap * H, street * H), fill=to_uint8((g, g, g + blue)))
        _windows(draw, rng, H, x, w, roof, **windows)
        x += w


def _windows(
    draw: Draw,
    rng,
    H: int,
    x: float,
    w: float,
    roof: float,
    below_roof: float,
    lowest: float,
    row_pitch: float,
    inset: float,
    margin: float,
    column_pitch: float,
    size: tuple[float, float],
    lit: float,
    lit_colour: Colour,
    dark_colour: Colour,
) -> None:
    for wy in np.arange(roof + below_roof * H, lowest * H, row_pitch * H):
        for wx in np.arange(x + inset * H, x + w - margin * H, column_pitch * H):
            colour = lit_colour if rng.uniform() < lit else dark_colour
            draw.rectangle((wx, wy, wx + size[0] * H, wy + size[1] * H), fill=to_uint8(colour))


def lane_marks(draw: Draw, rng, W: int, H: int, pitch: float, length: float, top: float, bottom: float, colour: Colour) -> None:
    """Dashes across the whole width, every `pitch`."""
    for dx in np.arange(0, W, pitch * H):
        draw.rectangle((dx, top * H, dx + length * H, bottom * H), fill=to_uint8(colour))


def picture(draw: Draw, rng, W: int, H: int, x: Range, parts: tuple) -> None:
    """Rectangles `(left, top, right, bottom)` around one random left edge (a framed picture on a wall)."""
    left = rng.uniform(*x) * H
    for (x0, y0, x1, y1), colour in parts:
        draw.rectangle((left + x0 * H, y0 * H, left + x1 * H, y1 * H), fill=to_uint8(colour))


def grain(draw: Draw, rng, W: int, H: int, count: int, y: Range, tilt: Range, width: int, colour: Colour) -> None:
    """Lines across the whole width, slightly tilted (wood grain), `height // width` pixels wide."""
    for _ in range(count):
        y0 = rng.uniform(*y) * H
        draw.line((0, y0, W, y0 + rng.uniform(*tilt) * H), fill=to_uint8(colour), width=max(1, H // width))


def weeds(
    draw: Draw,
    rng,
    W: int,
    H: int,
    count: tuple[int, int],
    phase: Range,
    height: Range,
    sway: float,
    wiggle: int,
    points: int,
    width: int,
    colour: Colour,
) -> None:
    """Swaying lines growing from the bottom edge (seaweed), `height // width` pixels (at least 2) wide."""
    for _ in range(int(rng.integers(*count))):
        x = rng.uniform(0, W)
        p = rng.uniform(*phase)
        tall = rng.uniform(*height)
        line = [(x + sway * H * math.sin(p + wiggle * t), H * (1 - tall * t)) for t in np.linspace(0, 1, points)]
        draw.line(line, fill=to_uint8(colour), width=max(2, H // width))


def cacti(draw: Draw, rng, W: int, H: int, count: tuple[int, int], height: Range, width: float, colour: Colour, parts: tuple) -> None:
    """Cacti of rectangles: per part, (left, right) in trunk half-widths and a top and a bottom, each
    `(fraction of the frame height, fraction of the cactus height above it)`."""
    for _ in range(int(rng.integers(*count))):
        x = rng.uniform(0, W)
        h = rng.uniform(*height) * H
        w = width * H
        for (left, right), (top, top_up), (bottom, bottom_up) in parts:
            draw.rectangle((x + left * w, top * H - top_up * h, x + right * w, bottom * H - bottom_up * h), fill=to_uint8(colour))
