"""The adapter stage runs the project's own trainer in process (no parallel trainer, no subprocess) and
resumes it; the loss curve continues across sittings."""

from __future__ import annotations

from flexip_miniworld.stack.adapter import CONFIG, command_line, overrides


def test_stage_config_ships_inside_the_package_and_loads():
    from flexip.training import load_config

    assert CONFIG.is_file() and CONFIG.parent.parent.name == "flexip_miniworld"
    config = load_config(CONFIG, overrides(CONFIG.parent, 7, "cpu"))
    assert config.optim.max_steps == 7 and config.runtime.device == "cpu"


def test_command_line_is_the_equivalent_flexip_train(tmp_path):
    line = command_line(tmp_path, 7, "cuda:1", resume=True)
    assert line.startswith("flexip train --config src/flexip_miniworld/configs/adapter.yaml ")
    assert f"model.base={tmp_path / 'base'}" in line and "optim.max_steps=7" in line and "runtime.device=cuda" in line
    assert line.endswith("--resume latest")


def test_adapter_stage_trains_and_resumes(tiny_stack, tiny):
    from flexip.models.adapter import FlexIPAdapter
    from flexip_miniworld.stack.adapter import train_adapter

    work, _ = tiny_stack
    _, budget = tiny
    extra = (
        "optim.batch_size=2",
        "logging.log_every=1",
        "logging.checkpoint_every=1",
        "data.mix={image: 1.0, video: 1.0}",
        "runtime.seed=7",
    )
    first = train_adapter(work, work / "adapter", budget(1), "cpu", False, lambda m: None, extra=extra)
    second = train_adapter(work, work / "adapter", budget(2), "cpu", True, lambda m: None, extra=extra)
    assert first["steps"] == 1 and second["steps"] == 2
    assert first["seed"] == second["seed"] == 7  # the manifest records the seed trained with
    assert [s for s, _ in second["losses"]] == [1, 2]  # the second sitting continued at step 2
    assert second["losses"][0] == first["losses"][0]  # the first sitting's curve came back from the checkpoint
    FlexIPAdapter.from_pretrained(str(work / "adapter" / "run" / "adapter"))


def test_ship_writes_a_complete_preset_outside_the_package(tiny_stack, tiny, tmp_path):
    """`ship` builds the preset aside (default WORKDIR/preset, never the installed package): every file hashed
    in its manifest, the demo as data, the adapter naming its encoders inside the preset; it loads."""
    import json
    import shutil

    from flexip.hashing import file_sha256
    from flexip.loading import load_components
    from flexip.models.adapter import FlexIPAdapter
    from flexip.pipelines import FlexIPPipeline
    from flexip_miniworld.stack.adapter import train_adapter
    from flexip_miniworld.stack.ship import ship

    work, _ = tiny_stack
    _, budget = tiny
    if not (work / "adapter" / "run" / "adapter").is_dir():
        train_adapter(
            work,
            work / "adapter",
            budget(1),
            "cpu",
            False,
            lambda m: None,
            extra=("optim.batch_size=2", "data.mix={image: 1.0, video: 1.0}"),
        )
    for stage, source in (("eval_clip", "clip"), ("eval_dino", "dino")):  # stand-ins for the separately trained evaluation encoders
        if not (work / stage / "model").is_dir():
            shutil.copytree(work / source / "model", work / stage / "model")
    summary = ship(work, tmp_path / "preset", lambda m: None)
    preset = tmp_path / "preset"
    manifest = json.loads((preset / "manifest.json").read_text())
    assert summary["files"] == len(manifest["files_sha256"]) and all(file_sha256(preset / n) == d for n, d in manifest["files_sha256"].items())
    demo = json.loads((preset / "demo.json").read_text())
    assert len(demo["subjects"]) == 2 and all((preset / f).is_file() for files in demo["subjects"].values() for f in files)
    config = json.loads((preset / "adapter" / "config.json").read_text())
    assert (config["image_encoder"], config["dino_encoder"]) == ("miniworld:image_encoder", "miniworld:dino")
    components = load_components(str(preset / "base"), str(preset / "image_encoder"), str(preset / "dino"))
    pipe = FlexIPPipeline(**components, adapter=FlexIPAdapter.from_pretrained(str(preset / "adapter")))
    assert pipe("a bird", [], adapter_scale=0.0, num_inference_steps=1, output_type="np").images.shape[0] == 1
