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
    from flexip_miniworld.stack.adapter import train_adapter
    from flexip.models.adapter import FlexIPAdapter

    work, _ = tiny_stack
    _, budget = tiny
    extra = ("optim.batch_size=2", "logging.log_every=1", "logging.checkpoint_every=1", "data.mix={image: 1.0, video: 1.0}", "runtime.seed=7")
    first = train_adapter(work, work / "adapter", budget(1), "cpu", False, lambda m: None, extra=extra)
    second = train_adapter(work, work / "adapter", budget(2), "cpu", True, lambda m: None, extra=extra)
    assert first["steps"] == 1 and second["steps"] == 2
    assert first["seed"] == second["seed"] == 7  # the manifest records the seed trained with
    assert [s for s, _ in second["losses"]] == [1, 2]  # the second sitting continued at step 2
    assert second["losses"][0] == first["losses"][0]  # the first sitting's curve came back from the checkpoint
    FlexIPAdapter.from_pretrained(str(work / "adapter" / "run" / "adapter"))
