"""`flexip miniworld evidence-tables`: every comparison of the report rebuilt from the records, all seeds in."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from flexip.errors import FlexIPInputError
from flexip_miniworld.cli import miniworld_group


def _record(folder, split, result):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{split}.json").write_text(json.dumps(result))


def test_each_comparison_takes_every_seed_of_its_arms(tmp_path, swept):
    records, plots = tmp_path / "records", tmp_path / "img"
    plots.mkdir()
    flexip = [swept("gamma", np.linspace(0.8, 0.7, 11), np.linspace(0.3, 0.5, 11), [0.1] * 11, seed_shift=s) for s in (0.0, 0.02)]
    for seed, result in zip((51, 53), flexip):  # seeds need not be consecutive
        _record(records / f"flexip-s{seed}", "report", result)
    _record(records / "ip-adapter-full-s51", "report", swept("scale", np.linspace(0.8, 0.75, 11), np.linspace(0.2, 0.4, 11), [0.05] * 11))
    _record(records / "uniform-gate-s52", "report", swept("gamma", np.linspace(0.8, 0.72, 11), np.linspace(0.3, 0.45, 11), [0.1] * 11))
    _record(records / "pers-full-rate-s51", "report", flexip[0])  # a recipe's report record: not compared before the choice
    logged = []
    report_md = tmp_path / "evidence.md"
    marked = "<!-- begin:evidence-{0} -->\nstale {0}\n<!-- end:evidence-{0} -->"
    report_md.write_text(f"intro\n{marked.format('frontier')}\nbetween\n{marked.format('runs')}\n{marked.format('recipes')}\nend\n")
    out = CliRunner().invoke(miniworld_group, ["evidence-tables", str(records), "--plots", str(plots), "--report", str(report_md)])
    assert out.exit_code == 0, out.output
    filled = report_md.read_text()
    assert filled.startswith("intro\n<!-- begin:evidence-frontier -->\n| method | n | identities |") and "\nbetween\n" in filled
    assert "stale frontier" not in filled and "stale runs" not in filled and "| flexip-s53 (report) | 0–19 |" in filled
    assert "stale recipes" in filled and filled.endswith("end\n")  # no recipe records on validation: that block is left
    out = CliRunner().invoke(miniworld_group, ["evidence-tables", str(records), "--report", str(tmp_path / "none.md")])
    assert out.exit_code != 0 and "--report" in str(out.exception)
    report = (records / "report.md").read_text()
    assert "| FlexIP #1 | 0–19 |" in report and "| FlexIP #2 | 0–19 |" in report and "| IP-Adapter (full) | 0–19 |" in report
    assert "| FlexIP | 2 |" in report and "IP-Adapter (image)" not in report  # an arm without records is left out
    ablations = (records / "ablations_report.md").read_text()
    assert "| uniform-gate | 1 |" in ablations and "IP-Adapter (full)" not in ablations
    assert not (records / "recipes_report.md").exists() and not (records / "validation.md").exists()
    assert {p.name for p in plots.iterdir()} == {"evidence_frontier_report.png", "evidence_ablations_report.png"}
    summary = (records / "summary.md").read_text().splitlines()
    rows = [line.split(" | ") for line in summary if line.startswith("| ") and not line.startswith("| method")]
    flexip_row, ipa_row, ablation_row, uniform_row = rows
    # FlexIP: DINO-I 0.3 → 0.5 in both seeds (+0.200, sd 0), steps of 0.1 of the range; IP-Adapter 0.2 → 0.4, one seed
    assert flexip_row[:3] == ["| FlexIP", "2", "0–19"] and flexip_row[5:7] == ["0.100 ± 0.000 / 0.100 ± 0.000", "+0.200 ± 0.000"]
    assert ipa_row[:3] == ["| IP-Adapter (full)", "1", "0–19"] and ipa_row[6] == "+0.200" and flexip_row[-1].startswith("**")
    # the ablations' rows give FlexIP's control range over each one's: 0.200 / 0.150
    assert ablation_row[0] == "| FlexIP" and uniform_row[:3] == ["| uniform-gate", "1", "0–19"] and uniform_row[7] == "1.33×"

    from flexip_miniworld.evidence_tables import write_comparisons

    (records / "ip-adapter-full-s51" / "report.json").unlink()
    (records / "uniform-gate-s52" / "report.json").unlink()
    assert write_comparisons(records, None, log=logged.append) == []  # FlexIP alone compares with nothing
    assert any("fewer than two methods" in line for line in logged)
    with pytest.raises(FlexIPInputError, match="not a folder of evidence records"):
        write_comparisons(tmp_path / "missing")


def test_rule_two_orders_by_targets_then_area_and_needs_two_seeds(swept):
    from flexip_miniworld.evidence_tables import rule2_table

    falling, rising = np.linspace(0.8, 0.7, 11), np.linspace(0.3, 0.5, 11)
    # the shipped recipe: identification at dial 0 is chance (1× < 3×), the other three targets are met
    shipped = [swept("gamma", falling, rising, np.linspace(0.05, 0.2, 11), seed_shift=s) for s in (0.0, 0.01)]
    # keeps the subject at dial 0 (0.2 = 4× chance) with a smaller area: criterion 1 decides before the area
    both_ends = [swept("gamma", falling, rising - 0.05, [0.2] * 11, seed_shift=s) for s in (0.0, 0.01)]
    lone = [swept("gamma", falling, rising + 0.1, [0.3] * 11)]  # better at everything, but one seed
    table = rule2_table({"FlexIP": shipped, "both-ends": both_ends, "lone": lone})
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in table.splitlines() if line.startswith("| ") and "---" not in line}
    assert rows["FlexIP"][1:3] == ["2", "3"] and rows["both-ends"][1:3] == ["2", "4"] and rows["lone"][-1] == "no (one seed) |"
    assert float(rows["both-ends"][3]) < float(rows["FlexIP"][3])
    assert table.endswith("By rule 2 **both-ends** replaces the shipped recipe (FlexIP): order both-ends > FlexIP.")
    # a tie on the targets goes to the larger area; the shipped recipe keeps its place when it is ahead
    wider = [swept("gamma", falling, rising + 0.05, np.linspace(0.05, 0.2, 11), seed_shift=s) for s in (0.0, 0.01)]
    assert "**wider** replaces" in rule2_table({"FlexIP": shipped, "wider": wider})
    narrower = [swept("gamma", falling, rising - 0.05, np.linspace(0.05, 0.2, 11), seed_shift=s) for s in (0.0, 0.01)]
    assert rule2_table({"FlexIP": shipped, "narrower": narrower}).endswith("the shipped recipe (FlexIP) stays: order FlexIP > narrower.")
    assert rule2_table({"FlexIP": shipped[:1], "lone": lone}).endswith("No candidate has two seeds yet.")
