"""Reading user images safely and normalizing them to 8-bit RGB.

Every image that enters FlexIP (references, training targets, images to score) goes through
`load_image`, so that odd files fail with a clear message and every mode ends up as the same
thing an image processor expects: a PIL RGB image with uint8 pixels, upright per its EXIF tag.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from flexip.errors import FlexIPInputError

ImageInput = str | os.PathLike | bytes | Image.Image | np.ndarray

#: Largest image (width × height) accepted by default: 64 megapixels. A decompression bomb declares a
#: huge canvas in a tiny file; the check reads only the header, before any pixel is decoded.
DEFAULT_MAX_PIXELS = 64_000_000

FitMode = Literal["center_crop", "pad", "none"]


def _describe(source: ImageInput) -> str:
    """How `source` is named in a (one-line) error message: a path as it is, or quoted with escapes when it
    holds control characters such as a newline."""
    if isinstance(source, (str, os.PathLike)):
        name = str(source)
        return name if name.isprintable() else repr(name)
    return f"<{type(source).__name__}>"


def _open(source: ImageInput, max_pixels: int) -> Image.Image:
    """Open without decoding pixels, enforce the size limit, then decode."""
    name = _describe(source)
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, np.ndarray):
        image = _from_array(source, name)  # then the same size checks as a file
    else:
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            try:
                if not path.is_file():
                    raise FlexIPInputError(f"image not found: {name}")
                data = path.read_bytes()
            except OSError as error:  # a name too long, no permission, a folder where the file should be
                raise FlexIPInputError(f"cannot read image {name}: {error.strerror or error}") from None
            if not data:
                raise FlexIPInputError(f"image file is empty (0 bytes): {name}")
        elif isinstance(source, bytes):
            if not source:
                raise FlexIPInputError("image data is empty (0 bytes)")
            data = source
        else:
            raise FlexIPInputError(f"expected an image path, bytes, PIL image or numpy array, got {type(source).__name__}")
        try:
            with warnings.catch_warnings():
                # Pillow's own bomb check warns or raises at its global limit; ours below is explicit.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(io.BytesIO(data))
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as error:
            raise FlexIPInputError(f"not a readable image file: {name} ({error})") from None
    width, height = image.size
    if width * height > max_pixels:
        raise FlexIPInputError(
            f"image is too large: {name} is {width}×{height} = {width * height:,} pixels, the limit is "
            f"{max_pixels:,} (possible decompression bomb; raise max_pixels if the file is trusted)"
        )
    if width == 0 or height == 0:
        raise FlexIPInputError(f"image has no pixels: {name} is {width}×{height}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise FlexIPInputError(f"image file is corrupt or truncated: {name} ({error})") from None
    return image


def _from_array(array: np.ndarray, name: str) -> Image.Image:
    """uint8 HxW / HxWx{1,3,4} arrays, or float arrays in [0, 1] (converted, never re-scaled twice)."""
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise FlexIPInputError(f"expected an array of shape HxW, HxWx3 or HxWx4, got {array.shape} ({name})")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise FlexIPInputError(f"image has no pixels: the array is {array.shape[1]}×{array.shape[0]} ({name})")
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise FlexIPInputError("a float image array must hold finite values in [0, 1]")
        array = np.round(array * 255).astype(np.uint8)
    elif array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise FlexIPInputError(f"unsupported image array dtype {array.dtype}; expected uint8, uint16 or float")
    return Image.fromarray(np.ascontiguousarray(array))


def to_rgb(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Any Pillow mode → 8-bit RGB. Transparency is composited over `background`; 16/32-bit and
    float grayscale are rescaled from their actual range; CMYK and palette images are converted."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image)
        if not np.isfinite(values).all():  # only mode F can hold them
            raise FlexIPInputError("a float image must hold finite values (it has NaN or infinite pixels)")
        values = values.astype(np.float64)
        if mode.startswith("I;16"):
            scaled = values / 65535.0
        else:
            low, high = float(values.min()), float(values.max())
            scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
        gray = np.round(np.clip(scaled, 0, 1) * 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = (image.convert("LA") if mode == "La" else image).convert("RGBA")  # Pillow converts La (premultiplied) only to LA
        canvas = Image.new("RGBA", rgba.size, background + (255,))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")


def fit_square(image: Image.Image, mode: FitMode = "center_crop", fill: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Make a non-square image square.

    - ``center_crop`` (default): keep the central square. The subject is usually centred, and the
      encoders' own preprocessing (resize shortest side, centre crop) would crop the same way.
    - ``pad``: keep the whole picture and pad the short side with `fill`; use it when the subject
      touches the border of a wide or tall image.
    - ``none``: leave it; the encoders' processors centre-crop.
    """
    if mode not in ("center_crop", "pad", "none"):
        raise FlexIPInputError(f"fit mode must be 'center_crop', 'pad' or 'none', got {mode!r}")
    width, height = image.size
    if mode == "none" or width == height:
        return image
    if mode == "center_crop":
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        return image.crop((left, top, left + side, top + side))
    side = max(width, height)  # pad
    canvas = Image.new("RGB", (side, side), fill)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


def load_image(
    source: ImageInput,
    fit: FitMode = "none",
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Image.Image:
    """Read a path / bytes / PIL image / array into an upright 8-bit RGB PIL image.

    Raises `FlexIPInputError` for missing, empty, non-image, corrupt or oversize inputs.
    """
    image = _open(source, max_pixels)
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # a malformed EXIF block must not lose an otherwise readable image
        pass
    return fit_square(to_rgb(image), fit)


def save_image(image: Image.Image, path: str | os.PathLike) -> Path:
    """Write an image atomically (temporary file in the same folder, then rename): no half-written PNGs."""
    from flexip.atomic import atomic_path

    with atomic_path(path) as temporary:
        image.save(temporary)
    return Path(path)
