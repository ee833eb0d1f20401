"""Each benchmark owns one section of benchmarks/RESULTS.md, between markers, and rewrites only that."""

from __future__ import annotations

import os
import platform
import re
from datetime import UTC, datetime
from pathlib import Path

from flexip.atomic import write_text

RESULTS = Path(__file__).parent / "RESULTS.md"
HEADER = "# Benchmark results\n\nWritten by the scripts in this folder; each section says how it was measured.\n"


def machine() -> str:
    import torch

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, threads {torch.get_num_threads()}"


def write_section(name: str, markdown: str) -> Path:
    begin, end = f"<!-- begin:{name} -->", f"<!-- end:{name} -->"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = f"{begin}\n{markdown.rstrip()}\n\n_Measured {stamp} on {machine()}._\n{end}"
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    return write_text(RESULTS, text)
