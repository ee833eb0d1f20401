"""Rendering miniworld scenes with numpy + PIL, deterministically.

A frame is drawn at `supersample`× the target size and downsampled with LANCZOS:

1. the background: a procedural wide canvas per (kind, variant), cached, cropped at the camera pan;
2. the subject: evaluated implicitly — every pixel near the subject is mapped back through the pose
   (position, scale, rotation, squash) into the subject's own body coordinates, where the body
   (a superellipse with harmonic wobble), its pattern, marks, limbs, eyes and accessory are simple
   inside-tests. The transform therefore costs nothing extra and stays exact at any pose;
3. a dark silhouette outline, simple top-down shading, the scene's lighting;
4. the style (sketch, grayscale, neon, sepia), then the LANCZOS downsample.

Nothing here draws randomness at render time: the output is a pure function of
(identity, scene text, pose, size, supersample).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from flexip.errors import FlexIPInputError
from flexip_miniworld.identity import HARMONIC_ORDERS, Identity
from flexip_miniworld.scene import BACKGROUNDS, COLOURS, PATTERN_WORDS, Pose, SceneText

SUPERSAMPLE = 4
#: Background canvases are this many frame widths wide, so the camera can pan.
BG_WIDTH = 1.5
#: Subject size (largest extent / frame height) per caption size word.
SIZE_FRACTION = {None: 0.6, "small": 0.36, "big": 0.85}
#: Horizontal direction per placement; the offset from the centre shrinks for bigger subjects so they fit.
PLACEMENT_SIGN = {None: 0.0, "left": -1.0, "right": 1.0}
GROUND_Y = 0.56

WHITE = (1.0, 1.0, 1.0)
BLACK = (0.04, 0.04, 0.05)


# ----------------------------------------------------------------------------------------------
# Backgrounds


def _rgb(colour) -> tuple[int, int, int]:
    return tuple(int(round(255 * min(max(c, 0.0), 1.0))) for c in colour)


def _vertical_gradient(height: int, width: int, top, bottom) -> np.ndarray:
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    top = np.asarray(top, np.float32)
    bottom = np.asarray(bottom, np.float32)
    return np.broadcast_to(top * (1 - t) + bottom * t, (height, width, 3)).copy()


def _wavy_ground(draw: ImageDraw.ImageDraw, rng, width: int, height: int, level: float, amp: float, colour) -> None:
    """Fill everything below a gently waving horizon at `level` (fraction of height)."""
    k = rng.uniform(1.0, 3.0)
    phase = rng.uniform(0, 2 * math.pi)
    points = [
        (x, height * (level + amp * math.sin(k * 2 * math.pi * x / height / BG_WIDTH + phase)))
        for x in np.linspace(0, width, 24)
    ]
    draw.polygon(points + [(width, height), (0, height)], fill=_rgb(colour))


def _dots(draw, rng, width, height, count, y_range, radius_range, colour) -> None:
    for _ in range(count):
        x = rng.uniform(0, width)
        y = rng.uniform(*y_range) * height
        r = rng.uniform(*radius_range) * height
        draw.ellipse((x - r, y - r, x + r, y + r), fill=_rgb(colour))


def _draw_background(kind: Optional[str], variant: int, height: int) -> np.ndarray:
    width = int(round(height * BG_WIDTH))
    keys = [None, *BACKGROUNDS]
    rng = np.random.default_rng([0xB6, keys.index(kind), int(variant)])
    H = height
    tone = rng.uniform(-0.03, 0.03)

    if kind is None:
        base = _vertical_gradient(H, width, (0.88 + tone,) * 3, (0.78 + tone,) * 3)
    elif kind == "snow":
        base = _vertical_gradient(H, width, (0.7, 0.8, 0.93), (0.88, 0.92, 0.97))
    elif kind == "beach":
        base = _vertical_gradient(H, width, (0.35, 0.62, 0.95), (0.7, 0.85, 0.98))
    elif kind == "forest":
        base = _vertical_gradient(H, width, (0.1, 0.28, 0.12), (0.17, 0.38, 0.16))
    elif kind == "night":
        base = _vertical_gradient(H, width, (0.02, 0.03, 0.1), (0.07, 0.1, 0.26))
    elif kind == "grass":
        base = _vertical_gradient(H, width, (0.5, 0.74, 0.98), (0.8, 0.9, 0.99))
    elif kind == "city":
        base = _vertical_gradient(H, width, (0.6, 0.72, 0.87), (0.82, 0.85, 0.9))
    elif kind == "table":
        base = _vertical_gradient(H, width, (0.93, 0.86, 0.74), (0.84, 0.76, 0.63))
    elif kind == "underwater":
        base = _vertical_gradient(H, width, (0.05, 0.56, 0.7), (0.02, 0.2, 0.42))
    elif kind == "desert":
        base = _vertical_gradient(H, width, (0.99, 0.74, 0.42), (0.98, 0.88, 0.66))
    elif kind == "fabric":
        yy, xx = np.mgrid[0:H, 0:width].astype(np.float32) / H
        angle = rng.uniform(0.4, 1.1)
        freq = rng.uniform(2.5, 4.0)
        wave = np.sin(2 * math.pi * freq * (xx * math.cos(angle) + yy * math.sin(angle)) + rng.uniform(0, 6.3))
        wave += 0.5 * np.sin(2 * math.pi * freq * 1.7 * (xx * math.cos(angle + 0.5) + yy * math.sin(angle + 0.5)))
        shade = (1.0 + 0.09 * wave)[..., None]
        base = np.asarray((0.96, 0.6, 0.76), np.float32) * shade
    else:
        raise FlexIPInputError(f"unknown background {kind!r}; known: {list(BACKGROUNDS)}")

    image = Image.fromarray((np.clip(base, 0, 1) * 255 + 0.5).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    W = width

    if kind == "snow":
        for _ in range(int(rng.integers(3, 6))):  # distant pines
            x = rng.uniform(0, W)
            h = rng.uniform(0.12, 0.22) * H
            base_y = 0.58 * H
            draw.polygon([(x - 0.35 * h, base_y), (x + 0.35 * h, base_y), (x, base_y - h)], fill=_rgb((0.22, 0.4, 0.34)))
            draw.polygon(
                [(x - 0.12 * h, base_y - 0.7 * h), (x + 0.12 * h, base_y - 0.7 * h), (x, base_y - h)],
                fill=_rgb(WHITE),
            )
        _wavy_ground(draw, rng, W, H, 0.58, 0.03, (0.97, 0.98, 1.0))
        for _ in range(4):
            x, y = rng.uniform(0, W), rng.uniform(0.7, 0.95) * H
            draw.ellipse((x - 0.2 * H, y - 0.02 * H, x + 0.2 * H, y + 0.02 * H), fill=_rgb((0.85, 0.9, 0.97)))
        _dots(draw, rng, W, H, 45, (0.0, 1.0), (0.006, 0.012), WHITE)
    elif kind == "beach":
        sx = rng.uniform(0.1, 1.4) * H
        draw.ellipse((sx - 0.07 * H, 0.08 * H, sx + 0.07 * H, 0.22 * H), fill=_rgb((1.0, 0.93, 0.4)))
        draw.rectangle((0, 0.42 * H, W, 0.6 * H), fill=_rgb((0.04, 0.36, 0.7)))
        _wavy_ground(draw, rng, W, H, 0.57, 0.015, WHITE)
        _wavy_ground(draw, rng, W, H, 0.6, 0.015, (0.94, 0.84, 0.57))
        _dots(draw, rng, W, H, 30, (0.65, 1.0), (0.004, 0.008), (0.8, 0.68, 0.42))
    elif kind == "forest":
        for _ in range(int(rng.integers(5, 8))):
            x = rng.uniform(0, W)
            w = rng.uniform(0.05, 0.1) * H
            draw.rectangle((x - w / 2, 0, x + w / 2, 0.82 * H), fill=_rgb((0.33, 0.21, 0.1)))
        for _ in range(10):
            x, y = rng.uniform(0, W), rng.uniform(-0.05, 0.3) * H
            r = rng.uniform(0.1, 0.2) * H
            g = (rng.uniform(0.08, 0.2), rng.uniform(0.42, 0.6), rng.uniform(0.1, 0.2))
            draw.ellipse((x - r, y - r, x + r, y + r), fill=_rgb(g))
        _wavy_ground(draw, rng, W, H, 0.78, 0.02, (0.27, 0.19, 0.09))
        _dots(draw, rng, W, H, 25, (0.8, 1.0), (0.006, 0.012), (0.55, 0.42, 0.12))
    elif kind == "night":
        _dots(draw, rng, W, H, 60, (0.0, 0.7), (0.003, 0.008), (0.95, 0.95, 0.85))
        mx = rng.uniform(0.1, 1.4) * H
        draw.ellipse((mx - 0.07 * H, 0.06 * H, mx + 0.07 * H, 0.2 * H), fill=_rgb((0.96, 0.94, 0.75)))
        _wavy_ground(draw, rng, W, H, 0.74, 0.03, (0.05, 0.08, 0.11))
    elif kind == "grass":
        for _ in range(3):
            x = rng.uniform(0, W)
            r = rng.uniform(0.04, 0.07) * H
            y = rng.uniform(0.1, 0.3) * H
            for dx in (-r, 0, r):  # a cloud
                draw.ellipse((x + dx - r, y - r, x + dx + r, y + r), fill=_rgb((0.98, 0.98, 1.0)))
        _wavy_ground(draw, rng, W, H, 0.52, 0.03, (0.3, 0.72, 0.22))
        for _ in range(40):
            x, y = rng.uniform(0, W), rng.uniform(0.56, 1.0) * H
            h = 0.03 * H
            draw.polygon([(x - 0.008 * H, y), (x + 0.008 * H, y), (x, y - h)], fill=_rgb((0.18, 0.52, 0.14)))
        _dots(draw, rng, W, H, 20, (0.58, 1.0), (0.006, 0.01), (1.0, 0.95, 0.3))
    elif kind == "city":
        x = -rng.uniform(0, 0.1) * H
        while x < W:
            w = rng.uniform(0.12, 0.24) * H
            top = rng.uniform(0.1, 0.45) * H
            grey = rng.uniform(0.32, 0.58)
            draw.rectangle((x, top, x + w - 0.01 * H, 0.76 * H), fill=_rgb((grey, grey, grey + 0.04)))
            lit = (0.96, 0.86, 0.4)
            for wy in np.arange(top + 0.04 * H, 0.7 * H, 0.07 * H):
                for wx in np.arange(x + 0.03 * H, x + w - 0.05 * H, 0.06 * H):
                    draw.rectangle((wx, wy, wx + 0.025 * H, wy + 0.035 * H), fill=_rgb(lit if rng.uniform() < 0.6 else (0.2, 0.22, 0.28)))
            x += w
        draw.rectangle((0, 0.76 * H, W, H), fill=_rgb((0.27, 0.27, 0.3)))
        for dx in np.arange(0, W, 0.16 * H):
            draw.rectangle((dx, 0.87 * H, dx + 0.08 * H, 0.885 * H), fill=_rgb((0.95, 0.95, 0.9)))
    elif kind == "table":
        fx = rng.uniform(0.1, 1.2) * H
        draw.rectangle((fx, 0.1 * H, fx + 0.2 * H, 0.35 * H), fill=_rgb((0.45, 0.3, 0.2)))
        draw.rectangle((fx + 0.02 * H, 0.12 * H, fx + 0.18 * H, 0.33 * H), fill=_rgb((0.5, 0.7, 0.85)))
        draw.rectangle((0, 0.62 * H, W, H), fill=_rgb((0.62, 0.4, 0.2)))
        for _ in range(9):
            y = rng.uniform(0.66, 1.0) * H
            draw.line((0, y, W, y + rng.uniform(-0.03, 0.03) * H), fill=_rgb((0.5, 0.31, 0.14)), width=max(1, H // 90))
        draw.rectangle((0, 0.615 * H, W, 0.64 * H), fill=_rgb((0.74, 0.52, 0.29)))
    elif kind == "underwater":
        for _ in range(int(rng.integers(4, 8))):
            x = rng.uniform(0, W)
            phase = rng.uniform(0, 6.3)
            tall = rng.uniform(0.3, 0.6)
            points = [(x + 0.03 * H * math.sin(phase + 9 * t), H * (1 - tall * t)) for t in np.linspace(0, 1, 12)]
            draw.line(points, fill=_rgb((0.1, 0.52, 0.28)), width=max(2, H // 30))
        _wavy_ground(draw, rng, W, H, 0.88, 0.02, (0.76, 0.7, 0.5))
        for _ in range(18):
            x, y = rng.uniform(0, W), rng.uniform(0, 0.85) * H
            r = rng.uniform(0.01, 0.025) * H
            draw.ellipse((x - r, y - r, x + r, y + r), outline=_rgb((0.85, 0.95, 1.0)), width=max(1, H // 100))
    elif kind == "desert":
        sx = rng.uniform(0.1, 1.4) * H
        draw.ellipse((sx - 0.1 * H, 0.06 * H, sx + 0.1 * H, 0.26 * H), fill=_rgb((1.0, 0.96, 0.75)))
        _wavy_ground(draw, rng, W, H, 0.55, 0.05, (0.88, 0.64, 0.36))
        _wavy_ground(draw, rng, W, H, 0.68, 0.04, (0.93, 0.74, 0.44))
        for _ in range(int(rng.integers(1, 3))):
            x = rng.uniform(0, W)
            h = rng.uniform(0.2, 0.3) * H
            w = 0.035 * H
            green = _rgb((0.24, 0.55, 0.25))
            draw.rectangle((x - w, 0.66 * H - h, x + w, 0.7 * H), fill=green)
            draw.rectangle((x - 3 * w, 0.66 * H - 0.6 * h, x - w, 0.66 * H - 0.5 * h), fill=green)
            draw.rectangle((x - 3 * w, 0.66 * H - 0.85 * h, x - 2 * w, 0.66 * H - 0.5 * h), fill=green)
    return np.asarray(image)


_BACKGROUND_CACHE: dict[tuple, np.ndarray] = {}


def background_canvas(kind: Optional[str], variant: int, height: int) -> np.ndarray:
    """The wide uint8 canvas (height × 1.5·height × 3) of a background kind and variant (cached)."""
    key = (kind, int(variant), int(height))
    canvas = _BACKGROUND_CACHE.get(key)
    if canvas is None:
        if len(_BACKGROUND_CACHE) > 512:
            _BACKGROUND_CACHE.clear()
        canvas = _draw_background(kind, variant, height)
        canvas.setflags(write=False)
        _BACKGROUND_CACHE[key] = canvas
    return canvas


# ----------------------------------------------------------------------------------------------
# Subjects: a compiled sprite of primitives in body coordinates (u right, v down, body ≈ 2 units tall)


@dataclass(frozen=True)
class Sprite:
    aspect: float
    roundness: float
    orders: tuple[int, ...]
    amplitudes: tuple[float, ...]
    phases: tuple[float, ...]
    spikes: float  # amplitude of pointed spikes (the "spiky" property), 0 = none
    spike_phase: float
    cap_cut: Optional[float]  # mushroom: the body is cut below this v
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
        t = (9.0 * theta + sp.spike_phase) / (2 * math.pi)
        tri = 1.0 - 2.0 * np.abs(t - np.floor(t) - 0.5)  # 0..1 triangle wave, 9 teeth
        r = r + sp.spikes * (tri**2 - 0.3)
    return r


def _body_point(sp: Sprite, theta: float) -> tuple[float, float]:
    """The point of the body outline in direction `theta` (in the aspect-normalised frame)."""
    c, s = math.cos(theta), math.sin(theta)
    n = sp.roundness
    norm = (abs(c) ** n + abs(s) ** n) ** (1.0 / n)
    r = float(_radius(sp, np.float64(theta))) / norm
    v = s * r
    if sp.cap_cut is not None:
        v = min(v, sp.cap_cut)
    return (c * r * sp.aspect, v)


def _body_mask(sp: Sprite, u, v):
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


def _pattern_mask(sp: Sprite, u, v):
    ca, sa = math.cos(sp.pattern_angle), math.sin(sp.pattern_angle)
    pu = u * ca + v * sa
    pv = v * ca - u * sa
    w = 2 * math.pi * sp.pattern_freq
    phi = sp.pattern_phase
    kind = sp.pattern
    if kind == "stripes":
        return np.sin(w * pu + phi) > 0
    if kind == "spots":
        return np.cos(w * pu + phi) + np.cos(w * pv + 0.7 * phi) > 0.9
    if kind == "checker":
        return np.sin(w * pu + phi) * np.sin(w * pv + 1.3 * phi) > 0
    if kind == "rings":
        cu, cv = 0.25 * math.cos(phi), 0.25 * math.sin(phi)
        return np.sin(w * 1.3 * np.sqrt((u - cu) ** 2 + (v - cv) ** 2) + phi) > 0
    if kind == "belly":
        return pv + 0.18 * np.sin(w * pu + phi) > 0.25 * math.sin(phi)
    if kind == "zigzag":
        t = pu * sp.pattern_freq * 1.5 + phi
        tri = np.abs(t - np.floor(t) - 0.5)
        return np.sin(w * (pv + 0.5 * tri) + phi) > 0
    raise AssertionError(kind)


def _primitive_mask(kind: str, params: tuple, u, v, body=None):
    if kind == "ell":
        cx, cy, rx, ry = params
        return ((u - cx) / rx) ** 2 + ((v - cy) / ry) ** 2 < 1.0
    if kind == "rect":
        x0, y0, x1, y1 = params
        return (u > x0) & (u < x1) & (v > y0) & (v < y1)
    if kind == "tri":
        x0, y0, x1, y1, x2, y2 = params
        d0 = (x1 - x0) * (v - y0) - (y1 - y0) * (u - x0)
        d1 = (x2 - x1) * (v - y1) - (y2 - y1) * (u - x1)
        d2 = (x0 - x2) * (v - y2) - (y0 - y2) * (u - x2)
        return (d0 >= 0) & (d1 >= 0) & (d2 >= 0)
    if kind == "cap":
        x0, y0, x1, y1, r = params
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((u - x0) * dx + (v - y0) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
        return (u - x0 - t * dx) ** 2 + (v - y0 - t * dy) ** 2 < r * r
    if kind == "band":  # a band of the body between two v values (scarves)
        v0, v1 = params
        return body & (v > v0) & (v < v1)
    raise AssertionError(kind)


def _tri(*points) -> tuple:
    """A triangle primitive with counter-clockwise (in y-down terms: consistent) orientation."""
    (x0, y0), (x1, y1), (x2, y2) = points
    if (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0) < 0:
        (x1, y1), (x2, y2) = (x2, y2), (x1, y1)
    return ("tri", (x0, y0, x1, y1, x2, y2))


def _eye(u: float, v: float, size: float, gaze: float) -> list:
    return [
        ("ell", (u, v, size, size), WHITE),
        ("ell", (u + gaze * 0.4 * size, v, 0.55 * size, 0.55 * size), BLACK),
    ]


def _mix(a, b, t: float) -> tuple:
    return tuple(float(x * (1 - t) + y * t) for x, y in zip(a, b))


@lru_cache(maxsize=8192)
def compile_sprite(identity: Identity, colour: Optional[str] = None, pattern: Optional[str] = None, shape: Optional[str] = None) -> Sprite:
    """The identity's primitives, with the caption's property changes (colour, pattern, shape) applied."""
    noun = identity.noun
    f0, f1, f2 = identity.features
    aspect = identity.aspect
    roundness = identity.roundness
    amplitudes = tuple(a for a, _ in identity.harmonics)
    phases = tuple(p for _, p in identity.harmonics)
    spikes = 0.0
    if shape == "boxy":
        roundness, amplitudes = 7.0, tuple(0.2 * a for a in amplitudes)
        aspect = 1.0 + 0.6 * (aspect - 1.0)
    elif shape == "round":
        roundness, amplitudes = 2.0, tuple(0.0 for _ in amplitudes)
        aspect = 1.0 + 0.3 * (aspect - 1.0)
    elif shape == "spiky":
        roundness, spikes = 2.0, 0.32
        amplitudes = tuple(0.5 * a for a in amplitudes)
    primary = COLOURS[colour] if colour is not None else identity.primary
    pattern_kind = PATTERN_WORDS[pattern] if pattern is not None else identity.pattern
    secondary, accent = identity.secondary, identity.accent
    fc = identity.facing

    sp = Sprite(
        aspect=aspect,
        roundness=float(roundness),
        orders=HARMONIC_ORDERS,
        amplitudes=amplitudes,
        phases=phases,
        spikes=spikes,
        spike_phase=phases[0],
        cap_cut=(0.1 + 0.25 * f2) if noun == "mushroom" else None,
        primary=primary,
        secondary=secondary,
        accent=accent,
        outline=_mix(primary, (0, 0, 0), 0.7),
        pattern=pattern_kind,
        pattern_freq=identity.pattern_freq,
        pattern_angle=identity.pattern_angle,
        pattern_phase=identity.pattern_phase,
        marks=identity.marks,
        back=(),
        front=(),
        centre=(0.0, 0.0),
        half_extent=(1.0, 1.0),
    )
    top = _body_point(sp, -math.pi / 2)[1]
    bottom = _body_point(sp, math.pi / 2)[1]
    side = _body_point(sp, 0.0 if fc > 0 else math.pi)[0] * fc  # body half-width on the facing side
    back_side = _body_point(sp, math.pi if fc > 0 else 0.0)[0] * -fc
    es, gaze = identity.eye_size, identity.eye_gaze
    back, front = [], []

    if noun == "blob":
        fr = 0.16 + 0.12 * f0
        spread = (0.3 + 0.2 * f1) * aspect
        for su in (-spread, spread):
            back.append(("ell", (su, bottom - 0.05, fr * 1.3, fr), secondary))
        ev = -0.1 - 0.25 * f2
        for su in (-0.32 * aspect, 0.32 * aspect):
            front += _eye(su, ev, es, gaze)
    elif noun == "bot":
        height = 0.3 + 0.3 * f0
        back.append(("cap", (0.0, top + 0.1, 0.0, top - height, 0.06), secondary))
        front.append(("ell", (0.0, top - height, 0.13, 0.13), accent))
        leg_w = 0.09 + 0.06 * f2
        leg_len = 0.25 + 0.25 * f1
        for su in (-0.45 * aspect, 0.45 * aspect):
            back.append(("rect", (su - leg_w, bottom - 0.2, su + leg_w, bottom + leg_len), secondary))
        for su in (-0.33 * aspect, 0.33 * aspect):
            front += _eye(su, -0.25, es, gaze)
    elif noun == "bird":
        beak = 0.3 + 0.25 * f0
        back.append(_tri((fc * side * 0.85, -0.3), (fc * side * 0.85, 0.04), (fc * (side + beak), -0.12)) + (accent,))
        tail = 0.4 + 0.35 * f1
        back.append(_tri((fc * back_side * 0.7, -0.05), (fc * (back_side + tail), -0.6), (fc * (back_side + tail), 0.1)) + (secondary,))
        for su in (-0.2, 0.2):
            back.append(("cap", (su, bottom - 0.1, su + 0.05 * fc, bottom + 0.35, 0.05), accent))
        front.append(("ell", (-fc * 0.12 * aspect, 0.15, (0.3 + 0.2 * f2) * aspect, 0.28), secondary))
        front += _eye(fc * 0.5 * side, -0.35, es, gaze * fc)
    elif noun == "fish":
        tail = 0.45 + 0.3 * f0
        spread = 0.5 + 0.2 * f2
        back.append(_tri((fc * back_side * 0.8, 0.0), (fc * (back_side + tail), -spread), (fc * (back_side + tail), spread)) + (secondary,))
        fin = 0.3 + 0.25 * f1
        back.append(_tri((-0.45, top + 0.2), (0.35, top + 0.2), (-fc * 0.2, top - fin)) + (secondary,))
        front += _eye(fc * 0.6 * side, -0.2, es, gaze * fc)
    elif noun == "bug":
        length = 0.3 + 0.25 * f0
        thick = 0.055 + 0.03 * f2
        for sgn in (-1, 1):
            for lv in (-0.35, 0.1, 0.5):
                back.append(("cap", (sgn * 0.5 * aspect, lv, sgn * (aspect + length), lv + 0.25, thick), secondary))
            ant = 0.35 + 0.25 * f1
            tip = (sgn * (0.3 + 0.2 * f1), top - ant)
            back.append(("cap", (sgn * 0.2 * aspect, top + 0.15, *tip, 0.04), secondary))
            front.append(("ell", (*tip, 0.1, 0.1), accent))
        for su in (-0.3 * aspect, 0.3 * aspect):
            front += _eye(su, -0.35, es, gaze)
    elif noun == "mushroom":
        cut = sp.cap_cut
        sw = (0.25 + 0.15 * f0) * aspect * 0.7
        stem_bottom = cut + 0.6 + 0.4 * f1
        back.append(("rect", (-sw, cut - 0.3, sw, stem_bottom), accent))
        back.append(("ell", (0.0, stem_bottom, sw, 0.12), accent))
        for su in (-0.45 * sw, 0.45 * sw):
            back += [("ell", (su, cut + 0.22, es * 0.8, es * 0.8), WHITE), ("ell", (su + gaze * 0.3 * es, cut + 0.22, es * 0.45, es * 0.45), BLACK)]

    acc, acc_colour = identity.accessory, identity.accessory_colour
    if acc == "hat":
        front.append(("rect", (-0.5, top - 0.08, 0.5, top + 0.05), acc_colour))
        front.append(("rect", (-0.3, top - 0.5, 0.3, top - 0.04), acc_colour))
    elif acc == "bow":
        pu, pv = _body_point(sp, -math.pi / 2 - 0.6 * fc)
        front.append(_tri((pu, pv), (pu - 0.32, pv - 0.2), (pu - 0.32, pv + 0.2)) + (acc_colour,))
        front.append(_tri((pu, pv), (pu + 0.32, pv - 0.2), (pu + 0.32, pv + 0.2)) + (acc_colour,))
        front.append(("ell", (pu, pv, 0.09, 0.09), _mix(acc_colour, (0, 0, 0), 0.4)))
    elif acc == "scarf":
        centre = (sp.cap_cut - 0.17) if sp.cap_cut is not None else 0.3
        front.append(("band", (centre - 0.12, centre + 0.12), acc_colour))
        front.append(("rect", (0.15 * aspect, centre, 0.38 * aspect, centre + 0.5), acc_colour))

    sp = Sprite(**{**sp.__dict__, "back": tuple(back), "front": tuple(front)})
    # Bounding box, measured by evaluating the sprite's union on a coarse grid (one step of margin).
    grid = np.linspace(-3.6, 3.6, 81, dtype=np.float32)
    step = float(grid[1] - grid[0])
    u, v = grid[None, :], grid[:, None]
    union = _union_mask(sp, u + 0 * v, v + 0 * u)
    assert not (union[0].any() or union[-1].any() or union[:, 0].any() or union[:, -1].any()), "sprite too large"
    cols = grid[np.any(union, axis=0)]
    rows = grid[np.any(union, axis=1)]
    centre = ((cols[0] + cols[-1]) / 2, (rows[0] + rows[-1]) / 2)
    half = ((cols[-1] - cols[0]) / 2 + step, (rows[-1] - rows[0]) / 2 + step)
    return Sprite(**{**sp.__dict__, "centre": tuple(map(float, centre)), "half_extent": tuple(map(float, half))})


def _union_mask(sp: Sprite, u, v):
    body = _body_mask(sp, u, v)
    union = body.copy()
    for kind, params, _ in sp.back + sp.front:
        union |= _primitive_mask(kind, params, u, v, body)
    return union


def _palette(sp: Sprite) -> np.ndarray:
    """Colour per label: 0 = background, then back primitives, body, pattern, marks, front primitives."""
    colours = [(0.0, 0.0, 0.0)] + [c for _, _, c in sp.back] + [sp.primary, sp.secondary, sp.accent]
    colours += [c for _, _, c in sp.front]
    return np.asarray(colours, np.float32)


def _paint_subject(sp: Sprite, u, v, canvas: np.ndarray, labels: np.ndarray, pixels_per_unit: float) -> None:
    """Paint the sprite into a window of the frame (`canvas` float32 h×w×3, `labels` int16 h×w) given
    every pixel's body coordinates `u`, `v`. Labels say which part each pixel shows (0 = background)."""
    label = 1
    body = _body_mask(sp, u, v)
    for kind, params, _ in sp.back:
        np.copyto(labels, label, where=_primitive_mask(kind, params, u, v, body))
        label += 1
    np.copyto(labels, label, where=body)
    np.copyto(labels, label + 1, where=body & _pattern_mask(sp, u, v))
    for mu, mv, mr in sp.marks:
        np.copyto(labels, label + 2, where=body & (((u - mu) ** 2 + (v - mv) ** 2) < mr * mr))
    label += 3
    for kind, params, _ in sp.front:
        np.copyto(labels, label, where=_primitive_mask(kind, params, u, v, body))
        label += 1
    union = labels > 0
    # Palette colours with top-lit shading, then a dark silhouette outline about 0.09 body units wide.
    shade = (1.06 - 0.08 * np.clip(v, -1.5, 1.5)).astype(np.float32)
    np.copyto(canvas, _palette(sp)[labels] * shade[..., None], where=union[..., None])
    k = max(1, int(round(0.09 * pixels_per_unit)))
    inner = union.copy()
    inner[:, k:] &= union[:, :-k]
    inner[:, :-k] &= union[:, k:]
    inner[k:, :] &= union[:-k, :]
    inner[:-k, :] &= union[k:, :]
    np.copyto(canvas, np.asarray(sp.outline, np.float32), where=(union & ~inner)[..., None])


