"""`flexip miniworld compare`: evaluation results side by side, targets read as `check_targets` reads them."""

from __future__ import annotations

import json

import numpy as np
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
    assert out.exit_code == 0, out.output  # one label twice: two seeds of one method, numbered in the per-run table
    assert "| x #1 | 20–39 |" in out.output and "| x #2 | 0–19 |" in out.output
    out = runner.invoke(miniworld_group, ["compare", str(tmp_path / "a"), str(tmp_path / "b" / "evaluation.json")])
    assert out.exit_code == 0 and f"| {tmp_path.name}/a |" in out.output and f"| {tmp_path.name}/b |" in out.output


def test_method_statistics_on_hand_made_frontiers(swept):
    from flexip_miniworld.compare import method_statistics, method_table

    flat = [0.1] * 11
    # FlexIP: text 0.8 → 0.7 while DINO-I 0.3 → 0.5, linearly; IP-Adapter: text 0.8 → 0.6, DINO-I 0.2 → 0.4
    flexip = [swept("gamma", np.linspace(0.8, 0.7, 11), np.linspace(0.3, 0.5, 11), flat, shift) for shift in (0.0, 0.02)]
    ip = [swept("scale", np.linspace(0.8, 0.6, 11), np.linspace(0.2, 0.4, 11), flat)]
    stats = method_statistics({"FlexIP": flexip, "IP-Adapter": ip})
    reference = stats["_reference"]
    assert reference["lowest CLIP-T"] == pytest.approx(0.6) and reference["base DINO-I"] == pytest.approx(0.2)
    assert reference["CLIP-T level"] == pytest.approx(0.6)

    # a straight falling line from (0.8, a) to (0.7, b) above (0.6, 0.2): the staircase of its 11 points
    def staircase(x0, x1, y0, y1):
        xs, ys = np.linspace(x0, x1, 11), np.linspace(y0, y1, 11)
        return sum((x - 0.6) * (y - (ys[k - 1] if k else 0.2)) for k, (x, y) in enumerate(zip(xs, ys)))

    mean, sd, n = stats["FlexIP"]["area DINO-I"]
    assert n == 2 and mean == pytest.approx((staircase(0.8, 0.7, 0.3, 0.5) + staircase(0.8, 0.7, 0.32, 0.52)) / 2)
    assert stats["IP-Adapter"]["area DINO-I"][0] == pytest.approx(staircase(0.8, 0.6, 0.2, 0.4))
    assert sd > 0 and stats["IP-Adapter"]["area DINO-I"][1] == 0.0
    # FlexIP never goes down to IP-Adapter's scale-1 text (0.6): its least-text point (0.7, 0.5 / 0.52) stands in
    assert stats["FlexIP"]["DINO-I at the reference CLIP-T"][0] == pytest.approx(0.51)
    assert stats["IP-Adapter"]["DINO-I at the reference CLIP-T"][0] == pytest.approx(0.4)
    assert stats["FlexIP"]["DINO-I rho"][0] == pytest.approx(1.0) and stats["FlexIP"]["CLIP-T rho"][0] == pytest.approx(-1.0)
    assert stats["FlexIP"]["DINO-I largest_step_share"][0] == pytest.approx(0.1)
    assert stats["IP-Adapter"]["DINO-I control_range"][0] == pytest.approx(0.2)
    # defaults: FlexIP γ = 0.5 (0.75, 0.41), IP-Adapter scale 1 (0.6, 0.4): FlexIP wins text and DINO-I, CLIP-I and
    # identification tie (1.5 each): mRank (1 + 1.5 + 1 + 1.5) / 4 = 1.25 against 1.75
    table = method_table({"FlexIP": flexip, "IP-Adapter": ip})
    assert "| FlexIP | 1.25 | 0.7500 | 0.3000 | 0.4100 | 0.1000 |" in table
    assert "| IP-Adapter | 1.75 | 0.6000 | 0.3000 | 0.4000 | 0.1000 |" in table


