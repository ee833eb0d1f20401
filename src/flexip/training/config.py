"""The training configuration: typed dataclasses, validated on construction, read from YAML.

    config = load_config("configs/train_tiny.yaml", overrides=["optim.lr=1e-4", "data.manifest=x.jsonl"])
    print(config.to_yaml())          # the full, resolved config; written into every checkpoint

Every section is a dataclass whose `__post_init__` checks ranges, so a config built in Python is
checked exactly like one read from a file. Reading a file (`config_loading`) also checks that every key
exists and every value has the declared type; errors name the key (`optim.lr: expected a number, got 'fast'`).
Relative paths (manifest, output folder, cache) are relative to the working directory.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from flexip.errors import FlexIPInputError
from flexip.gate import sweep_values
from flexip.training.config_loading import build_config, read_config

#: FlexIPAdapter constructor arguments a config may set under `model.adapter`; the others (target
#: layers, widths, encoder ids, version) are read from the frozen models.
ADAPTER_OVERRIDES = (
    "num_global_tokens",
    "num_queries",
    "preservation_depth",
    "preservation_width",
    "preservation_heads",
    "num_visual_tokens",
    "personalization_depth",
    "personalization_heads",
    "personalization_dino",
    "dino_layer",
)
#: the ones of them that are switches (true / false); the others are integers
ADAPTER_SWITCHES = ("personalization_dino",)
MODALITIES = ("image", "video")
#: what `model.method: ip-adapter` may set under `model.ip_adapter` (IP-Adapter Plus: resampler queries and width)
IP_ADAPTER_OVERRIDES = ("num_tokens", "hidden_dims")
METHODS = ("flexip", "ip-adapter")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise FlexIPInputError(message)


def _check_range(value: Sequence[float], name: str) -> tuple[float, float]:
    _check(len(value) == 2, f"{name} must be [low, high], got {list(value)}")
    low, high = float(value[0]), float(value[1])
    _check(0.0 <= low <= high <= 1.0, f"{name} must satisfy 0 <= low <= high <= 1, got [{low}, {high}]")
    return low, high


@dataclass
class ModelConfig:
    """What is frozen (base model, encoders) and how the trainable adapter is built."""

    base: str = "tiny-random"  # a preset name, or a diffusers SD1.5-family folder / hub id
    image_encoder: str | None = None  # CLIP vision folder / hub id; None: the SPEC's reference encoder
    dino_encoder: str | None = None  # DINOv2 folder / hub id; None: the SPEC's reference encoder
    adapter: dict[str, Any] = field(default_factory=dict)  # FlexIPAdapter overrides, e.g. {num_queries: 16}
    init_adapter: str | None = None  # start from this adapter folder, or an IP-Adapter checkpoint file (a warm start), instead of a fresh adapter
    # how a fresh adapter's personalization values V'_pers start: "copy" of the text V (SPEC §1; at
    # γ = 0 the text pathway then starts doubled) or "zero" (the branch starts silent: γ = 0 == base)
    personalization_init: str = "copy"
    # what trains: "flexip" (the two-branch adapter) or "ip-adapter" (the IP-Adapter Plus baseline, diffusers'
    # classes, one scale, saved in IP-Adapter's layout; models/ip_adapter_plus.py); everything else is shared
    method: str = "flexip"
    ip_adapter: dict[str, Any] = field(default_factory=dict)  # IP-Adapter Plus sizes, e.g. {num_tokens: 16, hidden_dims: 64}

    def __post_init__(self):
        _check(bool(self.base.strip()), "model.base must name a base model")
        _check(self.method in METHODS, f"model.method must be one of {', '.join(METHODS)}, got {self.method!r}")
        unknown = sorted(set(self.ip_adapter) - set(IP_ADAPTER_OVERRIDES))
        _check(not unknown, f"model.ip_adapter: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(IP_ADAPTER_OVERRIDES)}")
        for key, value in self.ip_adapter.items():
            _check(
                isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                f"model.ip_adapter.{key} must be a positive integer, got {value!r}",
            )
        _check(not self.ip_adapter or self.method == "ip-adapter", "model.ip_adapter applies to model.method: ip-adapter only")
        hidden = self.ip_adapter.get("hidden_dims", 64)
        _check(hidden % 64 == 0, f"model.ip_adapter.hidden_dims must be a multiple of 64 (diffusers' resampler head size), got {hidden}")
        _check(
            self.method == "flexip" or self.init_adapter is None,
            "model.init_adapter warm-starts a FlexIP adapter; model.method ip-adapter starts fresh",
        )
        unknown = sorted(set(self.adapter) - set(ADAPTER_OVERRIDES))
        _check(not unknown, f"model.adapter: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(ADAPTER_OVERRIDES)}")
        for key, value in self.adapter.items():
            if key in ADAPTER_SWITCHES:
                _check(isinstance(value, bool), f"model.adapter.{key} must be true or false, got {value!r}")
            else:
                _check(isinstance(value, int) and not isinstance(value, bool), f"model.adapter.{key} must be an integer, got {value!r}")
        _check(self.init_adapter is None or not self.adapter, "give model.init_adapter or model.adapter overrides, not both")
        _check(
            self.personalization_init in ("copy", "zero"),
            f"model.personalization_init must be 'copy' or 'zero', got {self.personalization_init!r}",
        )
        _check(
            self.init_adapter is None or self.personalization_init == "copy",
            "model.personalization_init only applies to a fresh adapter, not to model.init_adapter",
        )


@dataclass
class DataConfig:
    """The manifest and how samples are drawn from it (see docs/data.md)."""

    manifest: str  # JSONL manifest (required; see docs/data.md)
    resolution: int | None = None  # target size in pixels; None: the base model's native size
    mix: dict[str, float] | None = field(default_factory=lambda: {"image": 0.5, "video": 0.5})  # None: by record count
    min_gap: int = 1  # frames between reference and target of a clip, at least ...
    max_gap: int | None = 8  # ... and at most (None: no limit)
    augment: dict[str, Any] = field(default_factory=dict)  # ReferenceAugment settings for image samples
    video_augment: dict[str, Any] | None = None  # ReferenceAugment settings for video references (None: off)
    subject_references: float = 0.0  # image samples: chance the reference is another image of the same subject
    variant_masks: float = 1.0  # clips / captures with subject masks: chance their reference is isolated
    num_workers: int = 0  # DataLoader worker processes

    def __post_init__(self):
        _check(bool(self.manifest.strip()), "data.manifest must name a JSONL manifest (see docs/data.md)")
        _check(
            self.resolution is None or (self.resolution >= 8 and self.resolution % 8 == 0),
            f"data.resolution must be a multiple of 8 (≥ 8), got {self.resolution}",
        )
        if self.mix is not None:
            unknown = sorted(set(self.mix) - set(MODALITIES))
            _check(not unknown, f"data.mix: unknown modality {', '.join(unknown)}; expected image and/or video")
            _check(
                all(v >= 0 for v in self.mix.values()) and sum(self.mix.values()) > 0,
                f"data.mix weights must be ≥ 0 with a positive sum, got {self.mix}",
            )
        _check(self.min_gap >= 1, f"data.min_gap must be ≥ 1, got {self.min_gap}")
        _check(self.max_gap is None or self.max_gap >= self.min_gap, f"data.max_gap must be ≥ data.min_gap, got {self.max_gap}")
        _check(0.0 <= self.subject_references <= 1.0, f"data.subject_references is a probability in [0, 1], got {self.subject_references}")
        _check(0.0 <= self.variant_masks <= 1.0, f"data.variant_masks is a probability in [0, 1], got {self.variant_masks}")
        _check(self.num_workers >= 0, f"data.num_workers must be ≥ 0, got {self.num_workers}")
        self.reference_augment()
        self.reference_video_augment()

    def reference_augment(self):
        return _augment(self.augment, "data.augment")

    def reference_video_augment(self):
        return None if self.video_augment is None else _augment(self.video_augment, "data.video_augment")


def _augment(settings: Mapping[str, Any], name: str):
    from flexip.data.augment import ReferenceAugment

    allowed = {f.name for f in dataclasses.fields(ReferenceAugment)}
    unknown = sorted(set(settings) - allowed)
    _check(not unknown, f"{name}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    values = {key: tuple(value) if isinstance(value, list) else value for key, value in settings.items()}
    try:
        return ReferenceAugment(**values)
    except FlexIPInputError as error:
        raise FlexIPInputError(f"{name}: {error}") from None
    except TypeError as error:
        raise FlexIPInputError(f"{name}: {error}") from None


@dataclass
class GateConfig:
    """The modality-aware training gate: γ of each sample is drawn uniformly from its modality's range."""

    image_range: tuple[float, float] = (0.5, 1.0)
    video_range: tuple[float, float] = (0.0, 0.5)

    def __post_init__(self):
        self.image_range = _check_range(self.image_range, "gate.image_range")
        self.video_range = _check_range(self.video_range, "gate.video_range")

    def ranges(self) -> dict[str, tuple[float, float]]:
        return {"image": self.image_range, "video": self.video_range}


