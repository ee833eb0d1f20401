"""The Compare tab's baseline: IP-Adapter (diffusers' `load_ip_adapter` / `set_ip_adapter_scale`) on the same base
model as FlexIP, its one dial (the scale) swept beside FlexIP's γ on the same reference, prompt, settings and
noise. The evaluation's `IPAdapterMethod` runs it, exactly as `flexip eval run --method ip-adapter` does.

Without `--ip-adapter` the tab uses the baseline a preset ships beside its adapter (`ip_adapter/`, trained by
`flexip train model.method=ip-adapter`; the image encoder named in its config), else it says what to load.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from flexip.app.references import References
from flexip.app.session import SWEEP_GAMMAS, Rendered
from flexip.app.settings import RenderSettings
from flexip.errors import FlexIPInputError

MISSING = (
    "No IP-Adapter baseline is loaded. Start the studio with `flexip studio --ip-adapter PATH/ip-adapter_sd15.safetensors`: "
    "an IP-Adapter checkpoint in diffusers' format for the same base model, with its CLIP image encoder in "
    "`PATH/image_encoder/` (for SD1.5: the `models/` folder of `h94/IP-Adapter`). The miniworld preset ships one (ip_adapter/)."
)


def base_folder(base: str) -> str:
    """The diffusers StableDiffusionPipeline folder of a FlexIP base (a preset's `base/` subfolder, else the id itself)."""
    from flexip.presets import get_preset, is_preset

    return str(get_preset(base).path("base")) if is_preset(base) else base


class Baseline:
    """IP-Adapter on FlexIP's base model; `sweep` renders its scale sweep, one call per scale, from one seed."""

    def __init__(self, method, path: str):
        self.method = method
        self.path = path
        self._lock = threading.Lock()

    @classmethod
    def load(cls, base: str, path: str | os.PathLike, device: str = "auto") -> Baseline:
        import json

        from flexip.evaluation.baselines import IPAdapterMethod
        from flexip.models.ip_adapter_plus import CONFIG_NAME

        weights = Path(path)
        if not weights.is_file():
            raise FlexIPInputError(
                f"IP-Adapter weights not found: {weights} (expected a local .safetensors or .bin file; its image encoder in image_encoder/ beside it)"
            )
        config = weights.parent / CONFIG_NAME  # written beside the weights by `flexip train model.method=ip-adapter`
        encoder = json.loads(config.read_text()).get("image_encoder") if config.is_file() else None
        method = IPAdapterMethod.from_pretrained(
            base_folder(base), ip_adapter=str(weights.parent), subfolder="", weight_name=weights.name, device=device, image_encoder=encoder
        )
        return cls(method, str(weights))

    def sweep(self, references: References, settings: RenderSettings, scales: Sequence[float] = SWEEP_GAMMAS) -> Rendered:
        import torch

        from flexip.evaluation.runner import GenerationSettings

        generation = GenerationSettings(settings.steps, settings.guidance, settings.negative_prompt or None)
        with self._lock, torch.inference_mode():  # as the studio's own renders (session.py)
            start = time.perf_counter()
            images = self.method.generate(
                settings.prompt, self.method.encode_reference(list(references.images)), list(scales), settings.seed, generation
            )
            seconds = time.perf_counter() - start
        return Rendered(tuple(images), tuple(f"scale = {s:g}" for s in scales), "", seconds, False)
