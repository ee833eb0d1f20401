"""benchmarks/device_check.py (the prepared GPU check) runs end to end on the CPU with tiny configs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"


def test_the_device_check_runs_on_tiny_configs_and_writes_its_table(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("device_check", BENCHMARKS / "device_check.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "device_check", module)
    spec.loader.exec_module(module)
    markdown = module.main(["--tiny", "--device", "cpu", "--rounds", "1", "--dtypes", "fp32", "--no-write", "--out", str(tmp_path)])
    assert (tmp_path / "device_check.md").read_text().strip() == markdown.strip()
    for family in ("sd15", "sdxl"):
        for variant in ("base", "FlexIP", "IP-Adapter"):
            assert f"| {family} | fp32 | {variant} |" in markdown
        assert f"| {family} | fp32 (CPU) |" in markdown
