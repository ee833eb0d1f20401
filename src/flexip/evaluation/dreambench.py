"""DreamBench (Ruiz et al., "DreamBooth", CVPR 2023): subjects, classes and prompts from the official layout.

The official layout (the `dataset/` folder of the public google/dreambooth repository)::

    dataset/
      prompts_and_classes.txt      # subject → class table, then the object and live-subject prompt lists
      <subject>/00.jpg 01.jpg ...  # 4–6 reference photos per subject (30 subjects)

Everything is parsed from `prompts_and_classes.txt`, not hard-coded. The one thing that file does not
state is which subjects are "live": by the benchmark's convention they are the animals, i.e. the
subjects of class ``cat`` or ``dog`` (9 of 30); `LIVE_CLASSES` holds that rule and can be overridden.
Live subjects get the 25 live-subject prompts (outfits, hats), all others the 25 object prompts.

Prompts are templates ``'a {0} {1} in the snow'`` with {0} = unique token, {1} = class noun. Zero-shot
methods (FlexIP, IP-Adapter) use the class-noun form, "a dog in the snow" (`Subject.prompts()`);
fine-tuning methods pass their token, "a sks dog in the snow" (`Subject.prompts("sks")`).
"""

from __future__ import annotations

import re
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from flexip.errors import FlexIPInputError
from flexip.evaluation import fetch

PROMPTS_FILE = "prompts_and_classes.txt"
#: Public archive of the google/dreambooth repository; its `dataset/` folder is the benchmark.
ARCHIVE_URL = "https://github.com/google/dreambooth/archive/refs/heads/main.zip"
#: Classes whose subjects are "live" (get the live-subject prompts). Not stated in the prompts file.
LIVE_CLASSES: tuple[str, ...] = ("cat", "dog")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")

_TEMPLATE_LINE = re.compile(r"""^\s*(['"])(?P<template>.*)\1\s*\.format\(\s*unique_token\s*,\s*class_token\s*\)""")


@dataclass(frozen=True)
class PromptTable:
    """The parsed content of `prompts_and_classes.txt`."""

    classes: dict[str, str]  # subject → class noun, in file order
    object_templates: tuple[str, ...]
    live_templates: tuple[str, ...]


def parse_prompts_and_classes(text: str) -> PromptTable:
    """Parse the official `prompts_and_classes.txt`: the ``subject_name,class`` table and both prompt lists."""
    classes: dict[str, str] = {}
    templates: dict[str, list[str]] = {"object": [], "live": []}
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        lowered = line.lower()
        if not line:
            continue
        if lowered == "classes":
            section = "classes"
        elif lowered == "prompts":
            section = "prompts"
        elif lowered.startswith("object prompts"):
            section = "object"
        elif lowered.startswith("live subject prompts"):
            section = "live"
        elif section == "classes" and "," in line and lowered != "subject_name,class":
            subject, class_noun = (part.strip() for part in line.split(",", 1))
            if subject in classes:
                raise FlexIPInputError(f"{PROMPTS_FILE}: subject {subject!r} is listed twice")
            classes[subject] = class_noun
        elif section in templates:
            match = _TEMPLATE_LINE.match(line)
            if match:
                templates[section].append(match.group("template"))
    missing = [
        what
        for what, found in (
            ("the class table", classes),
            ("object prompts", templates["object"]),
            ("live-subject prompts", templates["live"]),
        )
        if not found
    ]
    if missing:
        raise FlexIPInputError(f"{PROMPTS_FILE} has no {', no '.join(missing)}; is it the DreamBench file?")
    for template in templates["object"] + templates["live"]:
        if "{0}" not in template or "{1}" not in template:
            raise FlexIPInputError(f"{PROMPTS_FILE}: prompt {template!r} lacks the {{0}} token / {{1}} class slots")
    return PromptTable(classes, tuple(templates["object"]), tuple(templates["live"]))


def fill_template(template: str, class_noun: str, unique_token: str | None = None) -> str:
    """'a {0} {1} in the snow' → 'a dog in the snow' (no token) or 'a sks dog in the snow'."""
    text = template.format(unique_token or "", class_noun)
    return re.sub(r"\s+", " ", text).strip()


