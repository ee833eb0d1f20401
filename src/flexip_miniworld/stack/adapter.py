"""Stage `adapter`: the FlexIP adapter, trained modality-aware by the project's own `flexip train`.

This stage writes no training code: it assembles the base model folder (work/base, a
StableDiffusionPipeline folder) and runs

    flexip train --config src/flexip_miniworld/configs/adapter.yaml model.base=WORK/base \
        model.image_encoder=WORK/clip/image_encoder model.dino_encoder=WORK/dino/model \
        data.manifest=WORK/data/manifest_masked.jsonl logging.output_dir=WORK/adapter/run optim.max_steps=N \
        [--resume latest]

in a subprocess (one CPU thread), then reads the loss curve back from its train.log. The manifest is
the dataset's own with every image row's subject mask added (`backgrounds.masked_manifest`), so image
samples' references show the subject alone on a plain backdrop.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

from flexip_miniworld.stack.common import Budget

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "adapter.yaml"


def train_command(work: Path, max_steps: int, device: str, resume: bool, config: Path = CONFIG, extra: tuple = ()) -> list[str]:
    work = Path(work)
    command = [
        sys.executable, "-m", "flexip.cli.main", "train", "--config", str(config),
        f"model.base={work / 'base'}", f"model.image_encoder={work / 'clip' / 'image_encoder'}",
        f"model.dino_encoder={work / 'dino' / 'model'}", f"data.manifest={work / 'data' / 'manifest_masked.jsonl'}",
        f"logging.output_dir={work / 'adapter' / 'run'}", f"optim.max_steps={max_steps}",
        f"runtime.device={'cuda' if device.startswith('cuda') else 'cpu'}", *extra,
    ]
    return command + (["--resume", "latest"] if resume else [])


def read_losses(train_log: Path) -> list[list[float]]:
    """[[step, loss], ...] from the `step N: ... loss X` lines of flexip train's train.log."""
    if not train_log.exists():
        return []
    pattern = re.compile(r"step (\d+):.*?\bloss ([0-9.eE+-]+)")
    by_step = {}  # a resumed run logs the steps after its checkpoint again: keep the newest
    for match in map(pattern.search, train_log.read_text().splitlines()):
        if match:
            by_step[int(match.group(1))] = float(match.group(2))
    return [[step, by_step[step]] for step in sorted(by_step)]


def trained_seed(run_dir: Path, extra: tuple = ()) -> int:
    """The `runtime.seed` the stage trained with: from the config `flexip train` saved in its run folder
    (the yaml may have been edited since), else the config's after the stage's own overrides."""
    from flexip.training.config import load_config

    saved = Path(run_dir) / "config.yaml"
    if saved.is_file():
        return int(yaml.safe_load(saved.read_text())["runtime"]["seed"])
    return load_config(CONFIG, [item for item in extra if item.startswith("runtime.seed=")]).runtime.seed


def train_adapter(work: Path, workdir: Path, budget: Budget, device: str, resume: bool, log=print, extra: tuple = ()) -> dict:
    from flexip_miniworld.stack.backgrounds import masked_manifest
    from flexip_miniworld.stack.ship import assemble_base

    work, workdir = Path(work), Path(workdir)
    assemble_base(work)
    masked_manifest(work / "data", work / "cache")
    if not resume:
        import shutil

        shutil.rmtree(workdir / "run", ignore_errors=True)
    command = train_command(work, budget.max_steps, device, resume, extra=extra)
    printable = "flexip " + " ".join(command[3:]).replace(str(CONFIG), "flexip_miniworld/configs/adapter.yaml")
    log(f"[adapter] {printable}")
    environment = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    started = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    reached = None
    timeout = None if budget.max_seconds == float("inf") else budget.max_seconds
    with open(workdir / "flexip_train.out", "a", encoding="utf-8") as out:
        try:
            process = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=environment, cwd=str(CONFIG.parents[1]), timeout=timeout)
        except subprocess.TimeoutExpired:
            # Out of time: finish at the newest checkpoint (max_steps = its step), which writes the adapter.
            from flexip.training.checkpointing import latest_checkpoint

            checkpoint = latest_checkpoint(workdir / "run")
            if checkpoint is None:
                raise RuntimeError(f"`{printable}` ran out of its {timeout:.0f} s budget before its first checkpoint") from None
            reached = int(checkpoint.name.split("-")[-1])
            log(f"[adapter] time budget used up; finishing at checkpoint step {reached}")
            command = train_command(work, reached, device, True, extra=extra)
            process = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=environment, cwd=str(CONFIG.parents[1]))
    if process.returncode != 0:
        raise RuntimeError(f"`{printable}` failed (exit {process.returncode}); see {workdir / 'flexip_train.out'}")
    losses = [pair for pair in read_losses(workdir / "run" / "train.log") if reached is None or pair[0] <= reached]
    return {
        "output": str(workdir / "run" / "adapter"), "command": printable, "seed": trained_seed(workdir / "run", extra),
        "steps": losses[-1][0] if losses else None, "final_loss": losses[-1][1] if losses else None, "losses": losses,
        "seconds": round(time.perf_counter() - started, 1),
    }
