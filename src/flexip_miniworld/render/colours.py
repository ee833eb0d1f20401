"""Colour constants and conversions shared by the painters: `WHITE`, `BLACK`, `mix`, `to_uint8`."""

from __future__ import annotations

from flexip_miniworld.identity import Colour

WHITE: Colour = (1.0, 1.0, 1.0)
BLACK: Colour = (0.04, 0.04, 0.05)


def mix(a: Colour, b: Colour, t: float) -> Colour:
    """The colour a share `t` of the way from `a` to `b`."""
    return tuple(float(x * (1 - t) + y * t) for x, y in zip(a, b))


def to_uint8(colour: Colour) -> tuple[int, int, int]:
    """An RGB colour in [0, 1] as the 8-bit tuple PIL draws with (clipped, rounded)."""
    return tuple(int(round(255 * min(max(c, 0.0), 1.0))) for c in colour)
