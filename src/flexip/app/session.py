"""The studio's model session: one loaded `FlexIPPipeline`, its references encoded once per reference change and
cached, and one generation at a time (a lock, besides the server's queue).

Every render goes through the public API only: `pipe.encode_reference` once per set of references, then
`pipe(prompt, reference_embeds=..., gamma=... | w_pres/w_pers, adapter_scale=..., generator=...)` with the CPU
generator `flexip generate` uses, so the copied command line renders the same pixels.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image

from flexip.app.references import References
from flexip.app.settings import Dial, RenderSettings

#: How many subjects' encodings stay cached (an upload, an example, back to the upload: no re-encoding).
CACHE_SUBJECTS = 8
SWEEP_GAMMAS = (0.0, 0.25, 0.5, 0.75, 1.0)
SURFACE_SCALES = (0.0, 0.5, 1.0, 1.5)


@dataclass(frozen=True)
class Defaults:
    """What the page starts with: the preset's own demo settings, else SD1.5's usual ones."""

    prompt: str = "a photo of the subject in the snow"
    steps: int = 30
    guidance: float = 7.5


@dataclass(frozen=True)
class Rendered:
    images: tuple[Image.Image, ...]  # each carries its settings in `info` (PNG text chunks when saved as PNG)
    captions: tuple[str, ...]
    command: str  # the `flexip generate` call that renders the same
    seconds: float  # the pipeline call alone
    cached: bool  # the references' encoding came from the cache


class Session:
    def __init__(self, pipe, base: str, adapter: str | None, out_dir: str | os.PathLike, defaults: Defaults = Defaults()):
        self.pipe = pipe
        self.base = base
        self.adapter = adapter
        self.out_dir = Path(out_dir)
        self.defaults = defaults
        self.encodings = 0  # how many times references were encoded (each miss of the cache)
        self._cache: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls, base: str | None = None, adapter: str | None = None, device: str = "auto", out_dir: str | os.PathLike = "outputs/studio"
    ) -> Session:
        from flexip.devices import resolve_device
        from flexip.pipelines import FlexIPPipeline
        from flexip.presets import DEFAULT_PRESET, get_preset, is_preset

        base = base or DEFAULT_PRESET
        pipe = FlexIPPipeline.from_pretrained(base, adapter=adapter).to(resolve_device(device))
        defaults = Defaults()
        if is_preset(base) and (get_preset(base).folder / "demo.json").is_file():
            demo = get_preset(base).demo()
            defaults = Defaults(demo.prompts[0], demo.steps, demo.guidance)
        return cls(pipe, base, adapter, out_dir, defaults)

    @property
    def description(self) -> str:
        """One line for the page: model, adapter, device."""
        adapter = f"adapter {self.adapter}" if self.adapter else "its own adapter"
        return f"{self.base}, {adapter}, on {self.pipe.device}"

    # ---- references -------------------------------------------------------------------------------
    def embeds(self, references: References) -> tuple[object, bool]:
        """The references' `ReferenceEmbeds` and whether they came from the cache (encoded once per subject)."""
        with self._lock:
            return self._embeds(references)

    def _embeds(self, references: References):
        if references.key in self._cache:
            self._cache.move_to_end(references.key)
            return self._cache[references.key], True
        embeds = self.pipe.encode_reference(list(references.images))
        self.encodings += 1
        self._cache[references.key] = embeds
        while len(self._cache) > CACHE_SUBJECTS:
            self._cache.popitem(last=False)
        return embeds, False

    def reference_files(self, references: References) -> list[str]:
        """The checked references written once under the outputs (what the copied command reads), as short paths."""
        paths = references.save(self.out_dir / "references")
        return [_short(path) for path in paths]

    # ---- renders ----------------------------------------------------------------------------------
    def render(self, references: References, settings: RenderSettings) -> Rendered:
        """One image at these settings."""
        return self._call(references, settings, captions=lambda images: (f"γ {settings.dial.text}",))

    def sweep(self, references: References, settings: RenderSettings, gammas: Sequence[float] = SWEEP_GAMMAS) -> Rendered:
        """γ over `gammas` in one batched call, every image from the same noise."""
        swept = replace(settings, dial=Dial.sweep(gammas))
        return self._call(references, swept, captions=lambda images: tuple(f"γ = {g:g}" for g in gammas))

    def surface(
        self,
        references: References,
        settings: RenderSettings,
        gammas: Sequence[float] = SWEEP_GAMMAS,
        scales: Sequence[float] = SURFACE_SCALES,
    ) -> Rendered:
        """The control surface: rows of adapter scale, columns of γ (one batched call per row, one noise), as one grid."""
        from flexip.visualization import make_grid

        rows, commands, seconds, cached = [], [], 0.0, True
        for scale in scales:
            row = self.sweep(references, replace(settings, adapter_scale=scale), gammas)
            rows.append(list(row.images))
            commands.append(row.command)
            seconds += row.seconds
            cached = cached and row.cached
        grid = make_grid(rows, [f"gamma = {g:g}" for g in gammas], [f"scale = {s:g}" for s in scales])
        text = dict(rows[0][0].info)
        text.update(gamma=",".join(f"{g:g}" for g in gammas), adapter_scale=",".join(f"{s:g}" for s in scales), command="\n".join(commands))
        grid.info.update(text)
        return Rendered((grid,), ("rows: adapter scale, columns: γ",), "\n".join(commands), seconds, cached)

    def _call(self, references: References, settings: RenderSettings, captions) -> Rendered:
        import torch

        files = self.reference_files(references)
        command = settings.command(files, self.base, self.adapter)
        # one generation at a time on this model; inference mode skips autograd's bookkeeping (version counters,
        # view tracking) that no_grad keeps: the same pixels, less time per UNet call (benchmarks/studio_latency.py)
        with self._lock, torch.inference_mode():
            embeds, cached = self._embeds(references)
            start = time.perf_counter()
            result = self.pipe(
                settings.prompt,
                reference_embeds=embeds,
                generator=torch.Generator(device="cpu").manual_seed(settings.seed),  # as `flexip generate` seeds
                **settings.pipeline_arguments(),
            )
            seconds = time.perf_counter() - start
        text = settings.png_text(command, self.base, self.adapter)
        images = tuple(result.images)
        for image, gamma in zip(images, result.gammas):
            image.info.update(text)
            if gamma is not None and settings.dial.mode == "sweep":
                image.info["gamma"] = f"{gamma:g}"
        return Rendered(images, captions(images), command, seconds, cached)


def _short(path: Path) -> str:
    """A path relative to the working folder when it lies inside it (shorter commands), else absolute."""
    path = path.resolve()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