# ----------------------------------------------------------------------------------------------
# Styles


def _luma(image: np.ndarray) -> np.ndarray:
    # Elementwise, not `@`: a matmul would call into a multi-threaded BLAS from every worker process.
    return 0.299 * image[..., 0] + 0.587 * image[..., 1] + 0.114 * image[..., 2]


def _edges(values: np.ndarray, threshold: Optional[float] = None) -> np.ndarray:
    """Pixels where `values` (labels, or luminance above `threshold`) change to a neighbour."""
    if threshold is None:
        dx = values[:, 1:] != values[:, :-1]
        dy = values[1:, :] != values[:-1, :]
    else:
        dx = np.abs(values[:, 1:] - values[:, :-1]) > threshold
        dy = np.abs(values[1:, :] - values[:-1, :]) > threshold
    edges = np.zeros(values.shape, bool)
    edges[:, 1:] |= dx
    edges[:, :-1] |= dx
    edges[1:, :] |= dy
    edges[:-1, :] |= dy
    return edges


def _dilate(mask: np.ndarray, k: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(k):
        grown = out.copy()
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        grown[1:, :] |= out[:-1, :]
        grown[:-1, :] |= out[1:, :]
        out = grown
    return out


def _apply_style(style: Optional[str], image: np.ndarray, background: np.ndarray, labels: np.ndarray, supersample: int) -> np.ndarray:
    if style is None:
        return image
    if style == "grayscale":
        return np.repeat(_luma(image)[..., None], 3, axis=2)
    if style == "sepia":
        luma = _luma(image)[..., None]
        return luma * np.asarray((1.07, 0.95, 0.74), np.float32)
    subject_edges = _edges(labels)  # two pixels wide: half a pixel after a 4× downsample
    if style == "sketch":
        out = np.empty_like(image)
        out[:] = (0.97, 0.95, 0.9)
        out[_edges(_luma(background), 0.06)] = (0.66, 0.64, 0.62)
        out[subject_edges] = (0.1, 0.1, 0.12)
        return out
    if style == "neon":
        # Each part's edges glow in its own hue at full saturation, over a darkened scene.
        low, high = image.min(axis=2, keepdims=True), image.max(axis=2, keepdims=True)
        hue = (image - low) / np.maximum(high - low, 0.08)
        lines = np.where(_dilate(subject_edges, 1)[..., None], 0.35 + 0.65 * hue, 0.0).astype(np.float32)
        lines8 = Image.fromarray((np.clip(lines, 0, 1) * 255).astype(np.uint8))
        glow = np.asarray(lines8.filter(ImageFilter.GaussianBlur(supersample)), np.float32) / 255.0
        dark = np.where(labels[..., None] > 0, 0.35, 0.22).astype(np.float32) * image
        return dark + 0.8 * glow + lines
    raise FlexIPInputError(f"unknown style {style!r}")


# ----------------------------------------------------------------------------------------------
# Frames


def _background_window(kind: Optional[str], pose: Pose, size: int) -> np.ndarray:
    """The size × size window of a background canvas the camera sees at `pose.pan`, float32 in [0, 1]."""
    canvas = background_canvas(kind, pose.bg_variant, size)
    offset = int(round(min(max(pose.pan, 0.0), 1.0) * (canvas.shape[1] - size)))
    return canvas[:, offset : offset + size].astype(np.float32) * (1.0 / 255.0)


def render_background(kind: Optional[str], pose: Pose = Pose(), size: int = 32, supersample: int = SUPERSAMPLE) -> np.ndarray:
    """A scene with no subject (uint8 size × size × 3): the backdrop `render` would paint behind one."""
    return downsample(np.clip(_background_window(kind, pose, int(size) * int(supersample)) * np.float32(pose.light), 0.0, 1.0), size)


def render_hires(
    identity: Identity, text: SceneText = SceneText(), pose: Pose = Pose(), size: int = 32, supersample: int = SUPERSAMPLE
) -> np.ndarray:
    """The frame before downsampling: float32 (size·supersample)² × 3 in [0, 1]."""
    return _render_layers(identity, text, pose, size, supersample)[0]


def _render_layers(identity: Identity, text: SceneText, pose: Pose, size: int, supersample: int) -> tuple[np.ndarray, np.ndarray]:
    """(hi-res frame float32 H×W×3, part labels int16 H×W, 0 = background)."""
    if size < 8 or supersample < 1:
        raise FlexIPInputError(f"render size must be ≥ 8 and supersample ≥ 1, got {size} and {supersample}")
    H = W = int(size) * int(supersample)
    background = _background_window(text.background, pose, H)
    image = background.copy()
    labels = np.zeros((H, W), np.int16)

    sp = compile_sprite(identity, text.colour, text.pattern, text.shape)
    half_u, half_v = sp.half_extent
    scale = SIZE_FRACTION[text.size] * pose.scale * H / (2.0 * max(half_u, half_v))  # pixels per body unit
    offset_x = max(0.12, min(0.24, 0.48 - SIZE_FRACTION[text.size] / 2))
    cx = (0.5 + PLACEMENT_SIGN[text.placement] * offset_x + pose.dx) * W
    cy = (GROUND_Y + pose.dy) * H
    sx, sy = pose.squash, 1.0 / pose.squash
    c, s = math.cos(pose.angle), math.sin(pose.angle)
    # The window: the sprite's bounding box, squashed, rotated and scaled into the frame.
    reach_x = scale * (abs(c) * half_u * sx + abs(s) * half_v * sy) + 3
    reach_y = scale * (abs(s) * half_u * sx + abs(c) * half_v * sy) + 3
    x0, x1 = max(0, int(cx - reach_x)), min(W, int(math.ceil(cx + reach_x)))
    y0, y1 = max(0, int(cy - reach_y)), min(H, int(math.ceil(cy + reach_y)))
    if x1 > x0 and y1 > y0:
        X = ((np.arange(x0, x1, dtype=np.float32) + 0.5 - cx) / scale)[None, :]
        Y = ((np.arange(y0, y1, dtype=np.float32) + 0.5 - cy) / scale)[:, None]
        u = (c * X + s * Y) / sx + sp.centre[0]
        v = (c * Y - s * X) / sy + sp.centre[1]
        _paint_subject(sp, u, v, image[y0:y1, x0:x1], labels[y0:y1, x0:x1], scale * min(sx, sy))

    image *= np.float32(pose.light)
    background *= np.float32(pose.light)
    image = _apply_style(text.style, image, background, labels, supersample)
    return np.clip(image, 0.0, 1.0), labels


def downsample(image: np.ndarray, size: int) -> np.ndarray:
    """float [0, 1] hi-res frame → uint8 size × size × 3 with LANCZOS."""
    hi = Image.fromarray((image * 255.0 + 0.5).astype(np.uint8))
    return np.asarray(hi.resize((size, size), Image.Resampling.LANCZOS))


def render(
    identity: Identity, text: SceneText = SceneText(), pose: Pose = Pose(), size: int = 32, supersample: int = SUPERSAMPLE
) -> np.ndarray:
    """Render one frame: uint8 array size × size × 3."""
    return downsample(render_hires(identity, text, pose, size, supersample), size)


def render_with_mask(
    identity: Identity, text: SceneText = SceneText(), pose: Pose = Pose(), size: int = 32, supersample: int = SUPERSAMPLE
) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 frame size × size × 3 as `render` gives it, float32 size × size subject coverage in [0, 1]:
    the share of each pixel's hi-res samples that show the subject)."""
    image, labels = _render_layers(identity, text, pose, size, supersample)
    k = int(supersample)
    coverage = (labels > 0).astype(np.float32).reshape(size, k, size, k).mean(axis=(1, 3))
    return downsample(image, size), coverage


def render_image(identity: Identity, text: SceneText = SceneText(), pose: Pose = Pose(), size: int = 32, supersample: int = SUPERSAMPLE) -> Image.Image:
    return Image.fromarray(render(identity, text, pose, size, supersample))


# ----------------------------------------------------------------------------------------------
# Contact sheets


def contact_sheet(
    identities, columns: list[tuple[str, SceneText]], size: int = 32, zoom: int = 4, supersample: int = SUPERSAMPLE
) -> Image.Image:
    """A grid of renders: one row per identity, one column per (label, scene); each render is shown at
    its true resolution, enlarged `zoom`× with nearest-neighbour so pixels stay visible."""
    from PIL import ImageFont

    font = ImageFont.load_default()
    cell = size * zoom
    label_width, header = 96, 16
    sheet = Image.new("RGB", (label_width + cell * len(columns), header + cell * len(identities)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for c, (label, _) in enumerate(columns):
        draw.text((label_width + c * cell + 3, 2), label, fill=(0, 0, 0), font=font)
    for r, identity in enumerate(identities):
        y = header + r * cell
        draw.text((4, y + cell // 2 - 12), identity.name, fill=(0, 0, 0), font=font)
        draw.text((4, y + cell // 2 + 2), identity.noun, fill=(80, 80, 80), font=font)
        for c, (_, text) in enumerate(columns):
            tile = Image.fromarray(render(identity, text, Pose(), size, supersample))
            sheet.paste(tile.resize((cell, cell), Image.Resampling.NEAREST), (label_width + c * cell, y))
    return sheet


def default_sheet_columns() -> list[tuple[str, SceneText]]:
    """Columns of the preview sheet: the reference look, every background, layout, properties, styles."""
    columns = [("plain", SceneText())]
    columns += [(key, SceneText(background=key)) for key in BACKGROUNDS]
    columns += [
        ("small left", SceneText(size="small", placement="left", background="grass")),
        ("big right", SceneText(size="big", placement="right")),
        ("red", SceneText(colour="red")),
        ("striped", SceneText(pattern="striped")),
        ("boxy", SceneText(shape="boxy")),
        ("spiky", SceneText(shape="spiky")),
    ]
    columns += [(style, SceneText(style=style)) for style in ("sketch", "grayscale", "neon", "sepia")]
    return columns
