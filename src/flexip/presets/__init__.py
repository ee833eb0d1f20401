"""Named, offline-ready stacks that `FlexIPPipeline.from_pretrained(NAME)` and the CLI accept as `--base`.

- ``tiny-random``: toy-size random components (exercise code paths; images are noise).
"""

from __future__ import annotations

from flexip.errors import FlexIPInputError

PRESETS = ("tiny-random",)
DEFAULT_PRESET = "tiny-random"


def is_preset(name) -> bool:
    return isinstance(name, str) and name in PRESETS


def load_preset(name: str, adapter=None, torch_dtype=None):
    if name == "tiny-random":
        from flexip.models.adapter import FlexIPAdapter
        from flexip.presets.tiny_random import tiny_pipeline

        if adapter is not None and not isinstance(adapter, FlexIPAdapter):
            adapter = FlexIPAdapter.from_pretrained(adapter)
        pipe = tiny_pipeline(adapter=adapter)
        return pipe.to(dtype=torch_dtype) if torch_dtype is not None else pipe
    raise FlexIPInputError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}")