def flexip_only_settings(config) -> list[str]:
    """The settings of `config` that only FlexIP reads, where they differ from the defaults (an IP-Adapter run
    ignores them: it has no gate, no personalization branch and no DINO tokens)."""
    model, defaults = config.model, ModelConfig()
    found = [f"model.{key}" for key in ("adapter", "personalization_init") if getattr(model, key) != getattr(defaults, key)]
    if config.gate != GateConfig():
        found.append("gate")
    if config.optim.personalization_lr_scale != 1.0:
        found.append("optim.personalization_lr_scale")
    return found


@dataclass
class DropoutConfig:
    """Condition dropout for classifier-free guidance; the three events are mutually exclusive."""

    text: float = 0.05  # text only dropped (→ empty-prompt embedding)
    image: float = 0.05  # image only dropped (→ zero features)
    both: float = 0.05  # both dropped

    def __post_init__(self):
        for name in ("text", "image", "both"):
            value = getattr(self, name)
            _check(0.0 <= value <= 1.0, f"dropout.{name} must be in [0, 1], got {value}")
        _check(self.text + self.image + self.both <= 1.0, "dropout.text + dropout.image + dropout.both must be ≤ 1")


@dataclass
class OptimConfig:
    lr: float = 1e-4
    weight_decay: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.999)
    lr_schedule: Literal["constant", "linear", "cosine"] = "constant"  # after warm-up
    warmup_steps: int = 0
    batch_size: int = 8  # per process and micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    max_steps: int = 1000  # optimizer steps
    grad_clip: float | None = 1.0  # max gradient norm; None: no clipping
    subject_loss_weight: float = 0.0  # loss weight 1 + w on the target's subject (masked samples), 1 elsewhere
    personalization_lr_scale: float = 1.0  # the personalization branch (its adapter and K'/V'_pers) learns at lr × this

    def __post_init__(self):
        _check(self.lr > 0 and math.isfinite(self.lr), f"optim.lr must be > 0, got {self.lr}")
        _check(self.weight_decay >= 0, f"optim.weight_decay must be ≥ 0, got {self.weight_decay}")
        self.betas = tuple(float(b) for b in self.betas)
        _check(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            f"optim.betas must be two numbers in [0, 1), got {list(self.betas)}",
        )
        _check(self.warmup_steps >= 0, f"optim.warmup_steps must be ≥ 0, got {self.warmup_steps}")
        _check(self.batch_size >= 1, f"optim.batch_size must be ≥ 1, got {self.batch_size}")
        _check(self.grad_accum >= 1, f"optim.grad_accum must be ≥ 1, got {self.grad_accum}")
        _check(self.max_steps >= 1, f"optim.max_steps must be ≥ 1, got {self.max_steps}")
        _check(self.grad_clip is None or self.grad_clip > 0, f"optim.grad_clip must be > 0 or null, got {self.grad_clip}")
        _check(self.subject_loss_weight >= 0, f"optim.subject_loss_weight must be ≥ 0, got {self.subject_loss_weight}")
        _check(
            0 <= self.personalization_lr_scale <= 10,
            f"optim.personalization_lr_scale must be in [0, 10], got {self.personalization_lr_scale}",
        )


