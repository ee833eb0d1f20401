"""Exponential moving average of the adapter's weights (optional; `runtime.ema_decay`).

    shadow ← d_t · shadow + (1 − d_t) · weights,   d_t = min(decay, (1 + t) / (10 + t))

after optimizer step t (the warm-up factor is diffusers' `EMAModel` default), kept in float32.
"""

from __future__ import annotations

import torch
from torch import nn


class AdapterEMA:
    def __init__(self, module: nn.Module, decay: float):
        self.decay = float(decay)
        self.num_updates = 0
        self.shadow = {name: tensor.detach().float().clone() for name, tensor in module.state_dict().items()}

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        decay = self.current_decay()
        for name, tensor in module.state_dict().items():
            self.shadow[name].lerp_(tensor.detach().float(), 1.0 - decay)
        self.num_updates += 1

    def weights(self, like: nn.Module) -> dict[str, torch.Tensor]:
        """The averaged weights, in the dtype of `like`'s own tensors."""
        return {name: self.shadow[name].to(tensor.dtype) for name, tensor in like.state_dict().items()}

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": dict(self.shadow)}

    def load_state_dict(self, state: dict) -> None:
        missing = set(self.shadow) ^ set(state["shadow"])
        if missing:
            from flexip.errors import CheckpointError

            raise CheckpointError(f"EMA state does not match the adapter (e.g. {sorted(missing)[:3]})")
        device = next(iter(self.shadow.values())).device
        self.shadow = {name: tensor.float().to(device) for name, tensor in state["shadow"].items()}
        self.num_updates = int(state["num_updates"])
