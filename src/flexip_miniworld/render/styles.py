"""The caption styles as image filters on the hi-res frame: `apply_style` and its table `STYLES` (grayscale, sepia,
sketch, neon; None leaves the frame as it is), with their colours and strengths in `SEPIA_TINT`, `SKETCH`, `NEON`.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from flexip.errors import FlexIPInputError

#: Sepia: the luminance times this tint.
SEPIA_TINT = (1.07, 0.95, 0.74)
#: Sketch: dark subject edges and lighter background edges (luminance steps above the threshold) on paper.
SKETCH = {"paper": (0.97, 0.95, 0.9), "scenery": (0.66, 0.64, 0.62), "scenery_threshold": 0.06, "subject": (0.1, 0.1, 0.12)}
#: Neon: each part's edges glow in its own hue at full saturation, over a darkened scene.
NEON = {"min_chroma": 0.08, "line_base": 0.35, "line_gain": 0.65, "subject_light": 0.35, "scenery_light": 0.22, "glow": 0.8}


def luma(image: np.ndarray) -> np.ndarray:
    # Elementwise, not `@`: a matmul would call into a multi-threaded BLAS from every worker process.
    return 0.299 * image[..., 0] + 0.587 * image[..., 1] + 0.114 * image[..., 2]


def edges(values: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Pixels where `values` (labels, or luminance above `threshold`) change to a neighbour."""
    if threshold is None:
        dx = values[:, 1:] != values[:, :-1]
        dy = values[1:, :] != values[:-1, :]
    else:
        dx = np.abs(values[:, 1:] - values[:, :-1]) > threshold
        dy = np.abs(values[1:, :] - values[:-1, :]) > threshold
    found = np.zeros(values.shape, bool)
    found[:, 1:] |= dx
    found[:, :-1] |= dx
    found[1:, :] |= dy
    found[:-1, :] |= dy
    return found


def dilate(mask: np.ndarray, k: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(k):
        grown = out.copy()
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        grown[1:, :] |= out[:-1, :]
        grown[:-1, :] |= out[1:, :]
        out = grown
    return out


# Styles: (frame, background alone, part labels, supersample) → styled frame, all float32 hi-res.


def _grayscale(image, background, labels, supersample):
    return np.repeat(luma(image)[..., None], 3, axis=2)


def _sepia(image, background, labels, supersample):
    return luma(image)[..., None] * np.asarray(SEPIA_TINT, np.float32)


def _sketch(image, background, labels, supersample):
    out = np.empty_like(image)
    out[:] = SKETCH["paper"]
    out[edges(luma(background), SKETCH["scenery_threshold"])] = SKETCH["scenery"]
    out[edges(labels)] = SKETCH["subject"]  # two pixels wide: half a pixel after a 4× downsample
    return out


def _neon(image, background, labels, supersample):
    low, high = image.min(axis=2, keepdims=True), image.max(axis=2, keepdims=True)
    hue = (image - low) / np.maximum(high - low, NEON["min_chroma"])
    lines = np.where(dilate(edges(labels), 1)[..., None], NEON["line_base"] + NEON["line_gain"] * hue, 0.0).astype(np.float32)
    lines8 = Image.fromarray((np.clip(lines, 0, 1) * 255).astype(np.uint8))
    glow = np.asarray(lines8.filter(ImageFilter.GaussianBlur(supersample)), np.float32) / 255.0
    dark = np.where(labels[..., None] > 0, NEON["subject_light"], NEON["scenery_light"]).astype(np.float32) * image
    return dark + NEON["glow"] * glow + lines


#: Style word (scene.STYLES) → its filter.
STYLES = {"grayscale": _grayscale, "sepia": _sepia, "sketch": _sketch, "neon": _neon}


def apply_style(style: str | None, image: np.ndarray, background: np.ndarray, labels: np.ndarray, supersample: int) -> np.ndarray:
    """The frame `image` in `style`; `background` is the scene without the subject, `labels` the subject's parts (0 = none)."""
    if style is None:
        return image
    if style not in STYLES:
        raise FlexIPInputError(f"unknown style {style!r}; known: {list(STYLES)}")
    return STYLES[style](image, background, labels, supersample)
