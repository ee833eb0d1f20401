"""The subject's reference images as the studio takes them: 1–4 uploads checked by flexip's own image reader
(image types only, limited in bytes and pixels), or one of a preset's example subjects.

`References` is what the rest of the app passes around: the checked images (8-bit RGB, centre-cropped square
exactly as `flexip generate` crops them) and a key of their pixels, under which the session caches their
encoding. `flexip.presets.photo_note` is the warning both the studio and `flexip generate` give when a photo meets a preset
that only knows its own miniature world.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from flexip.data.images import load_image
from flexip.errors import FlexIPInputError
from flexip.presets import get_preset, is_preset

MAX_REFERENCES = 4
#: What an upload may weigh and measure. The server refuses bigger files before they are stored; the pixel limit
#: is checked on the header, before any pixel is decoded (a decompression bomb is a small file).
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_UPLOAD_PIXELS = 16_000_000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
FIT = "center_crop"  # the same as `flexip generate`'s default --fit, so that the copied command renders the same image


@dataclass(frozen=True, eq=False)
class References:
    """Checked reference images of one subject, and the key of their pixels (the encoding cache's key)."""

    images: tuple[Image.Image, ...]
    label: str  # what the page calls them: file names, or the example's name
    key: str

    @classmethod
    def of(cls, images: Sequence[Image.Image], label: str) -> References:
        if not 1 <= len(images) <= MAX_REFERENCES:
            raise FlexIPInputError(f"give 1 to {MAX_REFERENCES} reference images of one subject, got {len(images)}")
        digest = hashlib.sha256()
        for image in images:
            digest.update(f"{image.size[0]}x{image.size[1]}".encode())
            digest.update(image.tobytes())
        return cls(tuple(images), label, digest.hexdigest())

    def save(self, folder: str | os.PathLike) -> tuple[Path, ...]:
        """Write the checked images under `folder/<key>/` (once: the same key holds the same pixels) and return
        their paths, the files a copied `flexip generate --reference ...` reads."""
        from flexip.data.images import save_image

        target = Path(folder) / self.key[:16]
        paths = tuple(target / f"reference-{index}.png" for index in range(len(self.images)))
        for image, path in zip(self.images, paths):
            if not path.is_file():
                save_image(image, path)
        return paths


def check_upload(path: str | os.PathLike) -> Image.Image:
    """One uploaded file → a checked RGB image; a `FlexIPInputError` that names the file and the rule otherwise."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise FlexIPInputError(f"{path.name} is not an image file; upload {', '.join(s.lstrip('.').upper() for s in IMAGE_SUFFIXES)} images")
    size = path.stat().st_size if path.is_file() else 0
    if size > MAX_UPLOAD_BYTES:
        raise FlexIPInputError(f"{path.name} is {size / 2**20:.1f} MiB; the limit is {MAX_UPLOAD_BYTES // 2**20} MiB per image")
    try:
        return load_image(path, fit=FIT, max_pixels=MAX_UPLOAD_PIXELS)
    except FlexIPInputError as error:
        # the reader names the server's temporary path; the person uploaded a file name
        raise FlexIPInputError(str(error).replace(str(path), path.name)) from None


def from_uploads(paths: Sequence[str | os.PathLike] | None) -> References:
    paths = [Path(p) for p in (paths or [])]
    if not paths:
        raise FlexIPInputError(f"upload 1 to {MAX_REFERENCES} reference images of the subject (or click an example)")
    if len(paths) > MAX_REFERENCES:
        raise FlexIPInputError(f"upload at most {MAX_REFERENCES} reference images of one subject, got {len(paths)}")
    return References.of([check_upload(p) for p in paths], ", ".join(p.name for p in paths))


def examples(base: str) -> dict[str, tuple[Image.Image, ...]]:
    """The example subjects a preset ships for its demo (the miniworld's held-out subjects); none for other bases."""
    if not is_preset(base) or not (get_preset(base).folder / "demo.json").is_file():
        return {}
    return {name: tuple(images) for name, images in get_preset(base).demo().subjects.items()}


def from_example(base: str, name: str) -> References:
    subjects = examples(base)
    if name not in subjects:
        raise FlexIPInputError(f"no example subject {name!r}; the examples are: {', '.join(subjects) or 'none'}")
    return References.of([load_image(image, fit=FIT) for image in subjects[name]], name)
