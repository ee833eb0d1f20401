"""Issue 14's arms are valid configs that differ from the shipped adapter config only in what they are about."""

from __future__ import annotations

import pytest

from flexip.errors import FlexIPInputError
from flexip.training import load_config
from flexip_miniworld.evidence import ARMS, method_of, parse_arms
from flexip_miniworld.stack.adapter import CONFIG


def _config(arm: str):
    return load_config(CONFIG, list(ARMS[arm][1]))


def test_every_arm_is_a_valid_config_on_the_shipped_budget():
    shipped = load_config(CONFIG).to_dict()
    for arm in ARMS:
        config = _config(arm).to_dict()
        # same budget everywhere: steps, batch, optimizer, resolution
        for key in ("max_steps", "batch_size", "lr", "lr_schedule", "warmup_steps", "weight_decay", "grad_clip"):
            assert config["optim"][key] == shipped["optim"][key], (arm, key)
        assert config["data"]["resolution"] == shipped["data"]["resolution"] == 32
        assert config["model"]["method"] == method_of(arm)


def test_the_arms_change_what_they_name():
    shipped = load_config(CONFIG).to_dict()  # build v14: the uniform gate, rule 2's choice
    assert shipped["gate"]["image_range"] == shipped["gate"]["video_range"] == [0.0, 1.0]
    flexip = _config("flexip").to_dict()  # the paper's modality-aware ranges, named by the arm itself
    assert flexip["gate"] == {**shipped["gate"], "image_range": [0.5, 1.0], "video_range": [0.0, 0.5]}
    assert {k: v for k, v in flexip.items() if k != "gate"} == {k: v for k, v in shipped.items() if k != "gate"}
    assert _config("uniform-gate").to_dict() == shipped
    uniform_pers = {**shipped, "optim": {**shipped["optim"], "personalization_lr_scale": 0.3}}
    assert _config("uniform-pers-0.3").to_dict() == uniform_pers
    # pers-dino is uniform-pers-0.3 with one change
    adapter = {**shipped["model"]["adapter"], "personalization_dino": True}
    assert _config("pers-dino").to_dict() == {**uniform_pers, "model": {**shipped["model"], "adapter": adapter}}
    # pers-dino-aware is pers-dino on the modality-aware ranges, i.e. flexip with two changes
    assert _config("pers-dino-aware").to_dict() == {
        **flexip,
        "optim": {**flexip["optim"], "personalization_lr_scale": 0.3},
        "model": {**shipped["model"], "adapter": adapter},
    }
    for arm in ("image-only", "no-dino", "no-personalization", "pers-full-rate", "pers-copy", "pers-dino-aware"):  # ablations of the paper's recipe
        assert _config(arm).gate.ranges() == {"image": (0.5, 1.0), "video": (0.0, 0.5)}, arm
    assert _config("ip-adapter-image").data.mix == {"image": 1.0, "video": 0.0}
    assert _config("ip-adapter-full").data.mix == load_config(CONFIG).data.mix
    assert _config("uniform-gate").gate.ranges() == {"image": (0.0, 1.0), "video": (0.0, 1.0)}
    assert _config("no-dino").model.adapter["num_queries"] == 0
    assert _config("no-personalization").optim.personalization_lr_scale == 0.0


def test_unknown_arms_are_named():
    assert parse_arms("flexip, no-dino") == ["flexip", "no-dino"]
    with pytest.raises(FlexIPInputError, match="unknown arm.*ip_adapter"):
        parse_arms("flexip,ip_adapter")