@dataclass
class RuntimeConfig:
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    gradient_checkpointing: bool = False  # of the frozen UNet's blocks (saves activation memory)
    ema_decay: float | None = None  # e.g. 0.999; None: no EMA
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: what accelerate picks (the GPU of this process if any)

    def __post_init__(self):
        _check(self.ema_decay is None or 0.0 < self.ema_decay < 1.0, f"runtime.ema_decay must be in (0, 1) or null, got {self.ema_decay}")
        _check(0 <= self.seed <= 2**64 - 1, f"runtime.seed must be in [0, 2**64 - 1], got {self.seed}")


@dataclass
class LoggingConfig:
    output_dir: str = "runs/flexip"
    log_every: int = 10  # steps between log lines / TensorBoard scalars
    tensorboard: bool = True
    progress_bar: bool = True
    validate_every: int = 500  # steps between validation grids (0: never)
    # the γ columns of a validation grid: numbers, or γ text such as "0,0.25,0.5" (flexip.gate's parser); stored as a list
    validation_gammas: list[float] | float | str = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])
    validation_prompts: list[str] = field(default_factory=list)  # empty: each reference's own caption
    validation_references: list[str] = field(default_factory=list)  # images; empty: the first sample of each modality
    validation_steps: int = 20  # denoising steps of a validation render
    validation_guidance: float = 7.5
    checkpoint_every: int = 500  # steps between checkpoints (a last one is written at the end)
    keep_checkpoints: int | None = 3  # newest checkpoints kept; None: keep all

    def __post_init__(self):
        _check(bool(self.output_dir.strip()), "logging.output_dir must not be empty")
        _check(self.log_every >= 1, f"logging.log_every must be ≥ 1, got {self.log_every}")
        _check(self.validate_every >= 0, f"logging.validate_every must be ≥ 0, got {self.validate_every}")
        self.validation_gammas = list(sweep_values(self.validation_gammas, "logging.validation_gammas"))
        _check(self.validation_steps >= 1, f"logging.validation_steps must be ≥ 1, got {self.validation_steps}")
        _check(self.checkpoint_every >= 1, f"logging.checkpoint_every must be ≥ 1, got {self.checkpoint_every}")
        _check(
            self.keep_checkpoints is None or self.keep_checkpoints >= 1,
            f"logging.keep_checkpoints must be ≥ 1 or null, got {self.keep_checkpoints}",
        )


