"""Frames: the background window the camera sees, the subject placed and posed over it, the lighting and the style,
then the LANCZOS downsample. Public: `render`, `render_image`, `render_hires`, `render_with_mask`, `render_background`,
`downsample`, and the layout tables `SIZE_FRACTION`, `PLACEMENT_SIGN`, `GROUND_Y`, `SUPERSAMPLE`.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from flexip.errors import FlexIPInputError
from flexip_miniworld.identity import Identity
from flexip_miniworld.render.backgrounds import background_canvas
from flexip_miniworld.render.styles import apply_style
from flexip_miniworld.render.subject import compile_sprite, paint_subject
from flexip_miniworld.scene import Pose, SceneText

SUPERSAMPLE = 4
#: Subject size (largest extent / frame height) per caption size word.
SIZE_FRACTION = {None: 0.6, "small": 0.36, "big": 0.85}
#: Horizontal direction per placement; the offset from the centre shrinks for bigger subjects so they fit.
PLACEMENT_SIGN = {None: 0.0, "left": -1.0, "right": 1.0}
#: The placement offset (fraction of the frame width): half the room the subject leaves, kept within these bounds.
PLACEMENT_OFFSET = (0.12, 0.24)
#: Height of the subject's centre, fraction of the frame height.
GROUND_Y = 0.56


def _background_window(kind: str | None, pose: Pose, size: int) -> np.ndarray:
    """The size × size window of a background canvas the camera sees at `pose.pan`, float32 in [0, 1]."""
    canvas = background_canvas(kind, pose.bg_variant, size)
    offset = int(round(min(max(pose.pan, 0.0), 1.0) * (canvas.shape[1] - size)))
    return canvas[:, offset : offset + size].astype(np.float32) * (1.0 / 255.0)


def render_background(kind: str | None, pose: Pose = Pose(), size: int = 32, supersample: int = SUPERSAMPLE) -> np.ndarray:
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
    low, high = PLACEMENT_OFFSET
    offset_x = max(low, min(high, 0.48 - SIZE_FRACTION[text.size] / 2))
    cx = (0.5 + PLACEMENT_SIGN[text.placement] * offset_x + pose.dx) * W
    cy = (GROUND_Y + pose.dy) * H
    sx, sy = pose.squash, 1.0 / pose.squash
    c, s = math.cos(pose.angle), math.sin(pose.angle)
    # The window: the sprite's bounding box, squashed, rotated and scaled into the frame (3 pixels of margin).
    reach_x = scale * (abs(c) * half_u * sx + abs(s) * half_v * sy) + 3
    reach_y = scale * (abs(s) * half_u * sx + abs(c) * half_v * sy) + 3
    x0, x1 = max(0, int(cx - reach_x)), min(W, int(math.ceil(cx + reach_x)))
    y0, y1 = max(0, int(cy - reach_y)), min(H, int(math.ceil(cy + reach_y)))
    if x1 > x0 and y1 > y0:
        X = ((np.arange(x0, x1, dtype=np.float32) + 0.5 - cx) / scale)[None, :]
        Y = ((np.arange(y0, y1, dtype=np.float32) + 0.5 - cy) / scale)[:, None]
        u = (c * X + s * Y) / sx + sp.centre[0]
        v = (c * Y - s * X) / sy + sp.centre[1]
        paint_subject(sp, u, v, image[y0:y1, x0:x1], labels[y0:y1, x0:x1], scale * min(sx, sy))

    image *= np.float32(pose.light)
    background *= np.float32(pose.light)
    image = apply_style(text.style, image, background, labels, supersample)
    return np.clip(image, 0.0, 1.0), labels


def downsample(image: np.ndarray, size: int) -> np.ndarray:
    """float [0, 1] hi-res frame → uint8 size × size × 3 with LANCZOS."""
    hi = Image.fromarray((image * 255.0 + 0.5).astype(np.uint8))
    return np.asarray(hi.resize((size, size), Image.Resampling.LANCZOS))


def render(identity: Identity, text: SceneText = SceneText(), pose: Pose = Pose(), size: int = 32, supersample: int = SUPERSAMPLE) -> np.ndarray:
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


def render_image(
    identity: Identity, text: SceneText = SceneText(), pose: Pose = Pose(), size: int = 32, supersample: int = SUPERSAMPLE
) -> Image.Image:
    """`render` as a PIL image."""
    return Image.fromarray(render(identity, text, pose, size, supersample))