def test_collect_copies_finished_runs_only(tmp_path, swept):
    import json

    from flexip_miniworld.evidence import collect

    evaluations = {
        split: swept("gamma", [0.8 - 0.01 * k for k in range(11)], [0.3 + 0.02 * k for k in range(11)], [0.1] * 11, first=first)
        for split, first in (("validation", 20), ("report", 0))
    }
    for name, finished in (("flexip-s52", True), ("ip-adapter-image-s51", False), ("ip-adapter-full-s51", True)):
        run = tmp_path / "work" / "arms" / name
        for split in ("validation", "report") if name == "flexip-s52" or not finished else ():
            (run / split).mkdir(parents=True)
            (run / split / "evaluation.json").write_text(json.dumps(evaluations[split]))
        (run / "adapter").mkdir(parents=True)
        (run / "adapter" / "weights.safetensors").write_bytes(b"w")
        if finished:
            (run / "done.json").write_text(json.dumps({"arm": "flexip", "seed": 52}))
    assert collect(tmp_path / "work", tmp_path / "out", log=lambda m: None) == ["flexip-s52", "ip-adapter-full-s51"]
    trained_only = tmp_path / "out" / "ip-adapter-full-s51"  # trained, not yet evaluated: its adapter is kept
    assert (trained_only / "adapter" / "weights.safetensors").is_file() and not (trained_only / "report.json").exists()
    out = tmp_path / "out" / "flexip-s52"
    assert json.loads((out / "report.json").read_text()) == json.loads(json.dumps(evaluations["report"]))
    assert (out / "adapter" / "weights.safetensors").read_bytes() == b"w" and (out / "done.json").is_file()
    assert not (tmp_path / "out" / "ip-adapter-image-s51").exists()  # still training: nothing to record
    table = (tmp_path / "out" / "runs.md").read_text().splitlines()  # every evaluated record, validation first
    rows = [line for line in table if line.startswith("| flexip") or line.startswith("| ip-adapter")]
    assert [row.split(" | ")[:2] for row in rows] == [["| flexip-s52 (validation)", "20–39"], ["| flexip-s52 (report)", "0–19"]]
    assert "| 0.8000 → 0.7000 | 0.3000 → 0.5000 |" in rows[0]


def test_restored_runs_collect_back_to_the_same_records(tmp_path, swept):
    """A fresh checkout restores the collected runs (no checkpoints there), evaluates the one that lacked an
    evaluation, and collects again: nothing recorded before is lost, the loss curve included."""
    import json

    from flexip_miniworld.evidence import collect, restore

    records = tmp_path / "records"
    evaluation = swept("gamma", [0.8 - 0.01 * k for k in range(11)], [0.3 + 0.02 * k for k in range(11)], [0.1] * 11, first=20)
    for name, splits in (("flexip-s52", ("validation", "report")), ("uniform-gate-s52", ())):
        (records / name / "adapter").mkdir(parents=True)
        (records / name / "adapter" / "weights.safetensors").write_bytes(name.encode())
        (records / name / "done.json").write_text(json.dumps({"arm": name[:-4], "seed": 52}))
        (records / name / "loss_curve.json").write_text(json.dumps([[10, 0.5], [20, 0.4]]))
        for split in splits:
            (records / name / f"{split}.json").write_text(json.dumps(evaluation))
    (records / "no-dino-s52").mkdir()  # not finished: not restored
    work = tmp_path / "work"
    assert restore(records, work, log=lambda m: None) == ["flexip-s52", "uniform-gate-s52"]
    assert (work / "arms" / "flexip-s52" / "report" / "evaluation.json").is_file()
    assert not (work / "arms" / "uniform-gate-s52" / "validation").exists() and not (work / "arms" / "no-dino-s52").exists()
    (work / "arms" / "uniform-gate-s52" / "validation").mkdir()  # evaluated after the restore
    (work / "arms" / "uniform-gate-s52" / "validation" / "evaluation.json").write_text(json.dumps(evaluation))
    assert restore(records, work, log=lambda m: None) == []  # restored runs are left as they are
    assert collect(work, records, log=lambda m: None) == ["flexip-s52", "uniform-gate-s52"]
    for name in ("flexip-s52", "uniform-gate-s52"):
        assert json.loads((records / name / "loss_curve.json").read_text()) == [[10, 0.5], [20, 0.4]]
        assert (records / name / "adapter" / "weights.safetensors").read_bytes() == name.encode()
    assert (records / "uniform-gate-s52" / "validation.json").is_file() and not (records / "uniform-gate-s52" / "report.json").exists()
    assert json.loads((records / "flexip-s52" / "report.json").read_text()) == json.loads(json.dumps(evaluation))


def test_a_missing_restore_folder_is_named_before_any_work(tmp_path):
    from click.testing import CliRunner

    from flexip_miniworld.cli import miniworld_group

    bad = CliRunner().invoke(miniworld_group, ["evidence", str(tmp_path / "work"), "--restore", str(tmp_path / "nowhere")])
    assert isinstance(bad.exception, FlexIPInputError) and "folder of collected runs" in str(bad.exception)
    assert not (tmp_path / "work").exists()  # nothing rendered, nothing copied
