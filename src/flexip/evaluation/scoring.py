"""Score generated images of any method, laid out in folders, against DreamBench.

Folder layout (documented in docs/evaluation.md; `flexip eval run` writes the same)::

    <images>/<subject>/<prompt index>/<any name>.png     # one setting of one method
    <images>/<control>-<value>/<subject>/<prompt index>/…  # a sweep: one folder per control value
                                                           # (e.g. gamma-0.25, scale-0.6)

`<subject>` is a DreamBench subject folder name, `<prompt index>` the 0-based position of the prompt in
that subject's list (object or live), e.g. `00` … `24`; each image in it is scored against the prompt's
class-noun form. A file stem that is an integer is recorded as the image's seed. A `run.json` written by
`flexip eval run` next to the images is copied into the result's config.

Per image: CLIP-T against its prompt; CLIP-I and DINO-I against the subject's reference photos (all of
them, the DreamBench convention, or only the one given to the method with `compare_to="reference"`);
CLIP-IQA; Aesthetic. Per subject, live / object and overall numbers are means over images.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from flexip.data.images import load_image
from flexip.errors import FlexIPInputError
from flexip.evaluation import metrics as M
from flexip.evaluation.backbones import Backbones
from flexip.evaluation.dreambench import IMAGE_SUFFIXES, DreamBench, fill_template
from flexip.evaluation.results import EvaluationResult

RUN_FILE = "run.json"
_CONTROL_FOLDER = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9_]*)-(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)$")


@dataclass(frozen=True)
class ScoreConfig:
    """How images are scored (recorded with every result)."""

    metrics: tuple[str, ...] = M.METRICS
    #: "all": CLIP-I / DINO-I against all of the subject's photos (DreamBench); "reference": only the one used.
    compare_to: str = "all"
    #: Which photo of each subject (sorted file order) was the reference; used when compare_to="reference".
    reference_index: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", M.validate_metrics(self.metrics))
        if self.compare_to not in ("all", "reference"):
            raise FlexIPInputError(f"compare_to must be 'all' or 'reference', got {self.compare_to!r}")
        if not isinstance(self.reference_index, int) or self.reference_index < 0:
            raise FlexIPInputError(f"reference_index must be an integer ≥ 0, got {self.reference_index!r}")


@dataclass(frozen=True)
class ImageItem:
    subject: str
    prompt_index: int
    prompt: str
    path: Path
    seed: int | None = None


@dataclass
class Setting:
    """One folder of images to score: a method at one control value (or its only setting)."""

    folder: Path
    control: dict | None = None
    items: list[ImageItem] = field(default_factory=list)


def control_folder(name: str, value: float) -> str:
    """'gamma', 0.25 → 'gamma-0.25' (the sweep folder naming of the layout)."""
    return f"{name}-{value:g}"


def parse_control_folder(name: str) -> dict | None:
    match = _CONTROL_FOLDER.match(name)
    if not match:
        return None
    return {"name": match.group("name"), "value": float(match.group("value"))}


def collect_images(folder: str | Path, bench: DreamBench) -> list[ImageItem]:
    """The images of one setting: `<folder>/<subject>/<prompt index>/*.png|jpg|…`, checked against `bench`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FlexIPInputError(f"images folder not found: {folder}")
    items: list[ImageItem] = []
    known = {subject.name for subject in bench.subjects}
    for subject_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if subject_dir.name not in known:
            raise FlexIPInputError(
                f"{subject_dir} is not a benchmark subject; expected <images>/<subject>/<prompt index>/<image> "
                f"with a subject among: {', '.join(sorted(known))}"
            )
        subject = bench.subject(subject_dir.name)
        for prompt_dir in sorted(p for p in subject_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if not prompt_dir.name.isdigit() or int(prompt_dir.name) >= len(subject.templates):
                raise FlexIPInputError(
                    f"{prompt_dir}: expected a prompt index folder 0…{len(subject.templates) - 1} (the prompt's position in the subject's list)"
                )
            index = int(prompt_dir.name)
            prompt = fill_template(subject.templates[index], subject.class_noun)
            for image_path in sorted(p for p in prompt_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
                seed = int(image_path.stem) if image_path.stem.isdigit() else None
                items.append(ImageItem(subject.name, index, prompt, image_path, seed))
    if not items:
        raise FlexIPInputError(
            f"no images found in {folder}; expected <images>/<subject>/<prompt index>/<image>.png (or <images>/<control>-<value>/… for a sweep)"
        )
    return items


def find_settings(folder: str | Path, bench: DreamBench) -> list[Setting]:
    """One setting, or a sweep (every subfolder named `<control>-<value>`), sorted by control value."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FlexIPInputError(f"images folder not found: {folder}")
    subfolders = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    subjects = {subject.name for subject in bench.subjects}
    controls = {p: parse_control_folder(p.name) for p in subfolders if p.name not in subjects}
    if subfolders and all(control is not None for control in controls.values()) and len(controls) == len(subfolders):
        names = {control["name"] for control in controls.values()}
        if len(names) > 1:
            raise FlexIPInputError(f"a sweep folder must vary one control; {folder} mixes {', '.join(sorted(names))}")
        ordered = sorted(controls.items(), key=lambda pair: pair[1]["value"])
        return [Setting(path, control, collect_images(path, bench)) for path, control in ordered]
    return [Setting(folder, None, collect_images(folder, bench))]


def read_run_file(folder: Path) -> dict | None:
    """The `run.json` of `flexip eval run` in `folder` or its parent (a sweep's root), if any."""
    for candidate in (folder / RUN_FILE, folder.parent / RUN_FILE):
        if candidate.is_file():
            try:
                return json.loads(candidate.read_text(encoding="utf-8"))
            except json.JSONDecodeError as error:
                raise FlexIPInputError(f"{candidate} is not valid JSON: {error}") from None
    return None


def _embed_generated(items: Sequence[ImageItem], backbones: Backbones, metrics: Sequence[str], label: str) -> dict[str, torch.Tensor]:
    """Image embeddings of every generated image for each backbone `metrics` need, a batch of images at a time."""
    needed = {
        "clip": "CLIP-T" in metrics or "CLIP-I" in metrics,
        "clip_iqa": "CLIP-IQA" in metrics,
        "aesthetic_clip": "Aesthetic" in metrics,
        "dino": "DINO-I" in metrics,
    }
    roles = {role: getattr(backbones, role) for role, wanted in needed.items() if wanted}
    batch_size = backbones.config.batch_size
    chunks: dict[str, list[torch.Tensor]] = {role: [] for role in roles}
    for start in tqdm(range(0, len(items), batch_size), desc=f"scoring {label}", unit="batch"):
        images = [load_image(item.path) for item in items[start : start + batch_size]]
        done: dict[int, torch.Tensor] = {}
        for role, model in roles.items():
            if id(model) not in done:  # roles sharing one CLIP model embed once
                done[id(model)] = model.embed_images(images)
            chunks[role].append(done[id(model)])
    return {role: torch.cat(parts) for role, parts in chunks.items()}


def per_image_scores(
    items: Sequence[ImageItem],
    bench: DreamBench,
    backbones: Backbones,
    config: ScoreConfig,
    label: str = "images",
) -> pd.DataFrame:
    """A frame with one row per image: subject, live, prompt_index, prompt, image, seed, and each metric."""
    chosen = config.metrics
    missing = [name for name in chosen if name not in backbones.metrics]
    if missing:
        raise FlexIPInputError(f"the loaded backbones do not cover {', '.join(missing)}")
    embeds = _embed_generated(items, backbones, chosen, label)
    frame = pd.DataFrame(
        {
            "subject": [item.subject for item in items],
            "live": [bench.subject(item.subject).live for item in items],
            "prompt_index": [item.prompt_index for item in items],
            "prompt": [item.prompt for item in items],
            "image": [str(item.path) for item in items],
            "seed": [item.seed for item in items],
        }
    )
    if "CLIP-T" in chosen:
        prompts = sorted({item.prompt for item in items})
        text = dict(zip(prompts, backbones.clip.embed_texts(prompts)))
        frame["CLIP-T"] = M.clip_t(embeds["clip"], torch.stack([text[item.prompt] for item in items])).numpy()
    for name, role, metric in (("CLIP-I", "clip", M.clip_i), ("DINO-I", "dino", M.dino_i)):
        if name not in chosen:
            continue
        model = backbones.clip if role == "clip" else backbones.dino
        values = torch.empty(len(items))
        for subject_name in frame["subject"].unique():
            subject = bench.subject(subject_name)
            photos = list(subject.images) if config.compare_to == "all" else [subject.reference(config.reference_index)]
            rows = torch.tensor((frame["subject"] == subject_name).to_numpy())
            values[rows] = metric(embeds[role][rows], model.embed_images(photos))
        frame[name] = values.numpy()
    if "CLIP-IQA" in chosen:
        good, bad = backbones.clip_iqa.embed_texts(list(backbones.config.iqa_anchors))
        frame["CLIP-IQA"] = M.clip_iqa(embeds["clip_iqa"], good, bad).numpy()
    if "Aesthetic" in chosen:
        frame["Aesthetic"] = M.aesthetic(embeds["aesthetic_clip"], backbones.aesthetic_head).cpu().numpy()
    return frame


def aggregate(frame: pd.DataFrame, metrics: Sequence[str]) -> dict:
    """Means over images: overall, live subjects, object subjects, and per subject."""

    def means(rows: pd.DataFrame) -> dict[str, float] | None:
        if rows.empty:
            return None
        return {name: float(rows[name].mean()) for name in metrics}

    return {
        "overall": means(frame),
        "live": means(frame[frame["live"]]),
        "object": means(frame[~frame["live"]]),
        "per_subject": {subject: means(rows) for subject, rows in frame.groupby("subject", sort=True)},
    }


def score_setting(
    setting: Setting,
    bench: DreamBench,
    backbones: Backbones,
    config: ScoreConfig,
    method: str,
    extra_config: dict | None = None,
) -> EvaluationResult:
    """Score one folder of images into an `EvaluationResult` (not yet saved)."""
    label = method if setting.control is None else f"{method} {setting.control['name']}={setting.control['value']:g}"
    frame = per_image_scores(setting.items, bench, backbones, config, label=label)
    summary = aggregate(frame, config.metrics)
    run = read_run_file(setting.folder)
    seeds = (run or {}).get("seeds")
    if seeds is None:
        found = sorted({int(seed) for seed in frame["seed"].dropna()})
        seeds = found or None
    per_image = frame.assign(seed=[None if pd.isna(seed) else int(seed) for seed in frame["seed"]]).to_dict("records")
    for row in per_image:
        row["image"] = str(Path(row["image"]).relative_to(setting.folder))
        row["live"] = bool(row["live"])
    full_config = {
        "scoring": {
            **asdict(config),
            "images": str(setting.folder),
            "benchmark": {
                "root": str(bench.root),
                "subjects": [subject.name for subject in bench.subjects],
                "live_subjects": [subject.name for subject in bench.live_subjects],
            },
        },
        "generation": run,
        **(extra_config or {}),
    }
    return EvaluationResult(
        method=method,
        metrics=list(config.metrics),
        control=setting.control,
        config=full_config,
        seeds=seeds,
        backbones=backbones.describe(),
        per_image=per_image,
        **summary,
    )


def score_folder(
    folder: str | Path,
    bench: DreamBench,
    backbones: Backbones,
    config: ScoreConfig,
    method: str,
    extra_config: dict | None = None,
) -> list[EvaluationResult]:
    """Score a folder in the documented layout: one result, or one per control value of a sweep."""
    return [score_setting(setting, bench, backbones, config, method, extra_config) for setting in find_settings(folder, bench)]
