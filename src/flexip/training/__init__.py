"""Modality-aware training of the FlexIP adapter (SPEC §3), on accelerate.

    from flexip.training import Trainer, load_config
    Trainer(load_config("configs/train_tiny.yaml", ["optim.max_steps=100"])).train()

Modules, in the order data flows through a step:
    config          typed, validated config sections (written into every checkpoint); config_loading: YAML + overrides → config
    batches         endless, exactly resumable batch stream over the modality-mixing sampler
    features        frozen encoders: samples → latents, text embeddings, c_cls, DINO tokens
    cache           optional feature cache (precomputed features in safetensors shards)
    gate_sampling   per-sample γ from the modality's range; condition dropout
    objective       noising and the ε / v-prediction MSE
    model           UNet + injected adapter as one module (what accelerate wraps)
    trainer         the loop; ema, schedules (learning rate), tracking, validation, checkpointing are its helpers
                    (ema, schedules, tracking's step generator and checkpointing also drive the miniworld's stage trainers)
Heavy modules load on first use.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "TrainConfig": "flexip.training.config",
    "load_config": "flexip.training.config",
    "Trainer": "flexip.training.trainer",
    "TrainResult": "flexip.training.trainer",
    "build_cache_for_config": "flexip.training.cache",
    "CachedFeatureDataset": "flexip.training.cache",
    "sample_gammas": "flexip.training.gate_sampling",
    "sample_dropout": "flexip.training.gate_sampling",
    "latest_checkpoint": "flexip.training.checkpointing",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'flexip.training' has no attribute {name!r}")
