"""Result files: one JSON file per scored method setting, self-describing, written atomically.

A result file records what produced its numbers (full config, seeds, backbone ids, package version) and
the numbers at every level: per image, per subject, live / object subjects, and overall. The format is
documented in docs/evaluation.md; `load_result` checks it and says what is wrong with a bad file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image

from flexip.atomic import write_text
from flexip.data.images import save_image
from flexip.errors import FlexIPInputError
from flexip.version import __version__

RESULT_FORMAT = "flexip-eval-result"
FORMAT_VERSION = 1


def atomic_save_image(image: Image.Image, path: str | Path) -> Path:
    """Save a PIL image (format from the suffix) so that an interrupted run leaves no truncated file."""
    if Image.registered_extensions().get(Path(path).suffix.lower()) is None:
        raise FlexIPInputError(f"cannot tell the image format of {path}; use .png or .jpg")
    return save_image(image, path)


def _clean(value):
    """JSON-safe copy: NaN/inf → None, tuples → lists, paths → strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): _clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


@dataclass
class EvaluationResult:
    """The scores of one method at one setting (e.g. FlexIP at γ = 0.5) over a benchmark."""

    method: str
    metrics: list[str]
    overall: dict[str, float]
    per_subject: dict[str, dict[str, float]]
    per_image: list[dict]
    live: dict[str, float] | None = None
    object: dict[str, float] | None = None
    #: The control being swept and its value, e.g. {"name": "gamma", "value": 0.5}; None for a single setting.
    control: dict | None = None
    #: Everything needed to reproduce the numbers (scoring settings, and generation settings when known).
    config: dict = field(default_factory=dict)
    seeds: list[int] | None = None
    backbones: dict = field(default_factory=dict)
    flexip_version: str = __version__
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def label(self) -> str:
        """The name used in ranking tables and plots: 'FlexIP (gamma=0.5)' or just 'FlexIP'."""
        if not self.control:
            return self.method
        return f"{self.method} ({self.control['name']}={self.control['value']:g})"

    def to_dict(self) -> dict:
        """Summary first, per-image rows last (so the head of the file is readable)."""
        data = _clean(asdict(self))
        order = [
            "method",
            "control",
            "metrics",
            "overall",
            "live",
            "object",
            "per_subject",
            "seeds",
            "config",
            "backbones",
            "flexip_version",
            "created",
            "per_image",
        ]
        return {"format": RESULT_FORMAT, "format_version": FORMAT_VERSION, **{key: data[key] for key in order}}

    @classmethod
    def from_dict(cls, data: dict, source: str = "result") -> EvaluationResult:
        if not isinstance(data, dict) or data.get("format") != RESULT_FORMAT:
            raise FlexIPInputError(f'{source} is not a FlexIP result file (no "format": "{RESULT_FORMAT}")')
        if data.get("format_version") != FORMAT_VERSION:
            raise FlexIPInputError(f"{source} has result format version {data.get('format_version')}; this FlexIP reads {FORMAT_VERSION}")
        names = {name for name in cls.__dataclass_fields__}
        missing = sorted(name for name in ("method", "metrics", "overall", "per_subject", "per_image") if name not in data)
        if missing:
            raise FlexIPInputError(f"{source} lacks {', '.join(missing)}")
        control = data.get("control")
        if control is not None and not (isinstance(control, dict) and {"name", "value"} <= set(control)):
            raise FlexIPInputError(f'{source}: `control` must be null or {{"name": ..., "value": ...}}')
        return cls(**{key: value for key, value in data.items() if key in names})


def save_result(result: EvaluationResult, path: str | Path) -> Path:
    return write_text(path, json.dumps(result.to_dict(), indent=1, allow_nan=False) + "\n")


def load_result(path: str | Path) -> EvaluationResult:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise FlexIPInputError(f"{path} is not valid JSON: {error}") from None
    return EvaluationResult.from_dict(data, source=str(path))


def is_result_file(path: Path) -> bool:
    """A cheap check (reads the head of the file) used when scanning folders."""
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    with open(path, "rb") as handle:
        head = handle.read(200)
    return RESULT_FORMAT.encode() in head


def find_result_files(paths: Iterable[str | Path]) -> list[Path]:
    """Result files among `paths`; a folder contributes every result file below it (sorted)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*.json") if is_result_file(p)))
        elif path.is_file():
            found.append(path)
        else:
            raise FlexIPInputError(f"no such file or folder: {path}")
    return found


def result_filename(method: str, control: dict | None) -> str:
    """'FlexIP_gamma-0.5.json' / 'IP-Adapter.json': a file name that sorts a sweep by its value."""
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in method)
    if control:
        stem += f"_{control['name']}-{control['value']:g}"
    return stem + ".json"
