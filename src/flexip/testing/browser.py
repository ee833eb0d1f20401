"""Debian's headless Chromium, driven by selenium through Debian's chromedriver: the studio's browser test and its
latency benchmark open the page the same way. Never a downloaded browser (selenium's own manager is not used: the
driver's path is given)."""

from __future__ import annotations

import shutil
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
INSTALL = "apt-get install chromium chromium-driver"

# quiet, headless and alone: no sandbox (root in a container), no GPU, no background traffic, /tmp instead of /dev/shm
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1500",
)


def missing_chromium() -> str | None:
    """Why no browser can be opened here, or None when Chromium and chromedriver are both installed."""
    if Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists():
        return None
    return f"no Chromium here ({CHROMIUM}, {CHROMEDRIVER}): install Debian's chromium and chromium-driver ({INSTALL})"


def headless_chromium(profile: Path):
    """A selenium driver on a new headless Chromium whose user data lives in `profile` (a folder of the caller's)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
