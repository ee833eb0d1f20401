"""Generation over a benchmark for evaluation, resumable, for any method with a control dial.

A *method* is anything with the small `SubjectMethod` interface: encode a subject's reference once,
then generate one image per control value for a prompt and a seed, all from the same initial noise.
FlexIP (control "gamma", this module) and the IP-Adapter baseline (control "scale",
`flexip.evaluation.baselines`) both fit it, so both sweeps are generated and scored by the same code.

Output layout (the layout `flexip eval score` reads)::

    <out>/images/run.json                                            # this run's settings
    <out>/images/<control>-<value>/<subject>/<prompt index>/<seed>.png
    <out>/results/<method>_<control>-<value>.json                    # scores (see results.py)
    <out>/ranking.md, <out>/ranking.csv

Image k of every prompt uses seed `seed + k` (the same seeds for every subject, prompt and control
value), so a sweep compares images made from the same noise. An image already on disk is skipped,
so an interrupted run continues where it stopped; images are written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from PIL import Image
from tqdm.auto import tqdm

from flexip.atomic import write_text
from flexip.data.images import load_image
from flexip.errors import FlexIPInputError
from flexip.evaluation.backbones import Backbones
from flexip.evaluation.dreambench import DreamBench
from flexip.evaluation.results import atomic_save_image, result_filename, save_result
from flexip.evaluation.scoring import RUN_FILE, ScoreConfig, Setting, collect_images, control_folder, score_setting
from flexip.version import __version__

IMAGES_FOLDER = "images"
RESULTS_FOLDER = "results"


@dataclass(frozen=True)
class GenerationSettings:
    num_inference_steps: int = 30
    guidance_scale: float = 7.5
    negative_prompt: str | None = None
    height: int | None = None  # None: the base model's default (512 for SD1.5)
    width: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.num_inference_steps, int) or self.num_inference_steps < 1:
            raise FlexIPInputError(f"num_inference_steps must be a positive integer, got {self.num_inference_steps!r}")
        if self.guidance_scale < 0:
            raise FlexIPInputError(f"guidance_scale must be ≥ 0, got {self.guidance_scale}")
        for name in ("height", "width"):
            value = getattr(self, name)
            if value is not None and (value < 8 or value % 8):
                raise FlexIPInputError(f"{name} must be a multiple of 8, got {value}")


@dataclass(frozen=True)
class RunConfig:
    """What to generate. `values` are the control values (γ for FlexIP, scale for IP-Adapter)."""

    values: tuple[float, ...]
    images_per_prompt: int = 4
    seed: int = 0
    #: Which photo of each subject (sorted file order) is the single reference given to the method.
    reference_index: int = 0
    subjects: tuple[str, ...] | None = None  # None: all benchmark subjects
    prompts_per_subject: int | None = None  # None: all 25; fewer = the first K (quick runs)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    image_format: str = "png"

    def __post_init__(self) -> None:
        values = tuple(float(value) for value in self.values)
        if not values or len(set(values)) != len(values):
            raise FlexIPInputError(f"control values must be a non-empty list of distinct numbers, got {list(self.values)}")
        object.__setattr__(self, "values", tuple(sorted(values)))
        if not isinstance(self.images_per_prompt, int) or self.images_per_prompt < 1:
            raise FlexIPInputError(f"images_per_prompt must be a positive integer, got {self.images_per_prompt!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise FlexIPInputError(f"seed must be an integer ≥ 0, got {self.seed!r}")
        if not isinstance(self.reference_index, int) or self.reference_index < 0:
            raise FlexIPInputError(f"reference_index must be an integer ≥ 0, got {self.reference_index!r}")
        if self.prompts_per_subject is not None and self.prompts_per_subject < 1:
            raise FlexIPInputError(f"prompts_per_subject must be ≥ 1, got {self.prompts_per_subject}")
        if self.image_format not in ("png", "jpg"):
            raise FlexIPInputError(f"image_format must be 'png' or 'jpg', got {self.image_format!r}")
        if self.subjects is not None:
            object.__setattr__(self, "subjects", tuple(self.subjects))

    @property
    def seeds(self) -> list[int]:
        return [self.seed + k for k in range(self.images_per_prompt)]


class SubjectMethod(Protocol):
    """What the runner needs from a method under evaluation."""

    name: str  # e.g. "FlexIP"
    control: str  # the dial being swept, e.g. "gamma"

    def encode_reference(self, images: list[Image.Image]) -> Any: ...

    def generate(self, prompt: str, reference: Any, values: Sequence[float], seed: int, settings: GenerationSettings) -> list[Image.Image]:
        """One image per control value, in order, all from the noise of `seed`."""
        ...

    def describe(self) -> dict: ...


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU generator: the same seed gives the same initial noise on any device."""
    return torch.Generator("cpu").manual_seed(seed)


