"""`GateSettings`: the gate of one forward pass as the attention processors read it, and `gate_weights`, the
paper's equation. See `flexip.gate`."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch

from flexip.errors import FlexIPInputError
from flexip.gate.gamma import DEFAULT_GAMMA, Gamma, GammaLike, block_prefix, check_weight, derived, longest_prefix


def gate_weights(gamma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The gate itself: γ → (w_pres, w_pers) = (γ, 1 − γ)."""
    return gamma, 1.0 - gamma


_Weights = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class GateSettings:
    """The gate of a forward pass, as the attention processors read it; checked once when made, immutable.

    γ (any form `Gamma.of` takes; 0.5 if neither γ nor the weights are given) or both `w_pres` and `w_pers`,
    and the adapter scale s. `repeat` tiles per-sample values over the classifier-free-guidance copies of
    the batch (2 with guidance: [unconditional, conditional]). Every block's branch weights are computed
    here, once; a γ with a schedule is first resolved into the gate of each step (`at_steps`).
    """

    gamma: GammaLike | None = None
    adapter_scale: float = 1.0
    w_pres: float | None = None
    w_pers: float | None = None
    repeat: int = 1
    #: (weights of `default`, ((block prefix, weights), ...)); None while γ still has a schedule
    _weights: tuple[_Weights, tuple[tuple[str, _Weights], ...]] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "adapter_scale", check_weight(self.adapter_scale, "adapter_scale"))
        if (self.w_pres is None) != (self.w_pers is None):
            raise FlexIPInputError("give both w_pres and w_pers (or neither, and use gamma)")
        if self.w_pres is not None:
            if self.gamma is not None:
                raise FlexIPInputError("give either gamma or (w_pres, w_pers), not both")
            object.__setattr__(self, "w_pres", check_weight(self.w_pres, "w_pres"))
            object.__setattr__(self, "w_pers", check_weight(self.w_pers, "w_pers"))
        else:
            object.__setattr__(self, "gamma", Gamma.of(DEFAULT_GAMMA if self.gamma is None else self.gamma))
        if isinstance(self.repeat, bool) or not isinstance(self.repeat, int) or self.repeat < 1:
            raise FlexIPInputError(f"repeat must be a positive integer, got {self.repeat!r}")
        object.__setattr__(self, "_weights", self._weight_table())

    @property
    def is_off(self) -> bool:
        """True when no branch can contribute (s = 0, or w_pres = w_pers = 0): the adapter is skipped."""
        if self.adapter_scale == 0.0:
            return True
        return self.w_pres == 0.0 and self.w_pers == 0.0

    @property
    def sweep(self) -> tuple[float | None, ...]:
        """The γ of each column of a pipeline sweep: a sweep's values, (γ,) for a number, else (None,)."""
        numbers = None if self.gamma is None else self.gamma.numbers
        return numbers or (None,)

    def branch_weights(self, layer_name: str, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(s·w_pres, s·w_pers) for this layer, looked up: CPU tensors, 0-D or shaped (batch,).

        They stay on the CPU so that "is this branch all zero?" never synchronizes an accelerator."""
        if self._weights is None:
            raise FlexIPInputError("this gamma changes over the denoising steps: take the gate of each step with at_steps(num_steps)")
        default, blocks = self._weights
        w_pres, w_pers = longest_prefix(blocks, layer_name, default)
        if w_pres.ndim == 1 and w_pres.shape[0] != batch_size:
            raise FlexIPInputError(
                f"per-sample gamma has {w_pres.shape[0] // self.repeat} values but the batch has {batch_size // self.repeat} samples"
            )
        return w_pres, w_pers

    # ---- derived gates (new objects from checked parts; this one never changes) ------------------------
    def for_batch(self, num_prompts: int, images_per_prompt: int, repeat: int) -> GateSettings:
        """The gate of a pipeline batch: prompts × sweep × images per prompt rows, `repeat` guidance copies."""
        gamma = None if self.gamma is None else self.gamma.for_batch(num_prompts, images_per_prompt)
        return self._derive(gamma=gamma, repeat=repeat)

    def at_steps(self, num_steps: int) -> tuple[GateSettings, ...]:
        """The gate of each denoising step (the same object for every step unless γ has a schedule)."""
        if self.gamma is None or not self.gamma.is_scheduled:
            return (self,) * num_steps
        return tuple(self._derive(gamma=gamma) for gamma in self.gamma.at_steps(num_steps))

    def _derive(self, **changes) -> GateSettings:
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        values.update(changes)
        gate = derived(GateSettings, **values)
        object.__setattr__(gate, "_weights", gate._weight_table())
        return gate

    def _weight_table(self):
        if self.gamma is None:
            return (torch.tensor(self.w_pres) * self.adapter_scale, torch.tensor(self.w_pers) * self.adapter_scale), ()
        if self.gamma.is_scheduled:
            return None

        def weights(part: float | tuple[float, ...]) -> _Weights:
            w_pres, w_pers = gate_weights(torch.tensor(part, dtype=torch.float32))
            w_pres, w_pers = w_pres * self.adapter_scale, w_pers * self.adapter_scale
            if w_pres.ndim == 1:  # per-sample: tiled over the guidance copies
                w_pres, w_pers = w_pres.repeat(self.repeat), w_pers.repeat(self.repeat)
            return w_pres, w_pers

        return weights(self.gamma.default), tuple((block_prefix(key), weights(part)) for key, part in self.gamma.blocks)
