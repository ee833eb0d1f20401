"""The preset registry: named, offline-ready stacks shipped as data, `NAME → folder`.

A preset is a folder of this package holding `manifest.json` (what it is, how it was made) and the
components in their standard formats, which load through the very same code as a user's folders:

    base/           a diffusers StableDiffusionPipeline folder (unet, vae, text_encoder, tokenizer, scheduler)
    image_encoder/  CLIPVisionModelWithProjection (+ image processor)    FlexIP's c_cls
    dino/           Dinov2Model (+ image processor)                      FlexIP's F_dino
    adapter/        FlexIPAdapter.save_pretrained (optional)
    demo/, demo.json  reference images and settings for `flexip demo` (optional)

An id `NAME:SUBFOLDER` (e.g. `miniworld:image_encoder`) names a folder inside preset NAME, the way
`h94/IP-Adapter:models/image_encoder` names a subfolder of a hub repository. Shipped:
- ``miniworld``: the miniature stack trained by the project on its procedural world (32×32 images;
  see docs/miniworld.md; rebuilt by `flexip miniworld build`, from the separate flexip_miniworld package);
- ``tiny-random``: toy-size random components (exercise code paths; images are noise), written by
  `flexip.testing.save_tiny_preset`.
This module reads files only: it imports no model code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from flexip.errors import FlexIPInputError

PRESETS_ROOT = Path(__file__).parent
MANIFEST = "manifest.json"
DEFAULT_PRESET = "miniworld"


@dataclass(frozen=True)
class DemoSetup:
    subjects: dict  # name -> list of reference PIL images
    prompts: list[str]
    steps: int
    guidance: float
    note: str


@dataclass(frozen=True)
class Preset:
    name: str
    folder: Path

    @cached_property
    def manifest(self) -> dict:
        path = self.folder / MANIFEST
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise FlexIPInputError(f"the {self.name!r} preset's {MANIFEST} is damaged ({error}); reinstall flexip") from None
        if not isinstance(value, dict):
            raise FlexIPInputError(f"the {self.name!r} preset's {MANIFEST} is not a JSON object; reinstall flexip")
        return value

    def path(self, subfolder: str) -> Path:
        """A folder inside the preset; a clear error if the preset lacks it."""
        path = self.folder / subfolder
        if not path.exists():
            raise FlexIPInputError(f"preset {self.name!r} has no {subfolder!r} (it has: {', '.join(sorted(p.name for p in self.folder.iterdir()))})")
        return path

    @property
    def adapter_dir(self) -> Path | None:
        return self.folder / "adapter" if (self.folder / "adapter").is_dir() else None

    @property
    def ip_adapter_file(self) -> Path | None:
        """The IP-Adapter baseline shipped beside the preset's adapter (official layout), if any."""
        path = self.folder / "ip_adapter" / "ip-adapter-plus.safetensors"
        return path if path.is_file() else None

    @property
    def adapter_defaults(self) -> dict:
        """FlexIPAdapter settings a fresh adapter for this base takes unless told otherwise (tiny widths, ...)."""
        return dict(self.manifest.get("adapter_defaults", {}))

    def demo(self) -> DemoSetup:
        """The reference subjects and prompts `flexip demo` renders with this preset."""
        from PIL import Image

        path = self.folder / "demo.json"
        if not path.is_file():
            raise FlexIPInputError(f"preset {self.name!r} has no demo (no demo.json)")
        spec = json.loads(path.read_text(encoding="utf-8"))
        subjects = {}
        for name, files in spec["subjects"].items():
            images = []
            for file in files:
                with Image.open(self.folder / file) as image:
                    images.append(image.convert("RGB"))
            subjects[name] = images
        return DemoSetup(subjects, list(spec["prompts"]), int(spec["steps"]), float(spec["guidance"]), spec["note"])


def available_presets() -> list[str]:
    """Names of the presets installed with this package (folders holding a manifest)."""
    return sorted(path.name for path in PRESETS_ROOT.iterdir() if (path / MANIFEST).is_file())


def is_preset(name) -> bool:
    """Whether `name` is the name of an installed preset (a plain string, no path separators)."""
    return isinstance(name, str) and _plain_name(name) and (PRESETS_ROOT / name / MANIFEST).is_file()


def _plain_name(name: str) -> bool:
    return name not in ("", ".", "..") and not any(separator in name for separator in ("/", "\\", ":"))


def get_preset(name: str) -> Preset:
    """The installed preset `name`; a clear error if it is unknown or not installed (never a fallback)."""
    if not is_preset(name):
        available = ", ".join(available_presets()) or "none"
        if isinstance(name, str) and _plain_name(name) and (PRESETS_ROOT / name).is_dir():
            raise FlexIPInputError(f"preset {name!r} is not installed completely (no {MANIFEST}); reinstall flexip. Installed: {available}")
        raise FlexIPInputError(f"unknown preset {name!r}; installed: {available}")
    return Preset(name, PRESETS_ROOT / name)


def resolve_preset_id(model_id: str) -> str:
    """`NAME:SUBFOLDER` of an installed preset → that folder's path; any other id is returned unchanged."""
    name, separator, subfolder = str(model_id).partition(":")
    if separator and is_preset(name):
        return str(get_preset(name).path(subfolder))
    return str(model_id)


def photo_note(base: str, images) -> str | None:
    """A note when an image (anything with a PIL-style `.size`) larger than a miniature preset's renders meets that preset, else None.

    A preset whose manifest records a `resolution` (the miniworld: 32 px renders of a procedural world) knows
    only the subjects of that world: a photo comes out as a coloured blob. Bigger than twice the resolution
    on either side is taken as a photo; the note says what to load instead."""
    if not is_preset(base):
        return None
    resolution = get_preset(base).manifest.get("resolution")
    if not isinstance(resolution, int) or not any(max(image.size) > 2 * resolution for image in images):
        return None
    return (
        f"the {base} preset is a {resolution}×{resolution} miniature that knows only the subjects of its own world; a photo comes out "
        f"as a coloured blob. Real photos need real SD1.5 weights: --base stable-diffusion-v1-5/stable-diffusion-v1-5 --adapter YOUR_ADAPTER"
    )
