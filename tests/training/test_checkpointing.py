"""Checkpoint folders: atomic publication, leftovers ignored and cleaned, rotation, pickle-free state."""

from __future__ import annotations

import pytest
import torch

from flexip.errors import CheckpointError
from flexip.training import checkpointing as ckpt


def fake_checkpoint(folder):
    (folder / ckpt.STATE_DIR).mkdir()
    ckpt.save_trainer_state(folder / ckpt.STATE_DIR, {"step": 1})


def test_write_is_atomic_and_rotates(tmp_path):
    for step in (1, 2, 3, 4):
        ckpt.write_checkpoint(tmp_path, step, fake_checkpoint, keep=2)
    assert [step for step, _ in ckpt.list_checkpoints(tmp_path)] == [3, 4]
    assert ckpt.latest_checkpoint(tmp_path).name == "step-000004"
    # a write that dies half-way leaves a .tmp folder: never listed, never "latest", cleaned on demand
    with pytest.raises(RuntimeError):
        ckpt.write_checkpoint(tmp_path, 5, lambda folder: (fake_checkpoint(folder), (_ for _ in ()).throw(RuntimeError("killed"))))
    assert (ckpt.checkpoints_root(tmp_path) / "step-000005.tmp").is_dir()
    assert ckpt.latest_checkpoint(tmp_path).name == "step-000004"
    assert [p.name for p in ckpt.remove_partial(tmp_path)] == ["step-000005.tmp"]
    # an incomplete folder under the final name (no trainer state) is not a checkpoint either
    (ckpt.checkpoints_root(tmp_path) / "step-000009").mkdir()
    assert ckpt.resolve_resume(tmp_path, "latest").name == "step-000004"
    with pytest.raises(CheckpointError, match="not a complete training checkpoint"):
        ckpt.resolve_resume(tmp_path, str(ckpt.checkpoints_root(tmp_path) / "step-000009"))
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        ckpt.resolve_resume(tmp_path, str(tmp_path / "nowhere"))
    assert ckpt.resolve_resume(tmp_path / "empty", "latest") is None
    # the same step written again replaces the old folder
    ckpt.write_checkpoint(tmp_path, 4, fake_checkpoint, keep=None)
    assert [step for step, _ in ckpt.list_checkpoints(tmp_path)] == [3, 4]


def test_state_tree_round_trip_without_pickle(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.8, 0.9))
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    state = optimizer.state_dict()
    ckpt.save_state_tree(state, tmp_path, "optimizer")
    loaded = ckpt.load_state_tree(tmp_path, "optimizer")
    assert loaded["param_groups"][0]["betas"] == (0.8, 0.9)
    assert set(loaded["state"]) == {0, 1}  # integer keys survive JSON
    for index in (0, 1):
        for key, value in state["state"][index].items():
            assert torch.equal(loaded["state"][index][key], value)
    fresh = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters(), lr=1e-3)
    fresh.load_state_dict(loaded)
    with pytest.raises(CheckpointError, match="lacks"):
        ckpt.load_state_tree(tmp_path, "ema")
