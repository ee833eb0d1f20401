"""Scoring a folder of images (any method), the result-file format, and `flexip eval score / report`."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from click.testing import CliRunner

from flexip.errors import FlexIPInputError
from flexip.evaluation.metrics import METRICS
from flexip.evaluation.report import write_report
from flexip.evaluation.results import load_result, save_result
from flexip.evaluation.scoring import ScoreConfig, find_settings, score_folder

from .conftest import write_images

LAYOUT = {"dog": [0, 1], "can": [2]}


def test_score_folder_produces_every_metric_at_every_level(tmp_path, tiny_bench, backbones):
    write_images(tmp_path / "images", LAYOUT)
    (result,) = score_folder(tmp_path / "images", tiny_bench, backbones, ScoreConfig(), "SomeMethod")
    assert result.metrics == list(METRICS) and result.control is None
    assert len(result.per_image) == 6
    for level in (result.overall, result.live, result.object, *result.per_subject.values()):
        assert set(level) == set(METRICS) and all(math.isfinite(value) for value in level.values())
    assert result.per_subject.keys() == {"dog", "can"}
    assert result.live == result.per_subject["dog"] and result.object == result.per_subject["can"]
    first = result.per_image[0]
    assert (first["subject"], first["prompt_index"], first["prompt"], first["seed"], first["live"]) == ("can", 2, "a red can", 0, False)
    assert first["image"] == "can/02/0.png"
    assert result.seeds == [0, 1]
    assert all(0 <= row["CLIP-IQA"] <= 1 and -1 <= row["DINO-I"] <= 1 for row in result.per_image)
    frame = pd.DataFrame(result.per_image)
    assert frame["CLIP-T"].mean() == pytest.approx(result.overall["CLIP-T"])


def test_result_file_is_self_describing_and_round_trips(tmp_path, tiny_bench, backbones):
    write_images(tmp_path / "images", {"dog": [0]}, seeds=(3,))
    (result,) = score_folder(tmp_path / "images", tiny_bench, backbones, ScoreConfig(compare_to="reference"), "M")
    path = save_result(result, tmp_path / "r.json")
    data = json.loads(path.read_text())
    assert data["format"] == "flexip-eval-result" and data["format_version"] == 1
    assert data["flexip_version"] and data["created"] and data["seeds"] == [3]
    assert data["config"]["scoring"]["compare_to"] == "reference"
    assert data["config"]["scoring"]["benchmark"]["live_subjects"] == ["dog"]
    assert data["backbones"]["per_metric"]["CLIP-T"] == backbones.config.clip
    assert data["backbones"]["config"]["iqa_anchors"] == ["Good photo.", "Bad photo."]
    loaded = load_result(path)
    assert loaded.overall == result.overall and loaded.label == "M"
    path.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(FlexIPInputError, match="not a FlexIP result file"):
        load_result(path)


def test_sweep_layout_is_found_and_sorted(tmp_path, tiny_bench):
    for value in ("1", "0.25", "0.5"):
        write_images(tmp_path / "sweep" / f"gamma-{value}", {"can": [0]}, seeds=(0,))
    settings = find_settings(tmp_path / "sweep", tiny_bench)
    assert [setting.control for setting in settings] == [
        {"name": "gamma", "value": 0.25},
        {"name": "gamma", "value": 0.5},
        {"name": "gamma", "value": 1.0},
    ]
    write_images(tmp_path / "bad", {"cat": [0]})
    with pytest.raises(FlexIPInputError, match="not a benchmark subject"):
        find_settings(tmp_path / "bad", tiny_bench)
    write_images(tmp_path / "bad2", {"can": [7]})
    with pytest.raises(FlexIPInputError, match="prompt index folder 0…2"):
        find_settings(tmp_path / "bad2", tiny_bench)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FlexIPInputError, match="no images found"):
        find_settings(tmp_path / "empty", tiny_bench)


def test_score_rank_and_report_commands(tmp_path, cli, tiny_bench_dir, backbone_args):
    for offset, value in enumerate((0.0, 0.5, 1.0)):
        write_images(tmp_path / "flexip" / f"gamma-{value:g}", {"dog": [0], "can": [1]}, seeds=(0,), offset=offset)
    write_images(tmp_path / "other", {"dog": [0], "can": [1]}, seeds=(0,), offset=7)
    backbone_args = [*backbone_args, "--device", "cpu", "--batch-size", "4"]
    runner = CliRunner()
    scored = runner.invoke(cli, ["eval", "score", str(tmp_path / "flexip"), "--method", "FlexIP", "--out", str(tmp_path / "results"), *backbone_args])
    assert scored.exit_code == 0, scored.output
    assert "FlexIP (gamma=0.5)" in scored.output and (tmp_path / "results" / "ranking.md").is_file()
    assert sorted(p.name for p in (tmp_path / "results").glob("*.json")) == [
        "FlexIP_gamma-0.5.json",
        "FlexIP_gamma-0.json",
        "FlexIP_gamma-1.json",
    ]
    other = runner.invoke(
        cli,
        [
            "eval",
            "score",
            str(tmp_path / "other"),
            "--method",
            "Other",
            "--control",
            "scale=0.6",
            "--out",
            str(tmp_path / "results-other"),
            *backbone_args,
        ],
    )
    assert other.exit_code == 0, other.output
    assert load_result(tmp_path / "results-other" / "Other_scale-0.6.json").control == {"name": "scale", "value": 0.6}

    ranked = runner.invoke(cli, ["eval", "rank", str(tmp_path / "results"), str(tmp_path / "results-other"), "--csv", str(tmp_path / "r.csv")])
    assert ranked.exit_code == 0, ranked.output
    table = pd.read_csv(tmp_path / "r.csv")
    assert len(table) == 4 and set(METRICS) <= set(table.columns) and table["mRank"].between(1, 4).all()

    report = runner.invoke(cli, ["eval", "report", str(tmp_path / "results"), str(tmp_path / "results-other"), "--out", str(tmp_path / "report")])
    assert report.exit_code == 0, report.output
    for name in ("identity_vs_text.png", "sweep_curves.png", "sweep_statistics.csv", "sweep_statistics.md"):
        assert (tmp_path / "report" / name).stat().st_size > 0, name
    statistics = pd.read_csv(tmp_path / "report" / "sweep_statistics.csv")
    assert set(statistics["metric"]) == set(METRICS) and (statistics["method"] == "FlexIP").all()
    assert statistics["largest_jump"].between(0, 1).all()

    missing = runner.invoke(
        cli,
        ["eval", "score", str(tmp_path / "other"), "--method", "X", "--out", str(tmp_path / "x"), "--benchmark", str(tmp_path / "nowhere")],
    )
    assert missing.exit_code == 2 and "error: no DreamBench" in missing.output


def test_report_without_sweep_writes_the_scatter(tmp_path, tiny_bench, backbones):
    write_images(tmp_path / "images", {"can": [0]}, seeds=(0,))
    results = score_folder(tmp_path / "images", tiny_bench, backbones, ScoreConfig(metrics=("CLIP-T", "CLIP-I")), "A")
    written = write_report(results, tmp_path / "report")
    assert list(written) == ["identity_vs_text"] and written["identity_vs_text"].stat().st_size > 0
