"""Rebuilding the miniature stack from scratch: one command, every stage resumable, one manifest.

    flexip miniworld build runs/miniworld [--stages clip,unet] [--resume] [--device cuda] [--budget-scale 0.5]

Stages, in order (each reads the outputs of the ones before it from WORKDIR):

    data         the procedural dataset (`flexip miniworld make-data`)        WORKDIR/data
    tokenizer    a CLIP BPE tokenizer with one token per caption word         WORKDIR/tokenizer
    autoencoder  AutoencoderKL (factor 4)                                     WORKDIR/autoencoder/model
    decoder      the autoencoder's decoder fine-tuned, encoder frozen         WORKDIR/decoder/model
    clip         tiny CLIP (text + vision, contrastive)                       WORKDIR/clip/model
    unet         base text-to-image UNet (v-prediction, zero-terminal SNR)    WORKDIR/unet/model
    unet_grow    the UNet grown to cross-attention at 8×8 too, trained on     WORKDIR/unet_grow/model
    dino         tiny DINOv2, DINO self-distillation (no labels)              WORKDIR/dino/model
    eval_clip    evaluation CLIP (other seed and config)                      WORKDIR/eval_clip/model
    eval_dino    evaluation DINOv2 (other seed and config)                    WORKDIR/eval_dino/model
    adapter      FlexIP adapter via `flexip train` (configs/adapter.yaml)     WORKDIR/adapter/run/adapter
    ship         assemble the preset folder + manifest                        WORKDIR/preset (or --preset-dir)

WORKDIR/manifest.json records, per stage: command, seed, steps, wall time, final loss, loss curve,
data hash and the sha256 of every weight file. With --resume, finished stages are skipped and an
interrupted stage continues from its last checkpoint; --extend continues finished stages from their
checkpoints up to a larger --budget-scale (more training without starting over).
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from flexip.atomic import write_json
from flexip.devices import resolve_device
from flexip.errors import FlexIPInputError
from flexip_miniworld.stack.common import data_hash, folder_hashes
from flexip_miniworld.stack.loop import Budget

STAGES = ("data", "tokenizer", "autoencoder", "decoder", "clip", "unet", "unet_grow", "dino", "eval_clip", "eval_dino", "adapter", "ship")


@dataclass
class DataSettings:
    images: int = 20000
    videos: int = 600
    multiview: int = 300
    identities: int = 400
    heldout: int = 40
    size: int = 32
    seed: int = 0
    workers: int = 2


#: Minutes and step caps of each stage at --budget-scale 1 (2-core CPU); whichever ends first.
DEFAULT_BUDGETS = {
    "autoencoder": (16.5, 4000),
    "decoder": (25.0, 12000),
    "clip": (8.0, 6000),
    "unet": (60.0, 40000),
    "unet_grow": (40.0, 20000),
    "dino": (18.0, 15000),
    "eval_clip": (3.5, 3000),
    "eval_dino": (10.5, 9000),
    "adapter": (30.0, 4000),
}


@dataclass
class BuildSettings:
    workdir: Path
    stages: tuple = STAGES
    resume: bool = False
    extend: bool = False  # continue finished stages from their checkpoints up to a (larger) budget
    device: str = "auto"
    budget_scale: float = 1.0
    data: DataSettings = field(default_factory=DataSettings)
    preset_dir: Path | None = None  # where `ship` writes the preset; None: WORKDIR/preset (never the installed package)
    budgets: dict = field(default_factory=lambda: dict(DEFAULT_BUDGETS))
    checkpoint_steps: int | None = None  # extra step-based checkpoints (tests)
    log_every: int = 25
    threads: int = 1  # CPU threads of torch

    def budget(self, stage: str) -> Budget:
        minutes, steps = self.budgets[stage]
        return Budget(
            max_steps=max(1, int(round(steps * self.budget_scale))),
            max_seconds=minutes * 60 * self.budget_scale,
            checkpoint_seconds=120.0,
            checkpoint_steps=self.checkpoint_steps,
            log_every=self.log_every,
        )


def _log_to(path: Path):
    def log(message: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {message}"
        print(line, flush=True)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    return log


def _run_stage(stage: str, settings: BuildSettings, device, log) -> dict:
    if settings.extend:
        from dataclasses import replace

        settings = replace(settings, resume=True)
    work = Path(settings.workdir)
    data_dir = work / "data"
    stage_dir = work / stage
    if stage == "data":
        from flexip_miniworld.dataset import WorldConfig, make_dataset

        d = settings.data
        config = WorldConfig(seed=d.seed, size=d.size, identities=d.identities, heldout=d.heldout)
        summary = make_dataset(data_dir, config, images=d.images, videos=d.videos, multiview=d.multiview, workers=d.workers, progress=False)
        return {"output": str(data_dir), "counts": summary["counts"], "seed": d.seed}
    if stage == "tokenizer":
        from flexip_miniworld.stack.tokenizer import build_tokenizer

        return build_tokenizer(stage_dir, log)
    if stage == "autoencoder":
        from flexip_miniworld.stack.autoencoder import AutoencoderConfig, train_autoencoder

        return train_autoencoder(data_dir, stage_dir, AutoencoderConfig(), settings.budget(stage), device, settings.resume, log)
    if stage == "decoder":
        from flexip_miniworld.stack.autoencoder import DecoderConfig, train_decoder

        return train_decoder(data_dir, work, stage_dir, DecoderConfig(), settings.budget(stage), device, settings.resume, log)
    if stage in ("clip", "eval_clip"):
        from flexip_miniworld.stack.clip import CLIP_CONFIGS, train_clip

        return train_clip(data_dir, work / "tokenizer", stage_dir, CLIP_CONFIGS[stage], settings.budget(stage), device, settings.resume, log)
    if stage in ("dino", "eval_dino"):
        from flexip_miniworld.stack.dino import DINO_CONFIGS, train_dino

        return train_dino(data_dir, stage_dir, DINO_CONFIGS[stage], settings.budget(stage), device, settings.resume, log)
    if stage == "unet":
        from flexip_miniworld.stack.unet import UNetConfig, train_unet

        return train_unet(data_dir, work, stage_dir, UNetConfig(), settings.budget(stage), device, settings.resume, log)
    if stage == "unet_grow":
        from flexip_miniworld.stack.unet import GROWN_BLOCKS, UNetConfig, train_unet

        config = UNetConfig(down_blocks=GROWN_BLOCKS, lr=5e-4, warmup=100, seed=41)
        return train_unet(data_dir, work, stage_dir, config, settings.budget(stage), device, settings.resume, log, grow_from=work / "unet" / "model")
    if stage == "adapter":
        from flexip_miniworld.stack.adapter import train_adapter

        return train_adapter(work, stage_dir, settings.budget(stage), str(device), settings.resume, log)
    if stage == "ship":
        from flexip_miniworld.stack.ship import ship

        return ship(work, Path(settings.preset_dir) if settings.preset_dir else work / "preset", log)
    raise FlexIPInputError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")


def build(settings: BuildSettings) -> dict:
    """Run the selected stages in order; returns the manifest (also written to WORKDIR/manifest.json)."""
    unknown = [s for s in settings.stages if s not in STAGES]
    if unknown:
        raise FlexIPInputError(f"unknown stage(s) {', '.join(unknown)}; stages: {', '.join(STAGES)}")
    if settings.budget_scale <= 0:
        raise FlexIPInputError(f"--budget-scale must be > 0, got {settings.budget_scale}")
    work = Path(settings.workdir)
    work.mkdir(parents=True, exist_ok=True)
    device = resolve_device(settings.device)
    import torch

    if device.type == "cpu":  # one thread: on a shared 2-core machine, 2 OpenMP threads ran 3-4x slower
        torch.set_num_threads(settings.threads)
    log = _log_to(work / "build.log")
    manifest_path = work / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"stages": {}}
    manifest["settings"] = {"data": asdict(settings.data), "budget_scale": settings.budget_scale, "budgets": settings.budgets}
    command = "flexip " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv and sys.argv[0].endswith("flexip") else None
    for stage in [s for s in STAGES if s in settings.stages]:
        record = manifest["stages"].get(stage)
        if settings.resume and not settings.extend and record and record.get("done"):
            log(f"[{stage}] done before; skipped")
            continue
        log(f"[{stage}] start (device {device})")
        started = time.perf_counter()
        result = _run_stage(stage, settings, device, log)
        result.setdefault("seconds", round(time.perf_counter() - started, 1))
        result["wall_seconds_this_sitting"] = round(time.perf_counter() - started, 1)
        result["command"] = command or f"flexip miniworld build {work} --stages {stage}"
        result["device"] = str(device)
        if stage in settings.budgets:
            budget = settings.budget(stage)
            result["budget"] = {"minutes": round(budget.max_seconds / 60, 2), "max_steps": budget.max_steps}
        result["data_hash"] = data_hash(work / "data") if (work / "data").exists() else None
        output = result.get("output")
        if output and Path(output).is_dir() and stage != "data":
            result["weights_sha256"] = {k: v for k, v in folder_hashes(Path(output)).items() if k.endswith((".safetensors", ".json", ".txt"))}
        result["done"] = True
        manifest["stages"][stage] = result
        write_json(manifest_path, manifest)
        log(f"[{stage}] done in {result['wall_seconds_this_sitting']:.0f} s")
    return manifest