@dataclass
class CacheConfig:
    """Optional feature cache (see docs/training.md): train from precomputed features."""

    path: str | None = None  # cache folder; None: encode every batch on the fly
    draws: int = 1  # augmentation draws stored per record (epoch e uses draw e mod draws)
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    shard_size: int = 512  # samples per safetensors shard
    batch_size: int = 16  # encoding batch size while building

    def __post_init__(self):
        _check(self.draws >= 1, f"cache.draws must be ≥ 1, got {self.draws}")
        _check(self.shard_size >= 1, f"cache.shard_size must be ≥ 1, got {self.shard_size}")
        _check(self.batch_size >= 1, f"cache.batch_size must be ≥ 1, got {self.batch_size}")


@dataclass
class TrainConfig:
    data: DataConfig
    model: ModelConfig = field(default_factory=ModelConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    dropout: DropoutConfig = field(default_factory=DropoutConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)

    @property
    def output_dir(self) -> Path:
        return Path(self.logging.output_dir)

    def to_dict(self) -> dict[str, Any]:
        values = _plain(dataclasses.asdict(self))
        order = ("model", "data", "gate", "dropout", "optim", "runtime", "logging", "cache")
        return {section: values[section] for section in order}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def save(self, path: str | Path) -> Path:
        from flexip.atomic import write_text

        return write_text(path, self.to_yaml())

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """A raw mapping (sections of plain values, as read from YAML) → a validated config."""
        return build_config(cls, values)


def _plain(value):
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML config (or start from the defaults when `path` is None), apply `section.key=value`
    overrides (values in YAML syntax: `optim.lr=1e-4`, `logging.validation_gammas=[0,0.5,1]`), validate."""
    return read_config(TrainConfig, path, overrides)