class FlexIPMethod:
    """FlexIP under evaluation: the γ sweep is one batched pipeline call per prompt and seed, from one noise."""

    name = "FlexIP"
    control = "gamma"

    def __init__(self, pipe, description: dict | None = None):
        self.pipe = pipe
        self.description = description or {"pipeline": type(pipe).__name__}

    @classmethod
    def from_pretrained(cls, base_model: str, adapter: str | None, device: str | None = None, dtype: str | None = None) -> FlexIPMethod:
        """`FlexIPPipeline.from_pretrained(base_model, adapter=...)` on `device` (default: the best available)."""
        from flexip import FlexIPPipeline
        from flexip.devices import resolve_device

        device = resolve_device(device)
        torch_dtype = pipeline_dtype(dtype, device)
        pipe = FlexIPPipeline.from_pretrained(base_model, adapter=adapter, torch_dtype=torch_dtype).to(device)
        pipe.set_progress_bar_config(disable=True)
        return cls(pipe, {"base_model": base_model, "adapter": adapter, "device": str(device), "dtype": str(torch_dtype)})

    def encode_reference(self, images: list[Image.Image]):
        return self.pipe.encode_reference(images)

    def generate(self, prompt, reference, values, seed, settings: GenerationSettings) -> list[Image.Image]:
        values = [float(value) for value in values]
        output = self.pipe(
            prompt=prompt,
            reference_embeds=reference,
            gamma=values,  # one batched pass over the sweep, ordered per gamma
            negative_prompt=settings.negative_prompt,
            num_inference_steps=settings.num_inference_steps,
            guidance_scale=settings.guidance_scale,
            # the pipeline draws one noise per prompt and shares it across the sweep: every γ starts alike
            generator=seeded_generator(seed),
            num_images_per_prompt=1,
            output_type="pil",
            **size_arguments(settings),
        )
        if len(output.images) != len(values):
            raise RuntimeError(f"FlexIP returned {len(output.images)} images for {len(values)} gamma values")
        return list(output.images)

    def describe(self) -> dict:
        return dict(self.description)


def size_arguments(settings: GenerationSettings) -> dict:
    return {name: getattr(settings, name) for name in ("height", "width") if getattr(settings, name) is not None}


def pipeline_dtype(dtype: str | None, device: torch.device) -> torch.dtype:
    if dtype is None:
        return torch.float16 if device.type == "cuda" else torch.float32
    choices = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if dtype not in choices:
        raise FlexIPInputError(f"dtype must be one of {sorted(choices)}, got {dtype!r}")
    return choices[dtype]


@dataclass
class GenerationSummary:
    generated: int = 0
    skipped: int = 0
    images_root: Path | None = None


def image_path(images_root: Path, control: str, value: float, subject: str, prompt_index: int, seed: int, suffix: str) -> Path:
    return images_root / control_folder(control, value) / subject / f"{prompt_index:02d}" / f"{seed}.{suffix}"


#: Settings a resumed run must share with the run already in the folder (values and seeds may grow).
_FIXED_KEYS = ("method", "control", "reference_index", "generation", "image_format", "method_config")


