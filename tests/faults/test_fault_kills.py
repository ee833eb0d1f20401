"""Real SIGKILLs: `flexip train` runs in a child process on the tiny-random stack (a checkpoint every step, two
kept) and is killed by PID in the middle of a checkpoint write, of a rotation and of a training step. After
each kill no damaged checkpoint is listed, and `--resume latest` finishes with adapter weights bit-identical
to an uninterrupted run. Then the same from the command line with a damaged newest checkpoint: `--resume
latest` warns and falls back; `--resume` naming it is one error line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import load_file

from flexip.cli.main import main
from flexip.models.adapter import WEIGHTS_NAME
from flexip.training import checkpointing as ckpt

from .checks import assert_cli_outcome, partial_files, reset_accelerate

MAX_STEPS = 5
#: where each child is stopped (see paused_cli.py), and what a kill there leaves besides the listed checkpoints
KILLS = {
    "mid-checkpoint-write": ("state-tree:3", "step-000003.tmp"),  # checkpoint 3 half written
    "mid-rotation": ("rotation:1", "step-000001.old"),  # checkpoint 3 written, checkpoint 1 being deleted
    "mid-step": ("step:4", None),  # checkpoints 2 and 3 kept, step 4 half done
}
PAUSED_CLI = Path(__file__).with_name("paused_cli.py")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    lines = []
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / f"img{i}.png")
        lines.append(json.dumps({"modality": "image", "image": f"img{i}.png", "caption": f"a blob number {i}"}))
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return root / "manifest.jsonl"


def write_config(manifest: Path, output_dir: Path) -> Path:
    config = {
        "model": {"base": "tiny-random"},
        "data": {"manifest": str(manifest), "mix": {"image": 1.0}},
        "optim": {"batch_size": 2, "max_steps": MAX_STEPS, "lr": 1e-3},
        "runtime": {"device": "cpu", "seed": 0},
        "logging": {
            "output_dir": str(output_dir),
            "tensorboard": False,
            "progress_bar": False,
            "validate_every": 0,
            "log_every": 1000,
            "checkpoint_every": 1,
            "keep_checkpoints": 2,
        },
    }
    path = output_dir.with_name(output_dir.name + ".yaml")
    path.write_text(yaml.safe_dump(config))
    return path


def train_here(*args: str):
    """`flexip train ...` in this process (single-threaded, like the children)."""
    reset_accelerate()
    try:
        return CliRunner().invoke(main, ["train", *args])
    finally:
        reset_accelerate()


def adapter_weights(output_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(output_dir / "adapter" / WEIGHTS_NAME))


def assert_only_intact_checkpoints_listed(output_dir: Path) -> list[int]:
    listed = ckpt.list_checkpoints(output_dir)
    assert listed, "no checkpoint listed"
    for _, path in listed:
        assert ckpt.checkpoint_problem(path) is None, (path, ckpt.checkpoint_problem(path))
    return [step for step, _ in listed]


@pytest.fixture(scope="module")
def straight_run(manifest, tmp_path_factory) -> Path:
    """The output folder of an uninterrupted run."""
    output_dir = tmp_path_factory.mktemp("straight") / "run"
    result = train_here("--config", str(write_config(manifest, output_dir)))
    assert result.exit_code == 0, result.output
    return output_dir


@pytest.fixture(scope="module")
def killed(manifest, tmp_path_factory) -> dict[str, Path]:
    """One `flexip train` child per kill point, all started at once (forked by paused_cli.py after one import
    of flexip); each is SIGKILLed by PID as soon as it stands at its point."""
    base = tmp_path_factory.mktemp("kills")
    runs = {}
    for name, (pause, _) in KILLS.items():
        folder = base / name
        folder.mkdir()
        runs[name] = {"pause": pause, "cwd": str(folder), "args": ["train", "--config", str(write_config(manifest, folder / "run"))]}
    (base / "runs.json").write_text(json.dumps(runs))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # single-threaded, like this process
    with open(base / "launcher.log", "wb") as log:
        launcher = subprocess.Popen([sys.executable, str(PAUSED_CLI), str(base / "runs.json")], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    try:
        while not (base / "pids.json").exists():
            assert launcher.poll() is None, (base / "launcher.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the launcher never started its children"
            time.sleep(0.05)
        waiting = json.loads((base / "pids.json").read_text())
        while waiting:
            for name, pid in list(waiting.items()):
                if (base / name / "paused").exists():
                    os.kill(pid, signal.SIGKILL)
                    del waiting[name]
            if launcher.poll() is not None:  # every child ended, some before reaching their point
                logs = {name: (base / name / "child.log").read_text()[-2000:] for name in waiting}
                pytest.fail(f"children ended before their pause point: {logs}")
            assert time.monotonic() < deadline, f"children never reached their pause points: {sorted(waiting)}"
            time.sleep(0.05)
        assert launcher.wait(60) == 0
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    statuses = json.loads((base / "statuses.json").read_text())
    assert statuses == {name: -signal.SIGKILL for name in KILLS}, statuses
    return {name: base / name / "run" for name in KILLS}


@pytest.mark.parametrize("point", sorted(KILLS))
def test_a_killed_run_resumes_to_bit_identical_weights(point, killed, straight_run, manifest):
    output_dir = killed[point]
    root = ckpt.checkpoints_root(output_dir)
    leftover = KILLS[point][1]
    listed = assert_only_intact_checkpoints_listed(output_dir)
    assert listed == [2, 3] if point != "mid-checkpoint-write" else listed == [1, 2]
    if leftover is not None:
        assert (root / leftover).is_dir() and leftover not in [p.name for _, p in ckpt.list_checkpoints(output_dir)]
    assert not (output_dir / "adapter").exists()

    result = train_here("--config", str(write_config(manifest, output_dir)), "--resume", "latest")
    assert result.exit_code == 0, result.output
    assert f"trained to step {MAX_STEPS}" in result.output
    assert assert_only_intact_checkpoints_listed(output_dir) == [MAX_STEPS - 1, MAX_STEPS]
    assert not partial_files(root), partial_files(root)
    resumed, straight = adapter_weights(output_dir), adapter_weights(straight_run)
    assert resumed.keys() == straight.keys()
    assert all(torch.equal(resumed[key], straight[key]) for key in straight)


# ---- damaged checkpoints, from the command line ----------------------------------------------------------------


@pytest.fixture()
def finished_run(straight_run, manifest, tmp_path) -> tuple[Path, Path]:
    """A copy of the uninterrupted run's output (checkpoints 4 and 5) and its config."""
    output_dir = tmp_path / "run"
    shutil.copytree(straight_run, output_dir)
    return output_dir, write_config(manifest, output_dir)


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_resume_latest_passes_over_a_truncated_newest_checkpoint_and_says_so(finished_run):
    output_dir, config = finished_run
    newest = ckpt.checkpoints_root(output_dir) / ckpt.checkpoint_name(MAX_STEPS)
    truncate(newest / "adapter" / WEIGHTS_NAME)
    result = train_here("--config", str(config), "--resume", "latest")
    assert result.exit_code == 0, result.output
    assert f"skipping damaged checkpoint {newest.name}" in result.stderr and "resuming from step-000004" in result.stderr
    assert f"trained to step {MAX_STEPS}" in result.output
    assert assert_only_intact_checkpoints_listed(output_dir) == [MAX_STEPS - 1, MAX_STEPS]  # step 5 written again, whole


@pytest.mark.parametrize("damage", ["truncated adapter", "empty trainer state"])
def test_resume_naming_a_damaged_checkpoint_is_one_error_line(finished_run, damage):
    output_dir, config = finished_run
    newest = ckpt.checkpoints_root(output_dir) / ckpt.checkpoint_name(MAX_STEPS)
    if damage == "truncated adapter":
        truncate(newest / "adapter" / WEIGHTS_NAME)
    else:
        (newest / ckpt.STATE_DIR / ckpt.STATE_FILE).write_text("")
    for args in (["--config", str(config), "--resume", str(newest)], ["--resume", str(newest)]):  # with and without --config
        result = train_here(*args)
        assert result.exit_code == 2, result.output
        assert_cli_outcome(result)
        assert "is damaged" in result.stderr and newest.name in result.stderr
