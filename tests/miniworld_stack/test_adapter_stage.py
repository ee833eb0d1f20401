"""The adapter stage calls the project's own `flexip train` (no parallel trainer) and resumes it."""

from __future__ import annotations

from flexip_miniworld.stack.adapter import read_losses, train_command


def test_train_command_is_flexip_train(tmp_path):
    command = train_command(tmp_path, 7, "cpu", resume=True)
    assert command[1:4] == ["-m", "flexip.cli.main", "train"]
    assert f"model.base={tmp_path / 'base'}" in command and "optim.max_steps=7" in command
    assert command[-2:] == ["--resume", "latest"]


def test_read_losses(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("training x\nstep 25: image 0.5 video 0.7 loss 0.6000, lr 1e-3, skipped: none\nstep 50: loss 0.5, lr 1e-3\n")
    assert read_losses(log) == [[25, 0.6], [50, 0.5]]


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
    FlexIPAdapter.from_pretrained(str(work / "adapter" / "run" / "adapter"))
