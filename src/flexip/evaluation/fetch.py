"""Fetching public evaluation files (the aesthetic head, the DreamBench archive) on a user's machine.

Downloads happen only when a caller asks for one, never implicitly in tests: with ``HF_HUB_OFFLINE=1``
or ``FLEXIP_OFFLINE=1`` in the environment every download is refused with an error that says which
local path to pass instead. Files are written to a temporary name and renamed when complete, so an
interrupted download never leaves a truncated file behind.
"""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from flexip.atomic import atomic_path
from flexip.errors import FlexIPInputError
from flexip.hashing import file_sha256

_OFFLINE_VARIABLES = ("FLEXIP_OFFLINE", "HF_HUB_OFFLINE")


def cache_dir() -> Path:
    """Where downloaded evaluation files live: ``$FLEXIP_CACHE`` or ``~/.cache/flexip``."""
    return Path(os.environ.get("FLEXIP_CACHE") or Path.home() / ".cache" / "flexip")


def offline() -> bool:
    """True when the environment forbids downloads (``FLEXIP_OFFLINE`` or ``HF_HUB_OFFLINE`` set to 1)."""
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on") for name in _OFFLINE_VARIABLES)


def download(url: str, destination: Path, what: str, sha256: str | None = None) -> Path:
    """Download `url` to `destination` (atomically), checking its sha256 when given."""
    if offline():
        raise FlexIPInputError(
            f"{what} is not available locally and downloads are disabled (FLEXIP_OFFLINE / HF_HUB_OFFLINE is set); "
            f"download {url} yourself and pass its local path"
        )
    destination = Path(destination)
    try:
        with atomic_path(destination) as temporary:
            with open(temporary, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {what}") as progress:
                    for block in iter(lambda: response.read(1 << 20), b""):
                        out.write(block)
                        progress.update(len(block))
            if sha256 is not None:
                found = file_sha256(temporary)
                if found != sha256:
                    raise FlexIPInputError(f"{what} downloaded from {url} has sha256 {found}, expected {sha256}")
    except OSError as error:
        raise FlexIPInputError(f"could not download {what} from {url}: {error}") from None
    return destination