def _run_record(method: SubjectMethod, bench: DreamBench, config: RunConfig) -> dict:
    return {
        "method": method.name,
        "control": method.control,
        "values": list(config.values),
        "seeds": config.seeds,
        "images_per_prompt": config.images_per_prompt,
        "reference_index": config.reference_index,
        "subjects": list(config.subjects) if config.subjects else None,
        "prompts_per_subject": config.prompts_per_subject,
        "generation": asdict(config.generation),
        "image_format": config.image_format,
        "method_config": method.describe(),
        "benchmark": str(bench.root),
        "prompt_form": "class noun (zero-shot), e.g. 'a dog in the snow'",
        "flexip_version": __version__,
    }


def _merge_run_record(path: Path, record: dict) -> dict:
    """Resume only a run with the same settings; the control values and seeds of both runs are kept."""
    if not path.is_file():
        return record
    previous = json.loads(path.read_text(encoding="utf-8"))

    def fixed(run: dict, key: str):
        value = run.get(key)
        if key == "method_config" and isinstance(value, dict):  # the same model may resume on another device
            value = {name: item for name, item in value.items() if name != "device"}
        return value

    different = [key for key in _FIXED_KEYS if fixed(previous, key) != fixed(record, key)]
    if different:
        raise FlexIPInputError(
            f"{path.parent} holds a run with different {', '.join(different)}; resume it with the same settings or choose a new output folder"
        )
    record["values"] = sorted(set(previous.get("values", [])) | set(record["values"]))
    record["seeds"] = sorted(set(previous.get("seeds", [])) | set(record["seeds"]))
    return record


def generate_benchmark(method: SubjectMethod, bench: DreamBench, out_dir: str | Path, config: RunConfig, progress: bool = True) -> GenerationSummary:
    """Generate every missing image of the run into `<out_dir>/images/` (see the module docstring)."""
    subjects = bench.select(config.subjects).subjects
    for subject in subjects:
        subject.reference(config.reference_index)  # fail early on a bad index
    images_root = Path(out_dir) / IMAGES_FOLDER
    images_root.mkdir(parents=True, exist_ok=True)
    run_path = images_root / RUN_FILE
    record = _merge_run_record(run_path, _run_record(method, bench, config))
    write_text(run_path, json.dumps(record, indent=1) + "\n")

    tasks = []  # (subject, prompt index, prompt, seed, missing values)
    for subject in subjects:
        prompts = subject.prompts()[: config.prompts_per_subject]
        for index, prompt in enumerate(prompts):
            for seed in config.seeds:
                missing = [
                    value
                    for value in config.values
                    if not image_path(images_root, method.control, value, subject.name, index, seed, config.image_format).is_file()
                ]
                tasks.append((subject, index, prompt, seed, missing))

    summary = GenerationSummary(images_root=images_root)
    summary.skipped = sum(len(config.values) - len(missing) for *_, missing in tasks)
    references: dict[str, Any] = {}
    todo = [task for task in tasks if task[-1]]
    for subject, index, prompt, seed, missing in tqdm(todo, desc=f"generating {method.name}", unit="prompt×seed", disable=not progress):
        if subject.name not in references:
            references[subject.name] = method.encode_reference([load_image(subject.reference(config.reference_index))])
        with torch.inference_mode():  # images only, never a graph: no autograd bookkeeping (the same pixels as no_grad)
            images = method.generate(prompt, references[subject.name], missing, seed, config.generation)
        if len(images) != len(missing):
            raise RuntimeError(f"{method.name} returned {len(images)} images for {len(missing)} control values")
        for value, image in zip(missing, images):
            atomic_save_image(image, image_path(images_root, method.control, value, subject.name, index, seed, config.image_format))
        summary.generated += len(images)
    return summary


def score_run(
    out_dir: str | Path,
    bench: DreamBench,
    backbones: Backbones,
    score_config: ScoreConfig,
    method: str,
    control: str,
    values: Sequence[float],
) -> list[Path]:
    """Score the images of `values` under `<out_dir>/images/` and save one result file per value."""
    images_root = Path(out_dir) / IMAGES_FOLDER
    written = []
    for value in sorted(values):
        folder = images_root / control_folder(control, value)
        setting = Setting(folder, {"name": control, "value": float(value)}, collect_images(folder, bench))
        result = score_setting(setting, bench, backbones, score_config, method)
        written.append(save_result(result, Path(out_dir) / RESULTS_FOLDER / result_filename(method, result.control)))
    return written
