"""`flexip miniworld compare`: evaluation results side by side, targets read as `check_targets` reads them."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from flexip.errors import FlexIPInputError
from flexip_miniworld.cli import miniworld_group
from flexip_miniworld.compare import comparison_table, load_result, targets_met
from flexip_miniworld.evaluate import GAMMAS, check_targets


def result(clip_t, dino_i, first=0, identified=0.2):
    scores = {
        f"gamma={g}": {"CLIP-T": t, "CLIP-I": 0.3 + 0.01 * k, "DINO-I": d, "DINO-I identification": identified if g == 1.0 else 0.05}
        for k, (g, t, d) in enumerate(zip(GAMMAS, clip_t, dino_i))
    }
    scores["base"] = {"CLIP-T": 0.8, "CLIP-I": 0.3, "DINO-I": 0.3}
    calibration = {"real-vs-real": {"DINO-I": 0.5}}
    step = {
        "from": 0.0,
        "to": 0.25,
        "mean": clip_t[1] - clip_t[0],
        "low": clip_t[1] - clip_t[0] - 0.004,
        "high": clip_t[1] - clip_t[0] + 0.004,
    }
    return {
        "gammas": list(GAMMAS),
        "subjects": 20,
        "first_subject": first,
        "scores": scores,
        "calibration": calibration,
        "targets": check_targets(scores, calibration),
        "gamma_steps": {"CLIP-T": [step]},
    }


GOOD = result([0.79, 0.785, 0.78, 0.77, 0.76], [0.35, 0.38, 0.41, 0.44, 0.46], first=20, identified=0.175)
BAD = result([0.70, 0.705, 0.69, 0.68, 0.67], [0.35, 0.36, 0.35, 0.37, 0.38])  # CLIP-T rises first, DINO-I dips, gap 0.4


def test_targets_met_reads_flags_and_bars():
    assert targets_met(GOOD) == ["DINO-I ↑", "CLIP-I ↑", "CLIP-T ↓", "gap", "CLIP-T γ=0"]
    assert targets_met(BAD) == ["CLIP-I ↑"]  # gap (0.38-0.3)/(0.5-0.3) = 0.4 < 0.5, CLIP-T 0.70/0.80 = 0.875 < 0.9


def test_table_has_a_row_per_run_with_its_numbers():
    rows = comparison_table({"good": GOOD, "bad": BAD}).splitlines()
    assert len(rows) == 4
    assert rows[2].startswith("| good | 20–39 | 0.7900 0.7850 0.7800 0.7700 0.7600 | -0.0050 [-0.0090, -0.0010] |")
    assert rows[2].endswith("| 0.175 | 5/5 | — |")
    assert rows[3].endswith("| 1/5 | DINO-I ↑, CLIP-T ↓, gap, CLIP-T γ=0 |")


def test_bad_paths_are_clear_errors(tmp_path):
    with pytest.raises(FlexIPInputError, match="not found"):
        load_result(tmp_path / "missing")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(FlexIPInputError, match="not valid JSON"):
        load_result(tmp_path / "broken.json")
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(FlexIPInputError, match="not a `flexip miniworld evaluate` result"):
        load_result(tmp_path / "other.json")
    old = json.loads(json.dumps(GOOD))
    del old["targets"]["CLIP-T falls with gamma (monotone)"], old["scores"]["gamma=1.0"]["DINO-I identification"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    with pytest.raises(FlexIPInputError, match="lacks CLIP-T falls with gamma .monotone., gamma=1.0"):
        load_result(tmp_path / "old.json")


def test_cli_reads_folders_and_labels(tmp_path):
    for name, value in (("a", GOOD), ("b", BAD)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "evaluation.json").write_text(json.dumps(value))
    runner = CliRunner()
    out = runner.invoke(miniworld_group, ["compare", str(tmp_path / "a"), str(tmp_path / "b" / "evaluation.json"), "--label", "s1", "--label", "s2"])
    assert out.exit_code == 0, out.output
    assert "| s1 | 20–39 |" in out.output and "| s2 | 0–19 |" in out.output
    out = runner.invoke(miniworld_group, ["compare", str(tmp_path / "a"), "--label", "x", "--label", "y"])
    assert isinstance(out.exception, FlexIPInputError)
    out = runner.invoke(miniworld_group, ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--label", "x", "--label", "x"])
    assert isinstance(out.exception, FlexIPInputError) and "labels must differ" in str(out.exception)
    out = runner.invoke(miniworld_group, ["compare", str(tmp_path / "a"), str(tmp_path / "b" / "evaluation.json")])
    assert out.exit_code == 0 and f"| {tmp_path.name}/a |" in out.output and f"| {tmp_path.name}/b |" in out.output
