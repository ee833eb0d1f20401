"""A subject as a `Sprite`: a body and primitives in body coordinates (u right, v down, body ≈ 2 units tall), and the
inside-tests that evaluate it at any point: `body_point`, `body_mask`, `pattern_mask`, `primitive_mask`, `union_mask`.

The body is a superellipse whose radius carries harmonic wobble (and, for spiky shapes, triangular teeth); the
pattern is a function of the body coordinates; primitives are ellipses, rectangles, triangles, capsules and bands
of the body (`PRIMITIVES`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Spiky bodies: this many triangular teeth, squared and lowered by SPIKE_OFFSET so the mean radius stays put.
SPIKE_TEETH = 9.0
SPIKE_OFFSET = 0.3


@dataclass(frozen=True)
class Sprite:
    aspect: float
    roundness: float
    orders: tuple[int, ...]
    amplitudes: tuple[float, ...]
    phases: tuple[float, ...]
    spikes: float  # amplitude of pointed spikes (the "spiky" property), 0 = none
    spike_phase: float
    cap_cut: float | None  # mushroom: the body is cut below this v
    primary: tuple
    secondary: tuple
    accent: tuple
    outline: tuple
    pattern: str
    pattern_freq: float
    pattern_angle: float
    pattern_phase: float
    marks: tuple
    back: tuple  # primitives drawn behind the body: (kind, params, colour)
    front: tuple  # primitives drawn over the body
    centre: tuple[float, float]  # centre of the sprite's bounding box, body units
    half_extent: tuple[float, float]  # half width, half height of the bounding box


def _radius(sp: Sprite, theta):
    r = 1.0
    for k, a, p in zip(sp.orders, sp.amplitudes, sp.phases):
        if a:
            r = r + a * np.cos(k * theta + p)
    if sp.spikes:
        t = (SPIKE_TEETH * theta + sp.spike_phase) / (2 * math.pi)
        tri = 1.0 - 2.0 * np.abs(t - np.floor(t) - 0.5)  # 0..1 triangle wave
        r = r + sp.spikes * (tri**2 - SPIKE_OFFSET)
    return r


def body_point(sp: Sprite, theta: float) -> tuple[float, float]:
    """The point of the body outline in direction `theta` (in the aspect-normalised frame)."""
    c, s = math.cos(theta), math.sin(theta)
    n = sp.roundness
    norm = (abs(c) ** n + abs(s) ** n) ** (1.0 / n)
    r = float(_radius(sp, np.float64(theta))) / norm
    v = s * r
    if sp.cap_cut is not None:
        v = min(v, sp.cap_cut)
    return (c * r * sp.aspect, v)


def body_mask(sp: Sprite, u, v):
    """Whether each point (u, v) lies inside the body."""
    x = u / sp.aspect
    if sp.roundness == 2.0:
        rho = np.sqrt(x * x + v * v)
    else:
        n = sp.roundness
        rho = (np.abs(x) ** n + np.abs(v) ** n) ** (1.0 / n)
    inside = rho < _radius(sp, np.arctan2(v, x))
    if sp.cap_cut is not None:
        inside &= v < sp.cap_cut
    return inside


# Patterns: sp, body coordinates (u, v), pattern coordinates (pu, pv: rotated by the pattern angle), w = 2π·frequency.


def _stripes(sp: Sprite, u, v, pu, pv, w):
    return np.sin(w * pu + sp.pattern_phase) > 0


def _spots(sp: Sprite, u, v, pu, pv, w):
    phi = sp.pattern_phase
    return np.cos(w * pu + phi) + np.cos(w * pv + 0.7 * phi) > 0.9


def _checker(sp: Sprite, u, v, pu, pv, w):
    phi = sp.pattern_phase
    return np.sin(w * pu + phi) * np.sin(w * pv + 1.3 * phi) > 0


def _rings(sp: Sprite, u, v, pu, pv, w):
    phi = sp.pattern_phase
    cu, cv = 0.25 * math.cos(phi), 0.25 * math.sin(phi)
    return np.sin(w * 1.3 * np.sqrt((u - cu) ** 2 + (v - cv) ** 2) + phi) > 0


def _belly(sp: Sprite, u, v, pu, pv, w):
    phi = sp.pattern_phase
    return pv + 0.18 * np.sin(w * pu + phi) > 0.25 * math.sin(phi)


def _zigzag(sp: Sprite, u, v, pu, pv, w):
    phi = sp.pattern_phase
    t = pu * sp.pattern_freq * 1.5 + phi
    tri = np.abs(t - np.floor(t) - 0.5)
    return np.sin(w * (pv + 0.5 * tri) + phi) > 0


#: Pattern kind (identity.PATTERNS) → its inside-test.
PATTERNS = {"stripes": _stripes, "spots": _spots, "checker": _checker, "rings": _rings, "belly": _belly, "zigzag": _zigzag}


def pattern_mask(sp: Sprite, u, v):
    """Where the body shows the secondary colour of its pattern."""
    ca, sa = math.cos(sp.pattern_angle), math.sin(sp.pattern_angle)
    pu = u * ca + v * sa
    pv = v * ca - u * sa
    return PATTERNS[sp.pattern](sp, u, v, pu, pv, 2 * math.pi * sp.pattern_freq)


# Primitives: (parameters, u, v, body mask) → inside.


def _ellipse(params, u, v, body):
    cx, cy, rx, ry = params
    return ((u - cx) / rx) ** 2 + ((v - cy) / ry) ** 2 < 1.0


def _rectangle(params, u, v, body):
    x0, y0, x1, y1 = params
    return (u > x0) & (u < x1) & (v > y0) & (v < y1)


def _triangle(params, u, v, body):
    x0, y0, x1, y1, x2, y2 = params
    d0 = (x1 - x0) * (v - y0) - (y1 - y0) * (u - x0)
    d1 = (x2 - x1) * (v - y1) - (y2 - y1) * (u - x1)
    d2 = (x0 - x2) * (v - y2) - (y0 - y2) * (u - x2)
    return (d0 >= 0) & (d1 >= 0) & (d2 >= 0)


def _capsule(params, u, v, body):
    x0, y0, x1, y1, r = params
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((u - x0) * dx + (v - y0) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    return (u - x0 - t * dx) ** 2 + (v - y0 - t * dy) ** 2 < r * r


def _band(params, u, v, body):
    v0, v1 = params
    return body & (v > v0) & (v < v1)


#: Primitive kind → its inside-test: "ell" (cu, cv, ru, rv), "rect" (u0, v0, u1, v1), "tri" (three corners, as `tri` in
#: body_plans orients them), "cap" (a segment's ends and a radius), "band" (the body between two v values: scarves).
PRIMITIVES = {"ell": _ellipse, "rect": _rectangle, "tri": _triangle, "cap": _capsule, "band": _band}


def primitive_mask(kind: str, params: tuple, u, v, body=None):
    return PRIMITIVES[kind](params, u, v, body)


def union_mask(sp: Sprite, u, v):
    """Whether each point lies inside the body or any of its primitives."""
    body = body_mask(sp, u, v)
    union = body.copy()
    for kind, params, _ in sp.back + sp.front:
        union |= primitive_mask(kind, params, u, v, body)
    return union