def test_a_method_that_never_gets_the_reference_text_is_marked_not_reached(swept):
    from flexip_miniworld.compare import method_statistics, method_table

    flat = [0.1] * 11
    # IP-Adapter keeps text 0.80 → 0.79; FlexIP starts below it (0.78 → 0.70): no FlexIP point has CLIP-T 0.79
    groups = {
        "FlexIP": [swept("gamma", np.linspace(0.78, 0.7, 11), np.linspace(0.3, 0.5, 11), flat)],
        "IP-Adapter": [swept("scale", np.linspace(0.8, 0.79, 11), np.linspace(0.2, 0.25, 11), flat)],
    }
    assert np.isnan(method_statistics(groups)["FlexIP"]["DINO-I at the reference CLIP-T"][0])
    row = next(line for line in method_table(groups).splitlines() if line.startswith("| FlexIP | 1 |"))
    assert row.split(" | ")[4] == "not reached" and "nan" not in row
    # a second seed that starts at 0.80 gets there (DINO-I 0.32 at CLIP-T 0.79): the cell says over how many seeds
    groups["FlexIP"].append(swept("gamma", np.linspace(0.8, 0.7, 11), np.linspace(0.3, 0.5, 11), flat))
    row = next(line for line in method_table(groups).splitlines() if line.startswith("| FlexIP | 2 |"))
    assert row.split(" | ")[4] == "0.3200 ± 0.0000 (1 of 2 seeds reach it)"


def test_both_ends_table_reads_each_bar(swept):
    from flexip_miniworld.compare import both_ends_table

    # base CLIP-T 0.8, true renders identified 0.4, 20 identities (chance 0.05)
    weak = swept("gamma", np.linspace(0.8, 0.7, 11), np.linspace(0.3, 0.5, 11), [0.1] * 11)
    strong = swept("gamma", np.linspace(0.78, 0.7, 11), np.linspace(0.3, 0.5, 11), [0.2] * 11)
    flat = swept("scale", [0.72] * 11, np.linspace(0.3, 0.5, 11), [0.1] * 11)
    rows = both_ends_table({"weak": weak, "strong": strong, "flat": flat}).splitlines()
    assert rows[0].startswith("| run | identities | id. 0 / chance (≥ 3) | CLIP-T 0 / base (≥ 0.95) | CLIP-T falls |")
    assert rows[2] == "| weak | 0–19 | 2.00 | 1.00 | yes | yes | 0.25 | 3/5 |"
    assert rows[3] == "| strong | 0–19 | 4.00 | 0.97 | yes | yes | 0.50 | 5/5 |"
    assert rows[4] == "| flat | 0–19 | 2.00 | 0.90 | no | yes | 0.25 | 1/5 |"


def test_dial_table_gives_both_ends_of_every_run(swept):
    from flexip_miniworld.compare import dial_table

    # base CLIP-T 0.8, true renders identified 0.4, 20 identities (chance 0.05)
    rising = swept("gamma", np.linspace(0.78, 0.7, 11), np.linspace(0.3, 0.5, 11), np.linspace(0.1, 0.3, 11))
    scale = swept("scale", np.linspace(0.8, 0.76, 11), [0.2, 0.2, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.4], [0.05] * 11, first=20)
    rows = dial_table({"flexip": rising, "ipa": scale}).splitlines()
    assert rows[0].startswith("| run | identities | base CLIP-T | CLIP-T 0 → 1 |") and len(rows) == 4
    assert (
        rows[2]
        == "| flexip | 0–19 | 0.8000 | 0.7800 → 0.7000 | 0.3000 → 0.5000 | 0.100 → 0.300 | +1.000 / -1.000 | 0.100 / 0.100 | 2.000 | 0.975 | 0.750 |"
    )
    # DINO-I ties (ranks 1.5, 6.5, 11: ρ = √(67.5 / 110)) and jumps by half its range at the first and last steps;
    # identification stays at chance
    assert (
        rows[3]
        == "| ipa | 20–39 | 0.8000 | 0.8000 → 0.7600 | 0.2000 → 0.4000 | 0.050 → 0.050 | +0.783 / -1.000 | 0.500 / 0.100 | 1.000 | 1.000 | 0.125 |"
    )
