"""Paths as they are written into results, manifests and logs meant to be shared: relative to the working
directory when inside it, so that committed files never carry a machine's absolute checkout path."""

from __future__ import annotations

import os
from pathlib import Path


def portable_path(path: str | os.PathLike) -> str:
    """`path` relative to the current directory if it lies inside it (POSIX separators), else unchanged."""
    path = Path(path)
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)
