"""Exponential moving average of a module's weights: the adapter's (`runtime.ema_decay`) and, with the same
class, the miniworld stage models'.

    shadow ← d_t · shadow + (1 − d_t) · weights,   d_t = min(decay, (1 + t) / (10 + t))

after update t (the warm-up factor is diffusers' `EMAModel` default). Floating-point tensors are averaged in
float32; integer buffers (counters, position ids) are copied as they are.
"""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    def __init__(self, module: nn.Module, decay: float):
        self.decay = float(decay)
        self.num_updates = 0
        self.shadow = {name: _shadow_copy(tensor) for name, tensor in module.state_dict().items()}

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        decay = self.current_decay()
        for name, tensor in module.state_dict().items():
            if tensor.dtype.is_floating_point:
                self.shadow[name].lerp_(tensor.detach().float(), 1.0 - decay)
            else:
                self.shadow[name].copy_(tensor)
        self.num_updates += 1

    def weights(self, like: nn.Module) -> dict[str, torch.Tensor]:
        """The averaged weights, in the dtype of `like`'s own tensors."""
        return {name: self.shadow[name].to(tensor.dtype) for name, tensor in like.state_dict().items()}

    def copy_to(self, module: nn.Module) -> None:
        """Load the averaged weights into `module` (e.g. before saving a stage's final model)."""
        module.load_state_dict(self.weights(module))

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": dict(self.shadow)}

    def load_state_dict(self, state: dict) -> None:
        missing = set(self.shadow) ^ set(state["shadow"])
        if missing:
            from flexip.errors import CheckpointError

            raise CheckpointError(f"EMA state does not match the model (e.g. {sorted(missing)[:3]})")
        device = next(iter(self.shadow.values())).device
        self.shadow = {name: _shadow_copy(tensor).to(device) for name, tensor in state["shadow"].items()}
        self.num_updates = int(state["num_updates"])


def _shadow_copy(tensor: torch.Tensor) -> torch.Tensor:
    tensor = tensor.detach()
    return tensor.float().clone() if tensor.dtype.is_floating_point else tensor.clone()
