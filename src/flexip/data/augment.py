"""Reference augmentation for image samples, and target preprocessing.

For an image sample the target *is* the reference picture, so an unaugmented reference would let the
adapter learn to copy pixels. `augment_reference` breaks the pixel alignment (random resized crop,
horizontal flip, optional small rotation and colour jitter) while keeping the subject. With a subject
mask it first isolates the subject: crop to the mask's bounding box (plus a margin) and paint
everything outside the mask with a plain background colour.

All randomness comes from the `random.Random` passed in, so a seeded generator gives the same
augmentation every time (the dataset derives one per (seed, epoch, index)).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance

from flexip.errors import FlexIPInputError


@dataclass(frozen=True)
class ReferenceAugment:
    """Settings of the reference augmentation (validated on construction).

    - `scale`, `ratio`: random resized crop keeps a fraction in `scale` of the area, with its aspect
      ratio stretched by a factor in `ratio` (log-uniform) relative to the input's own aspect ratio, then
      resizes back to the input size (scale (1, 1) and ratio (1, 1) disable it);
    - `flip_p`: probability of a horizontal flip;
    - `rotation_degrees`: rotate by U[-d, d] degrees (0 disables), corners filled with `background`;
    - `color_jitter`: brightness, contrast and saturation each scaled by U[1 - j, 1 + j] (0 disables);
    - `mask_margin`: margin around the mask's bounding box, as a fraction of the box's size;
    - `background`: the plain colour behind a masked subject and in rotated corners.
    """

    scale: tuple[float, float] = (0.6, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    rotation_degrees: float = 0.0
    color_jitter: float = 0.0
    mask_margin: float = 0.1
    background: tuple[int, int, int] = (255, 255, 255)

    def __post_init__(self) -> None:
        low, high = self.scale
        if not 0 < low <= high <= 1:
            raise FlexIPInputError(f"augment scale must satisfy 0 < low <= high <= 1, got {self.scale}")
        low, high = self.ratio
        if not 0 < low <= high:
            raise FlexIPInputError(f"augment ratio must satisfy 0 < low <= high, got {self.ratio}")
        if not 0 <= self.flip_p <= 1:
            raise FlexIPInputError(f"flip_p must be in [0, 1], got {self.flip_p}")
        if not 0 <= self.rotation_degrees <= 180:
            raise FlexIPInputError(f"rotation_degrees must be in [0, 180], got {self.rotation_degrees}")
        if not 0 <= self.color_jitter < 1:
            raise FlexIPInputError(f"color_jitter must be in [0, 1), got {self.color_jitter}")
        if self.mask_margin < 0:
            raise FlexIPInputError(f"mask_margin must be >= 0, got {self.mask_margin}")
        if len(self.background) != 3 or not all(0 <= c <= 255 for c in self.background):
            raise FlexIPInputError(f"background must be an RGB triple of 0..255, got {self.background}")


#: No augmentation at all (reference = target); for ablations and tests.
NO_AUGMENT = ReferenceAugment(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0)


def augment_reference(
    image: Image.Image,
    rng: random.Random,
    config: ReferenceAugment = ReferenceAugment(),
    mask: Image.Image | None = None,
) -> Image.Image:
    """The augmented reference for an image sample; the input is not modified.

    `mask` (same size as `image`; white = subject, any mode) isolates the subject first. Raises
    `FlexIPInputError` when the mask's size differs from the image's or the mask is empty.
    """
    image = image.convert("RGB")
    if mask is not None:
        image = isolate_subject(image, mask, config.background, config.mask_margin)
    image = random_resized_crop(image, rng, config.scale, config.ratio)
    if rng.random() < config.flip_p:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if config.rotation_degrees > 0:
        angle = rng.uniform(-config.rotation_degrees, config.rotation_degrees)
        image = image.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=config.background)
    if config.color_jitter > 0:
        j = config.color_jitter
        for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            image = enhancer(image).enhance(rng.uniform(1 - j, 1 + j))
    return image


def subject_box(mask: Image.Image) -> tuple[int, int, int, int] | None:
    """Bounding box (left, top, right, bottom; right/bottom exclusive) of the white pixels of `mask`
    (pixels > 127 after conversion to grayscale), or None when there are none."""
    binary = np.asarray(mask.convert("L")) > 127
    rows, cols = np.flatnonzero(binary.any(axis=1)), np.flatnonzero(binary.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def isolate_subject(
    image: Image.Image,
    mask: Image.Image,
    background: tuple[int, int, int] = (255, 255, 255),
    margin: float = 0.1,
) -> Image.Image:
    """The subject on a plain `background`, cropped to the mask's bounding box plus `margin` (a
    fraction of the box's width/height on each side, clipped to the image)."""
    if mask.size != image.size:
        raise FlexIPInputError(f"mask size {mask.size[0]}×{mask.size[1]} differs from image size {image.size[0]}×{image.size[1]}")
    box = subject_box(mask)
    if box is None:
        raise FlexIPInputError("mask is empty: no white (subject) pixels")
    binary = Image.fromarray(((np.asarray(mask.convert("L")) > 127) * 255).astype(np.uint8))  # mode "L"
    composed = Image.composite(image.convert("RGB"), Image.new("RGB", image.size, background), binary)
    left, top, right, bottom = box
    pad_x, pad_y = round((right - left) * margin), round((bottom - top) * margin)
    width, height = image.size
    return composed.crop((max(0, left - pad_x), max(0, top - pad_y), min(width, right + pad_x), min(height, bottom + pad_y)))


def random_resized_crop(
    image: Image.Image,
    rng: random.Random,
    scale: tuple[float, float] = (0.6, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> Image.Image:
    """Crop a random box covering a fraction in `scale` of the area, whose aspect ratio is the input's
    times a factor in `ratio` (log-uniform), and resize it back to the input size. Unlike torchvision's
    RandomResizedCrop, `ratio` is relative to the input's shape, so a tall subject crop is not squashed
    to a square. After 10 draws that do not fit, the image is returned uncropped."""
    width, height = image.size
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        fraction = rng.uniform(scale[0], scale[1])
        stretch = math.exp(rng.uniform(log_low, log_high))
        crop_w = round(width * math.sqrt(fraction * stretch))
        crop_h = round(height * math.sqrt(fraction / stretch))
        if 0 < crop_w <= width and 0 < crop_h <= height:
            left = rng.randint(0, width - crop_w)
            top = rng.randint(0, height - crop_h)
            break
    else:
        return image.copy()
    if (crop_w, crop_h) == (width, height):
        return image.copy()
    box = (left, top, left + crop_w, top + crop_h)
    return image.resize((width, height), Image.Resampling.BICUBIC, box=box)


def resize_and_crop(image: Image.Image, size: int | tuple[int, int]) -> Image.Image:
    """Resize so the image covers `size` (an int for a square, or (width, height)), keeping the aspect
    ratio, then take the central crop: the standard target preprocessing for diffusion training."""
    target_w, target_h = (size, size) if isinstance(size, int) else size
    if target_w <= 0 or target_h <= 0:
        raise FlexIPInputError(f"size must be positive, got {size}")
    width, height = image.size
    factor = max(target_w / width, target_h / height)
    new_w, new_h = max(target_w, round(width * factor)), max(target_h, round(height * factor))
    if (new_w, new_h) != (width, height):
        image = image.resize((new_w, new_h), Image.Resampling.LANCZOS if factor < 1 else Image.Resampling.BICUBIC)
    left, top = (new_w - target_w) // 2, (new_h - target_h) // 2
    return image.crop((left, top, left + target_w, top + target_h))
