"""Rule 2's choice goes into a preset: the new adapter in place, the old one kept in its record, the manifest true."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from flexip.errors import FlexIPInputError
from flexip.hashing import file_sha256

RECORDS = Path(__file__).resolve().parents[2] / "docs" / "results" / "evidence"


@pytest.fixture
def world(tmp_path):
    """A preset folder whose adapter is flexip-s51's (a v13 manifest: no adapter_recipe), a trained uniform-gate
    run beside flexip-s51's run folder, and the records of both."""
    preset = tmp_path / "preset"
    shutil.copytree(RECORDS / "flexip-s52" / "adapter", preset / "adapter")  # any FlexIP adapter will do as the old one
    (preset / "notes.txt").write_text("another file of the preset")
    manifest = {"name": "t", "stages": {"adapter": {"seed": 51, "steps": 4000, "data_hash": "d", "seconds": 9.0, "wall_seconds_this_sitting": 1.0}}}
    (preset / "manifest.json").write_text(json.dumps(manifest))
    done = {"arm": "uniform-gate", "seed": 51, "steps": 4000, "seconds_last_sitting": 12.5, "overrides": ["gate.image_range=[0.0, 1.0]"]}
    run = tmp_path / "work" / "arms" / "uniform-gate-s51"
    shutil.copytree(RECORDS / "uniform-gate-s51" / "adapter", run / "adapter")
    (run / "done.json").write_text(json.dumps(done))
    old_done = {"arm": "flexip", "seed": 51, "steps": 4000, "adapter": "preset/adapter", "overrides": []}
    records = tmp_path / "records"
    for folder in (records / "flexip-s51", tmp_path / "work" / "arms" / "flexip-s51", records / "uniform-gate-s51"):
        folder.mkdir(parents=True)
    for folder in (records / "flexip-s51", tmp_path / "work" / "arms" / "flexip-s51"):
        (folder / "done.json").write_text(json.dumps(old_done))
    (records / "uniform-gate-s51" / "loss_curve.json").write_text(json.dumps([[25, 0.3], [4000, 0.16013]]))
    return preset, run, records


def test_the_chosen_run_replaces_the_adapter_and_the_old_one_is_kept(world):
    from flexip.models.adapter import FlexIPAdapter
    from flexip_miniworld.evidence_ship import ship_recipe, shipped_run

    preset, run, records = world
    old_weights = file_sha256(preset / "adapter" / "flexip_adapter.safetensors")
    assert shipped_run(preset) == ("flexip", 51)
    ship_recipe(run, preset, records, "rule 2", log=lambda m: None)
    assert shipped_run(preset) == ("uniform-gate", 51)
    trained = FlexIPAdapter.from_pretrained(str(run / "adapter")).state_dict()
    shipped = FlexIPAdapter.from_pretrained(str(preset / "adapter"))
    assert shipped.config.image_encoder == "miniworld:image_encoder" and shipped.config.dino_encoder == "miniworld:dino"
    assert all((shipped.state_dict()[k] == v).all() for k, v in trained.items())
    for kept in (records / "flexip-s51", run.parent / "flexip-s51"):
        assert file_sha256(kept / "adapter" / "flexip_adapter.safetensors") == old_weights
        done = json.loads((kept / "done.json").read_text())
        assert "adapter" not in done and done["overrides"] == ["gate.image_range=[0.5, 1.0]", "gate.video_range=[0.0, 0.5]"]
    manifest = json.loads((preset / "manifest.json").read_text())
    assert manifest["files_sha256"] == {name: file_sha256(preset / name) for name in manifest["files_sha256"]}
    assert set(manifest["files_sha256"]) == {"adapter/config.json", "adapter/flexip_adapter.safetensors", "notes.txt"}
    assert manifest["total_bytes"] == sum((preset / name).stat().st_size for name in manifest["files_sha256"])
    stage = manifest["stages"]["adapter"]
    assert stage["command"] == "flexip miniworld evidence WORKDIR --arms uniform-gate --seeds 51" and stage["final_loss"] == 0.1601
    assert stage["data_hash"] == "d" and "wall_seconds_this_sitting" not in stage and stage["seconds_last_sitting"] == 12.5 and "seconds" not in stage
    assert manifest["adapter_recipe"]["replaces"] == "flexip-s51" and manifest["adapter_recipe"]["chosen_by"] == "rule 2"
    with pytest.raises(FlexIPInputError, match="already"):
        ship_recipe(run, preset, records, "rule 2", log=lambda m: None)


def test_only_a_trained_flexip_run_can_be_shipped_as_the_recipe(world, tmp_path):
    from flexip_miniworld.evidence_ship import ship_recipe

    preset, run, records = world
    before = (preset / "manifest.json").read_text()
    ipa = tmp_path / "work" / "arms" / "ip-adapter-full-s51"
    ipa.mkdir()
    (ipa / "done.json").write_text(json.dumps({"arm": "ip-adapter-full", "seed": 51}))
    with pytest.raises(FlexIPInputError, match="not a FlexIP adapter"):
        ship_recipe(ipa, preset, records, "rule 2")
    shutil.rmtree(run / "adapter")
    with pytest.raises(FlexIPInputError, match="no trained adapter"):
        ship_recipe(run, preset, records, "rule 2")
    assert (preset / "manifest.json").read_text() == before


def test_a_recipe_that_would_overfill_the_preset_is_refused_before_anything_changes(world, monkeypatch):
    import flexip_miniworld.stack.ship as ship
    from flexip_miniworld.evidence_ship import ship_recipe

    preset, run, records = world

    def contents(folder):
        return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    before, records_before = contents(preset), contents(records)
    monkeypatch.setattr(ship, "SIZE_LIMIT_BYTES", 2**20)  # the adapter alone is 1.8 MiB
    with pytest.raises(FlexIPInputError, match="with the new adapter/ the preset would be 1.8 MiB"):
        ship_recipe(run, preset, records, "rule 2", log=lambda m: None)
    assert contents(preset) == before and contents(records) == records_before  # nothing swapped, nothing retired
