"""Properties of the repository itself: no committed text file carries an absolute machine path (results,
manifests and docs write paths relative to the repo)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# home and checkout folders of common machines; built from parts so that this file does not match itself
ABSOLUTE = re.compile(
    "(?<![\\w.])(" + "|".join(["/" + "work/", "/" + "home/[a-z]", "/" + "Users/", "/" + "root/", "/" + "tmp/", "[A-Z]:\\\\" + "Users"]) + ")"
)


def tracked_text_files() -> list[Path]:
    try:
        listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    files = []
    for name in filter(None, listing.decode().split("\0")):
        path = ROOT / name
        if path.is_file() and path.suffix not in (".safetensors", ".png", ".mp4", ".bin"):
            files.append(path)
    return files


def test_no_committed_text_file_holds_an_absolute_machine_path():
    offenders = []
    for path in tracked_text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if ABSOLUTE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    assert not offenders, "absolute paths in committed files:\n" + "\n".join(offenders[:20])


def test_the_pattern_finds_what_it_should():
    assert ABSOLUTE.search('"preset": "/' + 'work/main/src/flexip/presets/miniworld"')
    assert ABSOLUTE.search("C:\\" + "Users\\me\\repo")
    assert not ABSOLUTE.search("src/flexip/presets/miniworld and ../shared/weights and https://github.com/x/" + "work/y")
