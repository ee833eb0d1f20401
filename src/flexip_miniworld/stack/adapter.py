"""Stage `adapter`: the FlexIP adapter, trained by the project's own trainer on configs/adapter.yaml (a uniform gate
since build v14), in process.

This stage writes no training code: it assembles the base model folder (work/base, a
StableDiffusionPipeline folder) and runs flexip's `Trainer` on the config shipped beside this package,
exactly what

    flexip train --config src/flexip_miniworld/configs/adapter.yaml model.base=WORK/base \
        model.image_encoder=WORK/clip/image_encoder model.dino_encoder=WORK/dino/model \
        data.manifest=WORK/data/manifest_masked.jsonl logging.output_dir=WORK/adapter/run optim.max_steps=N \
        [--resume latest]

runs. The loss curve comes back in the `TrainResult` (kept in the checkpoints across sittings). The manifest
is the dataset's own with every image row's subject mask added (`backgrounds.masked_manifest`), so image
samples' references show the subject alone on a plain backdrop.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from flexip.paths import portable_path
from flexip_miniworld.stack.loop import Budget

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "adapter.yaml"
CONFIG_NAME = "src/flexip_miniworld/configs/adapter.yaml"  # how the manifest and the logs name it


def overrides(work: Path, max_steps: int, device: str, extra: tuple = (), output_dir: Path | None = None) -> list[str]:
    """The `section.key=value` overrides the stage applies to the shipped config (`output_dir` default:
    WORK/adapter/run)."""
    work = Path(work)
    return [
        f"model.base={work / 'base'}",
        f"model.image_encoder={work / 'clip' / 'image_encoder'}",
        f"model.dino_encoder={work / 'dino' / 'model'}",
        f"data.manifest={work / 'data' / 'manifest_masked.jsonl'}",
        f"logging.output_dir={output_dir or work / 'adapter' / 'run'}",
        f"optim.max_steps={max_steps}",
        f"runtime.device={'cuda' if device.startswith('cuda') else 'cpu'}",
        *extra,
    ]


def command_line(work: Path, max_steps: int, device: str, resume: bool, extra: tuple = ()) -> str:
    """The equivalent `flexip train` command, for the build manifest."""
    words = ["flexip", "train", "--config", CONFIG_NAME, *overrides(work, max_steps, device, extra)]
    return " ".join(words + (["--resume", "latest"] if resume else []))


def train_adapter(work: Path, workdir: Path, budget: Budget, device: str, resume: bool, log=print, extra: tuple = ()) -> dict:
    from flexip.training import Trainer, load_config
    from flexip_miniworld.stack.backgrounds import masked_manifest
    from flexip_miniworld.stack.ship import assemble_base

    work, workdir = Path(work), Path(workdir)
    assemble_base(work)
    masked_manifest(work / "data", work / "cache")
    if not resume:
        shutil.rmtree(workdir / "run", ignore_errors=True)
    printable = command_line(work, budget.max_steps, device, resume, extra)
    log(f"[adapter] {printable}")
    started = time.perf_counter()
    config = load_config(CONFIG, overrides(work, budget.max_steps, device, extra))
    trainer = Trainer(config, resume="latest" if resume else None)
    limit = None if budget.max_seconds == float("inf") else budget.max_seconds
    result = trainer.train(time_limit=limit)
    if result.step < budget.max_steps:
        log(f"[adapter] time budget used up; finished at step {result.step}")
    curve = [[int(step), float(loss)] for step, loss in result.loss_curve]
    return {
        "output": portable_path(result.adapter_dir),
        "command": printable,
        "seed": config.runtime.seed,
        "steps": result.step,
        "final_loss": curve[-1][1] if curve else None,
        "losses": curve,
        "seconds": round(time.perf_counter() - started, 1),
    }