@dataclass(frozen=True)
class Subject:
    name: str
    class_noun: str
    live: bool
    images: tuple[Path, ...]
    templates: tuple[str, ...]

    def prompts(self, unique_token: str | None = None) -> list[str]:
        """The subject's 25 prompts; without a token in the class-noun form used by zero-shot methods."""
        return [fill_template(template, self.class_noun, unique_token) for template in self.templates]

    def reference(self, index: int) -> Path:
        if not 0 <= index < len(self.images):
            raise FlexIPInputError(f"subject {self.name!r} has {len(self.images)} reference images; index {index} is out of range")
        return self.images[index]


@dataclass(frozen=True)
class DreamBench:
    root: Path  # the folder holding prompts_and_classes.txt
    subjects: tuple[Subject, ...]

    @property
    def classes(self) -> list[str]:
        return sorted({subject.class_noun for subject in self.subjects})

    @property
    def live_subjects(self) -> list[Subject]:
        return [subject for subject in self.subjects if subject.live]

    def subject(self, name: str) -> Subject:
        for subject in self.subjects:
            if subject.name == name:
                return subject
        raise FlexIPInputError(f"unknown DreamBench subject {name!r}; known: {', '.join(s.name for s in self.subjects)}")

    def select(self, names: Sequence[str] | None) -> DreamBench:
        """A benchmark restricted to `names` (None: all), in the given order."""
        if not names:
            return self
        return DreamBench(self.root, tuple(self.subject(name) for name in names))


def find_dataset_folder(path: str | Path) -> Path | None:
    """`path` itself or `path/dataset`, whichever holds prompts_and_classes.txt; None if neither."""
    path = Path(path)
    for candidate in (path, path / "dataset"):
        if (candidate / PROMPTS_FILE).is_file():
            return candidate
    return None


def load_dreambench(path: str | Path, live_classes: Sequence[str] = LIVE_CLASSES) -> DreamBench:
    """Read a DreamBench copy in the official layout (`path` is the dataset folder or its parent)."""
    root = find_dataset_folder(path)
    if root is None:
        raise FlexIPInputError(
            f"no DreamBench at {path}: expected {PROMPTS_FILE} there or in {Path(path) / 'dataset'} "
            "(pass the `dataset` folder of the google/dreambooth repository, or allow the download)"
        )
    table = parse_prompts_and_classes((root / PROMPTS_FILE).read_text(encoding="utf-8"))
    live = {name.lower() for name in live_classes}
    subjects = []
    for name, class_noun in table.classes.items():
        folder = root / name
        if not folder.is_dir():
            raise FlexIPInputError(f"DreamBench subject folder missing: {folder} (listed in {PROMPTS_FILE})")
        images = tuple(sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()))
        if not images:
            raise FlexIPInputError(f"DreamBench subject folder {folder} holds no images")
        is_live = class_noun.lower() in live
        templates = table.live_templates if is_live else table.object_templates
        subjects.append(Subject(name, class_noun, is_live, images, templates))
    return DreamBench(root, tuple(subjects))


def fetch_dreambench(destination: str | Path) -> Path:
    """Download the public archive and extract its `dataset/` folder to `destination/dataset`.

    For users' machines; refused when the environment is offline (see `fetch.offline`).
    """
    destination = Path(destination)
    target = destination / "dataset"
    destination.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination, prefix=".dreambench-") as scratch:
        archive = fetch.download(ARCHIVE_URL, Path(scratch) / "dreambooth.zip", "the DreamBench archive")
        staging = Path(scratch) / "dataset"
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.infolist():
                parts = PurePosixPath(member.filename).parts
                if len(parts) < 3 or parts[1] != "dataset" or member.is_dir():
                    continue
                relative = PurePosixPath(*parts[2:])
                if ".." in relative.parts or relative.is_absolute():
                    raise FlexIPInputError(f"refusing unsafe path {member.filename!r} in the DreamBench archive")
                out = staging / relative
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(bundle.read(member))
        if not (staging / PROMPTS_FILE).is_file():
            raise FlexIPInputError(f"the archive from {ARCHIVE_URL} has no dataset/{PROMPTS_FILE}")
        if target.exists():
            raise FlexIPInputError(f"{target} already exists; remove it or pass it as the benchmark path")
        staging.rename(target)
    return target


def default_dreambench_path() -> Path:
    return fetch.cache_dir() / "dreambench"


def resolve_dreambench(path: str | Path | None = None, download: bool = False) -> DreamBench:
    """Load DreamBench from `path` (default: the FlexIP cache), downloading it there first if asked."""
    path = Path(path) if path is not None else default_dreambench_path()
    if find_dataset_folder(path) is None and download:
        fetch_dreambench(path)
    return load_dreambench(path)
