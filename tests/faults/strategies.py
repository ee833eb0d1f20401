"""Hypothesis strategies for the fault suite: inputs of every kind, valid ones among them, so that a property
test exercises the success path as well as every way to fail."""

from __future__ import annotations

import io
import math

import numpy as np
from hypothesis import strategies as st
from PIL import Image

# ---- γ text ----------------------------------------------------------------------------------------------

GAMMA_PIECES = [*"0123456789.,:=- eE+_", "down", "mid", "up", "default", "up_blocks.1", "nan", "inf", "1e400", "ü", "١", "\n", "\t", "\u2028"]
unit = st.floats(0, 1).map(lambda value: f"{value:.3g}")
valid_gamma_text = st.one_of(
    unit,
    st.lists(unit, min_size=2, max_size=4).map(",".join),
    st.tuples(unit, unit).map(":".join),
    st.dictionaries(st.sampled_from(["down", "mid", "up", "default"]), unit | st.tuples(unit, unit).map(":".join), min_size=1).map(
        lambda blocks: ",".join(f"{key}={value}" for key, value in blocks.items())
    ),
)
gamma_text = st.one_of(valid_gamma_text, st.lists(st.sampled_from(GAMMA_PIECES), max_size=14).map("".join), st.text(max_size=12))


# ---- images and arrays -------------------------------------------------------------------------------

MODES = ["1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "I", "I;16", "I;16B", "F"]
FORMATS = ["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "ICO", "PPM", "TGA", "PCX", "SGI", "IM", "QOI", "JPEG2000"]
FITS = ["center_crop", "pad", "none"]


@st.composite
def pil_images(draw, min_side: int = 0, max_side: int = 24, modes: tuple[str, ...] = tuple(MODES)):
    """A PIL image of any mode and size (0 … max_side), its pixels random bytes (NaN and ±inf in mode F)."""
    mode = draw(st.sampled_from(modes))
    image = Image.new(mode, (draw(st.integers(min_side, max_side)), draw(st.integers(min_side, max_side))))
    size = len(image.tobytes())
    if size:
        image.frombytes(draw(st.binary(min_size=size, max_size=size)))
    if mode == "P" and draw(st.booleans()):
        image.info["transparency"] = draw(st.integers(0, 255))
    return image


@st.composite
def damaged_files(draw):
    """An image encoded in some format (a JPEG sometimes with an EXIF orientation), then bytes overwritten and/or cut."""
    image = draw(pil_images(min_side=1, modes=tuple(m for m in MODES if m != "La")))  # no format stores La
    form = draw(st.sampled_from(FORMATS))
    buffer = io.BytesIO()
    exif = Image.Exif()
    if form == "JPEG" and draw(st.booleans()):
        exif[0x0112] = draw(st.integers(0, 9))  # an orientation, including values that do not exist
    try:
        image.save(buffer, form, **({"exif": exif} if len(exif) else {}))
    except (OSError, ValueError, KeyError, TypeError):  # this mode is not writable in this format
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    for _ in range(draw(st.integers(0, 4))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


dtypes = st.sampled_from([np.uint8, np.uint16, np.int8, np.int32, np.float16, np.float32, np.float64, np.bool_, np.complex64])


@st.composite
def arrays(draw):
    """An array of any shape (0–4 dimensions of 0–6) and dtype, filled with random bytes (or floats in [0, 1])."""
    shape = tuple(draw(st.lists(st.integers(0, 6), max_size=4)))
    dtype = np.dtype(draw(dtypes))
    size = int(np.prod(shape)) * dtype.itemsize
    raw = draw(st.binary(min_size=size, max_size=size))
    array = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    if dtype.kind == "f" and draw(st.booleans()):  # also plausible float images in [0, 1]
        # casting a signalling NaN (random float32 bytes can be one) warns "invalid value": the test's own data, not
        # the code under test, so the whole conversion runs with the warnings off
        with np.errstate(all="ignore"):
            finite = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
            array = (np.abs(finite) % 1.0).astype(dtype)
    return array


# ---- manifests ------------------------------------------------------------------------------------------

MANIFEST_PIECES = [
    *'{}[]:,"\n \\',
    '"modality"',
    '"image"',
    '"video"',
    '"views"',
    '"captions"',
    '"caption"',
    '"mask"',
    '"a.png"',
    '"clip.mp4"',
    '{"start": 0, "end": 3, "caption": "x"}',
    "NaN",
    "-Infinity",
    "1e999",
    "null",
    "true",
    "3",
    "9" * 5000,  # longer than Python's int-conversion limit
    "[" * 400,  # nesting deeper than json's recursion limit, when drawn a few times
    '"\\ud800"',
    '{"modality": "image", "image": "a.png", "caption": "x"}',
    '{"modality": "video", "views": ["a.png", "b.png"], "captions": ["x", "y"]}',
]
manifest_bytes = st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from(MANIFEST_PIECES), max_size=20).map(lambda pieces: "".join(pieces).encode("utf-8", "surrogatepass")),
)


# ---- the pipeline's arguments -----------------------------------------------------------------------------

any_number = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-3, 3),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
)
WILD = {
    "gamma": st.one_of(
        any_number,
        st.lists(st.floats(-0.5, 1.5) | st.just(math.nan), max_size=3),
        st.dictionaries(st.sampled_from(["down", "mid", "up", "default", "up_blocks.1", "x"]), st.floats(-0.5, 1.5), max_size=3),
    ),
    "adapter_scale": any_number,
    "w_pres": any_number,
    "w_pers": any_number,
    "guidance_scale": any_number,
    "num_inference_steps": st.integers(-2, 0),  # other ints and non-ints: test_pipeline_arguments_refused_outside_this_layer
    "num_images_per_prompt": st.integers(-2, 0),
    "negative_prompt": st.none() | st.text(max_size=5) | st.lists(st.text(max_size=3), max_size=3),
    "prompt": st.text(max_size=8) | st.lists(st.text(max_size=5), max_size=3),
}


@st.composite
def pipeline_arguments(draw):
    """Sane arguments (γ number or sweep, or both branch weights; guidance on or off; 1–2 steps), then up to
    two of them replaced by anything at all."""
    arguments = {
        "prompt": "a blob",
        "adapter_scale": draw(st.floats(0, 2)),
        "guidance_scale": draw(st.sampled_from([0.0, 1.0, 3.5])),
        "num_inference_steps": draw(st.integers(1, 2)),
        "num_images_per_prompt": draw(st.integers(1, 2)),
    }
    if draw(st.booleans()):
        arguments["gamma"] = draw(st.floats(0, 1) | st.lists(st.floats(0, 1), min_size=1, max_size=3))
    else:
        arguments["w_pres"], arguments["w_pers"] = draw(st.floats(0, 2)), draw(st.floats(0, 2))
    for name in draw(st.sets(st.sampled_from(sorted(WILD)), max_size=2)):
        arguments[name] = draw(WILD[name])
    return arguments
