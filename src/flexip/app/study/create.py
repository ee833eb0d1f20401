"""`flexip study create`: a study from the image folders of several methods.

Each method's folder has the evaluation layout, `IMAGES/<subject>/<prompt>/*.png` (or .jpg …). Two ways to say
what the prompts are and what the subject looks like:

- with `benchmark` (a DreamBench copy): prompt folders are prompt indices, as `flexip eval run` writes them
  (`<out>/images/gamma-0.50` is one method's IMAGES); the reference is the subject's benchmark photo
  `reference_index` (the one zero-shot methods were given);
- without: a prompt folder's name is the prompt itself, and `references/<subject>/` holds the subject's photos
  (up to four are shown).

A task is one (subject, prompt) cell that every method has, and in it the k-th image (sorted by name) of
every method, for k < `per_cell`. Every image is read with flexip's image checks and stored in the study as PNG.
"""

from __future__ import annotations

import io
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from flexip.app.references import MAX_REFERENCES
from flexip.app.study.store import StudyStore, TaskSpec
from flexip.data.images import load_image
from flexip.errors import FlexIPInputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclass(frozen=True)
class Cell:
    subject: str
    prompt_folder: str
    prompt: str


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def _folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _cells(images_dir: Path, prompt_of) -> dict[Cell, list[Path]]:
    if not images_dir.is_dir():
        raise FlexIPInputError(f"images folder not found: {images_dir} (expected IMAGES/<subject>/<prompt>/*.png)")
    cells = {}
    for subject in _folders(images_dir):
        for prompt in _folders(subject):
            files = _images(prompt)
            if files:
                cells[Cell(subject.name, prompt.name, prompt_of(subject.name, prompt.name, prompt))] = files
    if not cells:
        raise FlexIPInputError(f"no images in {images_dir}; expected IMAGES/<subject>/<prompt>/*.png")
    return cells


def _png(path: Path) -> bytes:
    buffer = io.BytesIO()
    load_image(path).save(buffer, format="PNG")
    return buffer.getvalue()


def collect_tasks(
    methods: Mapping[str, str | os.PathLike],
    references: str | os.PathLike | None = None,
    benchmark: str | os.PathLike | None = None,
    reference_index: int = 0,
    per_cell: int = 1,
    max_tasks: int | None = None,
    seed: int = 0,
) -> list[TaskSpec]:
    """The study's tasks from the methods' folders (see the module docstring)."""
    if len(methods) < 2:
        raise FlexIPInputError(f"a study compares at least two methods (--method NAME=IMAGES, twice or more), got {len(methods)}")
    if (references is None) == (benchmark is None):
        raise FlexIPInputError("give either --references DIR (DIR/<subject>/*.png; prompt folders named by their prompt) or --benchmark DREAMBENCH")
    if per_cell < 1 or (max_tasks is not None and max_tasks < 1):
        raise FlexIPInputError("--per-cell and --max-tasks must be ≥ 1")
    if benchmark is not None:
        from flexip.evaluation.dreambench import fill_template, load_dreambench

        bench = load_dreambench(benchmark)
        known = {subject.name: subject for subject in bench.subjects}

        def prompt_of(subject: str, folder: str, path: Path) -> str:
            entry = known.get(subject)
            if entry is None or not folder.isdigit() or int(folder) >= len(entry.templates):
                raise FlexIPInputError(f"{path}: expected <benchmark subject>/<prompt index 0…24>/ (the layout `flexip eval run` writes)")
            return fill_template(entry.templates[int(folder)], entry.class_noun)

        def reference_files(subject: str) -> list[Path]:
            return [known[subject].reference(reference_index)]
    else:
        references = Path(references)

        def prompt_of(subject: str, folder: str, path: Path) -> str:
            return folder

        def reference_files(subject: str) -> list[Path]:
            folder = references / subject
            files = _images(folder) if folder.is_dir() else []
            if not files:
                raise FlexIPInputError(f"no reference images of {subject!r}: expected {folder}/*.png")
            return files[:MAX_REFERENCES]

    per_method = {name: _cells(Path(folder), prompt_of) for name, folder in methods.items()}
    common = sorted(set.intersection(*(set(cells) for cells in per_method.values())), key=lambda c: (c.subject, c.prompt_folder))
    if not common:
        raise FlexIPInputError("the methods' folders share no <subject>/<prompt> cell; they must render the same subjects and prompts")
    chosen = [(cell, k) for cell in common for k in range(min(per_cell, *(len(cells[cell]) for cells in per_method.values())))]
    if max_tasks is not None and len(chosen) > max_tasks:
        chosen = sorted(random.Random(seed).sample(chosen, max_tasks), key=lambda item: (item[0].subject, item[0].prompt_folder, item[1]))
    reference_png = {}
    tasks = []
    for cell, k in chosen:
        if cell.subject not in reference_png:
            reference_png[cell.subject] = tuple(_png(path) for path in reference_files(cell.subject))
        candidates = {name: _png(cells[cell][k]) for name, cells in per_method.items()}
        source = f"{cell.subject}/{cell.prompt_folder}/{next(iter(per_method.values()))[cell][k].name}"
        tasks.append(TaskSpec(cell.subject, cell.prompt, source, reference_png[cell.subject], candidates))
    return tasks


def create_study(path: str | os.PathLike, methods: Mapping[str, str | os.PathLike], **options) -> StudyStore:
    """Collect the tasks (see `collect_tasks`) and write the study file."""
    if Path(path).exists():  # before reading every image
        raise FlexIPInputError(f"{path} exists; choose another file name (a study file holds its votes)")
    tasks = collect_tasks(methods, **options)
    description = "methods: " + ", ".join(f"{name} = {Path(folder).name}" for name, folder in methods.items())
    return StudyStore.create(path, list(methods), tasks, description)
