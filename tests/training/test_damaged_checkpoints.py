"""Damaged checkpoints: `--resume latest` passes over a damaged newest checkpoint (truncated or empty
safetensors, missing files, bad or empty JSON) for the newest intact one and says which and why; naming a
damaged one is a clear error; a rotation killed mid-delete leaves nothing listed that is half there."""

from __future__ import annotations

import json

import pytest
import torch

from flexip.errors import CheckpointError
from flexip.training import checkpointing as ckpt


def write_real_looking_checkpoint(folder, step: int = 1):
    """What the trainer writes: an adapter folder and a training_state with state trees."""
    from safetensors.torch import save_file

    (folder / "adapter").mkdir()
    (folder / "adapter" / "config.json").write_text(json.dumps({"_class_name": "FlexIPAdapter"}))
    save_file({"w": torch.randn(64)}, str(folder / "adapter" / "flexip_adapter.safetensors"))
    state = folder / ckpt.STATE_DIR
    state.mkdir()
    ckpt.save_state_tree({"state": {0: {"exp_avg": torch.randn(64)}}, "param_groups": [{"lr": 1e-3}]}, state, "optimizer")
    ckpt.save_trainer_state(state, {"step": step})


@pytest.fixture()
def three_checkpoints(tmp_path):
    for step in (1, 2, 3):
        ckpt.write_checkpoint(tmp_path, step, lambda folder, step=step: write_real_looking_checkpoint(folder, step), keep=3)
    return tmp_path, ckpt.checkpoints_root(tmp_path) / "step-000003"


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


DAMAGES = {
    "truncated adapter weights": (
        lambda c: truncate(c / "adapter" / "flexip_adapter.safetensors"),
        "flexip_adapter.safetensors is damaged",
    ),
    "empty adapter weights": (
        lambda c: (c / "adapter" / "flexip_adapter.safetensors").write_bytes(b""),
        "flexip_adapter.safetensors is damaged",
    ),
    "deleted adapter weights": (
        lambda c: (c / "adapter" / "flexip_adapter.safetensors").unlink(),
        "adapter/ lacks flexip_adapter.safetensors",
    ),
    "truncated optimizer tensors": (lambda c: truncate(c / ckpt.STATE_DIR / "optimizer.safetensors"), "optimizer.safetensors is damaged"),
    "optimizer tensors missing": (lambda c: (c / ckpt.STATE_DIR / "optimizer.safetensors").unlink(), "has no optimizer.safetensors"),
    "bad JSON trainer state": (lambda c: (c / ckpt.STATE_DIR / ckpt.STATE_FILE).write_text("{not json"), "trainer_state.json is damaged"),
    "empty trainer state": (lambda c: (c / ckpt.STATE_DIR / ckpt.STATE_FILE).write_text(""), "trainer_state.json is damaged"),
    "trainer state without a step": (lambda c: (c / ckpt.STATE_DIR / ckpt.STATE_FILE).write_text("{}"), "holds no step"),
    "adapter config not UTF-8": (lambda c: (c / "adapter" / "config.json").write_bytes(b"\xff\xfe{}"), "config.json is damaged"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_resume_latest_skips_a_damaged_newest_checkpoint_and_says_why(three_checkpoints, damage):
    output_dir, newest = three_checkpoints
    harm, reason = DAMAGES[damage]
    assert ckpt.checkpoint_problem(newest) is None
    harm(newest)
    assert reason in ckpt.checkpoint_problem(newest)
    warnings = []
    assert ckpt.resolve_resume(output_dir, "latest", warn=warnings.append).name == "step-000002"
    assert len(warnings) == 1 and "step-000003" in warnings[0] and reason in warnings[0] and "resuming from step-000002" in warnings[0]
    with pytest.raises(CheckpointError, match="is damaged"):
        ckpt.resolve_resume(output_dir, str(newest))


def test_every_checkpoint_damaged_is_an_error_not_a_fresh_start(three_checkpoints):
    output_dir, _ = three_checkpoints
    for _, path in ckpt.list_checkpoints(output_dir):
        (path / ckpt.STATE_DIR / ckpt.STATE_FILE).write_text("")
    with pytest.raises(CheckpointError, match="every checkpoint .* is damaged"):
        ckpt.resolve_resume(output_dir, "latest")


def test_a_rotation_killed_mid_delete_leaves_no_half_checkpoint_listed(three_checkpoints):
    output_dir, _ = three_checkpoints
    root = ckpt.checkpoints_root(output_dir)
    # what a kill inside rotate_checkpoints leaves: the retired folder, renamed first, then partly deleted
    retired = root / "step-000001.old"
    (root / "step-000001").rename(retired)
    (retired / "adapter" / "config.json").unlink()
    assert [step for step, _ in ckpt.list_checkpoints(output_dir)] == [2, 3]
    assert retired in ckpt.remove_partial(output_dir) and not retired.exists()


def test_rotation_renames_before_deleting(three_checkpoints, monkeypatch):
    output_dir, _ = three_checkpoints
    seen = []
    real_rmtree = ckpt.shutil.rmtree

    def rmtree(path, *args, **kwargs):
        seen.append(path.name)
        if path.name.endswith(".old"):
            raise KeyboardInterrupt  # killed during the delete
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(ckpt.shutil, "rmtree", rmtree)
    with pytest.raises(KeyboardInterrupt):
        ckpt.rotate_checkpoints(output_dir, keep=2)
    monkeypatch.undo()
    assert seen == ["step-000001.old"]
    assert [step for step, _ in ckpt.list_checkpoints(output_dir)] == [2, 3]


def test_an_intact_old_copy_of_a_rewritten_step_is_put_back(three_checkpoints):
    """A kill between the two renames of rewriting step 3 leaves only step-000003.old: it is restored."""
    output_dir, newest = three_checkpoints
    newest.rename(newest.with_name(newest.name + ".old"))
    ckpt.remove_partial(output_dir)
    assert ckpt.latest_checkpoint(output_dir) == newest
