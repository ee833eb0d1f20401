"""The accelerate side of a run: the Accelerator, the learning-rate schedule, the log file, hparams."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

import torch

from flexip.errors import FlexIPInputError
from flexip.training.config import OptimConfig, TrainConfig
from flexip.training.schedules import scheduled_lr


def learning_rate(step: int, optim: OptimConfig) -> float:
    """Linear warm-up over `warmup_steps`, then constant, linear decay to 0, or cosine decay to 0."""
    progress = (step - optim.warmup_steps) / max(1, optim.max_steps - optim.warmup_steps)
    return scheduled_lr(optim.lr, step, optim.warmup_steps, progress, optim.lr_schedule)


def is_personalization_parameter(name: str) -> bool:
    """The personalization branch's own parameters: its adapter and every layer's K'/V'_pers."""
    return name.startswith("personalization.") or name.endswith((".to_k_pers.weight", ".to_v_pers.weight"))


def parameter_groups(adapter: torch.nn.Module, personalization_lr_scale: float = 1.0) -> list[dict]:
    """The optimizer's parameter groups: one, or with a personalization scale other than 1 two, the
    second's `lr_scale` multiplying the scheduled learning rate (`Trainer.training_step`)."""
    named = list(adapter.named_parameters())
    if personalization_lr_scale == 1.0:
        return [{"params": [p for _, p in named]}]
    return [
        {"params": [p for n, p in named if not is_personalization_parameter(n)], "lr_scale": 1.0},
        {"params": [p for n, p in named if is_personalization_parameter(n)], "lr_scale": personalization_lr_scale},
    ]


def make_accelerator(config: TrainConfig):
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration

    runtime = config.runtime
    if runtime.device == "cuda" and not torch.cuda.is_available():
        raise FlexIPInputError("runtime.device is 'cuda' but no CUDA device is available (use 'auto' or 'cpu')")
    if runtime.mixed_precision == "fp16" and (runtime.device == "cpu" or not torch.cuda.is_available()):
        raise FlexIPInputError("runtime.mixed_precision 'fp16' needs a CUDA GPU; use 'bf16' or 'no' on the CPU")
    # a γ range pinned to 0 or 1 switches a branch off for a whole modality: its weights may get no gradient
    pinned = any(low == high and low in (0.0, 1.0) for low, high in config.gate.ranges().values())
    return Accelerator(
        mixed_precision=runtime.mixed_precision,
        cpu=runtime.device == "cpu",
        log_with="tensorboard" if config.logging.tensorboard else None,
        project_config=ProjectConfiguration(project_dir=str(config.output_dir), logging_dir=str(config.output_dir / "logs")),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=pinned)],
    )


@contextmanager
def log_file(path: Path | None):
    """Also write the `flexip` loggers' INFO records (progress, skips) to OUTPUT_DIR/train.log."""
    if path is None:
        yield
        return
    package = logging.getLogger("flexip")
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    previous_level = package.level
    package.addHandler(handler)
    if package.getEffectiveLevel() > logging.INFO:
        package.setLevel(logging.INFO)
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(previous_level)
        handler.close()


def flat_hparams(values: dict, prefix: str = "") -> dict:
    """TensorBoard hparams take scalars only: nested keys joined with '/', lists and None as text."""
    flat = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_hparams(value, f"{name}/"))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat
