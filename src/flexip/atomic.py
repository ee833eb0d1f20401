"""Atomic writes: a file or folder is either the old one or the complete new one, never half-written.

A leaf module (imports nothing from the package), used by everything that writes user-visible files:
adapters, images, videos, manifests, result files, checkpoints and caches.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: os.umask can only be read by setting it

#: Every temporary name contains this marker, so a resumed job can find and delete leftovers of a kill.
TEMPORARY_MARKER = ".tmp-"


def is_temporary(name: str) -> bool:
    return TEMPORARY_MARKER in name


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix, so writers that look at it pick the right format);
    on success it is renamed over `path`, on error it is removed and `path` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}{TEMPORARY_MARKER}", suffix=path.suffix or ".tmp")
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, 0o666 & ~_UMASK)  # mkstemp makes it owner-only; the file gets the mode a plain open() would give
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, value) -> Path:
    """`value` as indented JSON (one trailing newline), written atomically."""
    import json

    return write_text(path, json.dumps(value, indent=2) + "\n")


@contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh, empty folder beside `path`; on success it replaces `path` (`replace_directory`), on
    error it is removed and `path` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}{TEMPORARY_MARKER}"))
    try:
        yield temporary
        replace_directory(temporary, path)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary)


def replace_directory(temporary: str | os.PathLike, final: str | os.PathLike) -> Path:
    """Move the finished folder `temporary` to `final`; an existing `final` is kept aside until the new one is
    in place, then removed."""
    temporary, final = Path(temporary), Path(final)
    if final.exists():
        old = final.with_name(final.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
        os.replace(temporary, final)
        shutil.rmtree(old)
    else:
        os.replace(temporary, final)
    return final
