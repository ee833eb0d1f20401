"""The dynamic weight gate: FlexIP's user-facing dial.

    w_pres = γ,  w_pers = 1 − γ,  and both branches are multiplied by the global adapter scale s.

γ ("gamma", the one public name used by the API, the CLI flag `--gamma`, config keys and the UI) is
accepted as
- a float in [0, 1];
- a 1-D tensor / sequence with one value per sample of the batch (training, one-batch sweeps);
- a mapping from UNet block (``"down"``, ``"mid"``, ``"up"``, or any prefix of an attention layer name
  such as ``"up_blocks.1"``; the longest matching prefix wins; ``"default"`` covers the rest, else 0.5)
  to any of these forms;
- a schedule over denoising: a callable of the step fraction t ∈ [0, 1] (0 = first step, 1 = last),
  or ``GammaSchedule(start, end)`` for a linear ramp.
Instead of γ, the two branch weights can be given independently (``w_pres``, ``w_pers`` ≥ 0): together
with the scale they span the continuous control surface.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Union

import torch

from flexip.errors import FlexIPInputError

DEFAULT_GAMMA = 0.5

_BLOCK_ALIASES = {"down": "down_blocks", "mid": "mid_block", "up": "up_blocks"}


@dataclass(frozen=True)
class GammaSchedule:
    """γ moving linearly from `start` (first denoising step) to `end` (last step)."""

    start: float
    end: float

    def __post_init__(self):
        check_gamma_value(self.start, "GammaSchedule.start")
        check_gamma_value(self.end, "GammaSchedule.end")

    def __call__(self, step_fraction: float) -> float:
        return self.start + (self.end - self.start) * step_fraction


GammaValue = Union[float, int, torch.Tensor, Sequence[float], GammaSchedule, Callable[[float], float]]
GammaLike = Union[GammaValue, Mapping[str, GammaValue]]


def gate_weights(gamma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The gate itself: γ → (w_pres, w_pers) = (γ, 1 − γ)."""
    return gamma, 1.0 - gamma


def check_gamma_value(value: float, name: str = "gamma") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FlexIPInputError(f"{name} must be a number in [0, 1], got {value!r}")
    value = float(value)
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise FlexIPInputError(f"{name} must be in [0, 1], got {value}")
    return value


def check_gamma_tensor(values: torch.Tensor, name: str = "gamma") -> torch.Tensor:
    values = torch.as_tensor(values, dtype=torch.float32)
    if values.ndim > 1:
        raise FlexIPInputError(f"{name} as a tensor must be 1-D (one value per sample), got shape {tuple(values.shape)}")
    if torch.isnan(values).any() or (values < 0).any() or (values > 1).any():
        raise FlexIPInputError(f"{name} values must be in [0, 1] and not NaN, got {values.tolist()}")
    return values.reshape(-1)


def check_weight(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FlexIPInputError(f"{name} must be a non-negative number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise FlexIPInputError(f"{name} must be finite and ≥ 0, got {value}")
    return value


def validate_gamma(gamma: GammaLike) -> GammaLike:
    """Check every form of γ once, up front, so that errors surface before any model runs."""
    if isinstance(gamma, Mapping):
        if not gamma:
            raise FlexIPInputError("a per-block gamma mapping must not be empty")
        for key, value in gamma.items():
            if not isinstance(key, str):
                raise FlexIPInputError(f"per-block gamma keys must be strings (down/mid/up or layer prefixes), got {key!r}")
            if isinstance(value, Mapping):
                raise FlexIPInputError("per-block gamma mappings cannot be nested")
            validate_gamma(value)
        return gamma
    if isinstance(gamma, GammaSchedule):
        return gamma
    if isinstance(gamma, torch.Tensor):
        check_gamma_tensor(gamma)
        return gamma
    if isinstance(gamma, Sequence) and not isinstance(gamma, str):
        check_gamma_tensor(torch.tensor([check_gamma_value(v) for v in gamma]))
        return gamma
    if callable(gamma):
        for fraction in (0.0, 0.5, 1.0):
            check_gamma_value(gamma(fraction), "gamma schedule value")
        return gamma
    check_gamma_value(gamma)
    return gamma


def _block_value(gamma: Mapping[str, GammaValue], layer_name: str) -> GammaValue:
    best, best_length = gamma.get("default", DEFAULT_GAMMA), -1
    for key, value in gamma.items():
        prefix = _BLOCK_ALIASES.get(key, key)
        if layer_name.startswith(prefix) and len(prefix) > best_length:
            best, best_length = value, len(prefix)
    return best


def resolve_gamma(gamma: GammaLike, layer_name: str, step_fraction: float) -> torch.Tensor:
    """γ for one attention layer at one denoising step: a 0-D tensor or a 1-D per-sample tensor."""
    if isinstance(gamma, Mapping):
        gamma = _block_value(gamma, layer_name)
    if isinstance(gamma, torch.Tensor):
        return gamma.float()
    if isinstance(gamma, Sequence) and not isinstance(gamma, str):
        return torch.tensor([float(v) for v in gamma])
    if callable(gamma):
        return torch.tensor(check_gamma_value(gamma(step_fraction), "gamma schedule value"))
    return torch.tensor(float(gamma))


@dataclass
class GateSettings:
    """Everything the attention processors need to mix the branches for one forward pass.

    `gamma` is ignored when `w_pres`/`w_pers` are given. `repeat` tiles per-sample values over the
    classifier-free-guidance copies of the batch (2 with guidance: [unconditional, conditional]).
    """

    gamma: GammaLike = DEFAULT_GAMMA
    adapter_scale: float = 1.0
    w_pres: float | None = None
    w_pers: float | None = None
    step_fraction: float = 0.0
    repeat: int = 1

    def __post_init__(self):
        self.adapter_scale = check_weight(self.adapter_scale, "adapter_scale")
        if (self.w_pres is None) != (self.w_pers is None):
            raise FlexIPInputError("give both w_pres and w_pers (or neither, and use gamma)")
        if self.w_pres is not None:
            self.w_pres = check_weight(self.w_pres, "w_pres")
            self.w_pers = check_weight(self.w_pers, "w_pers")
        else:
            validate_gamma(self.gamma)

    @property
    def is_off(self) -> bool:
        """True when no branch can contribute (s = 0, or w_pres = w_pers = 0): the adapter is skipped."""
        if self.adapter_scale == 0.0:
            return True
        return self.w_pres == 0.0 and self.w_pers == 0.0

    def branch_weights(self, layer_name: str, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(s·w_pres, s·w_pers) for this layer and step, each a CPU 0-D tensor or shaped (batch,).

        They stay on the CPU so that "is this branch all zero?" never synchronizes an accelerator."""
        if self.w_pres is not None:
            w_pres, w_pers = torch.tensor(self.w_pres), torch.tensor(self.w_pers)
        else:
            w_pres, w_pers = gate_weights(resolve_gamma(self.gamma, layer_name, self.step_fraction))
        weights = []
        for w in (w_pres, w_pers):
            w = w * self.adapter_scale
            if w.ndim == 1:
                w = w.repeat(self.repeat)
                if w.shape[0] != batch_size:
                    raise FlexIPInputError(
                        f"per-sample gamma has {w.shape[0] // self.repeat} values but the batch has "
                        f"{batch_size // self.repeat} samples"
                    )
            weights.append(w)
        return weights[0], weights[1]


def parse_gamma(text: str) -> GammaLike:
    """The text form of γ used by the CLI and config files.

    ``"0.7"`` → 0.7;  ``"1.0:0.2"`` → GammaSchedule(1.0, 0.2) (first step → last step);
    ``"down=0.3,mid=0.5,up=1.0:0.4"`` → a per-block mapping whose values use the two forms above
    (``default=`` sets unmatched blocks).
    """
    text = str(text).strip()
    if "=" in text:
        mapping = {}
        for part in text.split(","):
            key, _, value = part.partition("=")
            if not key.strip() or not value.strip() or "=" in value:
                raise FlexIPInputError(f"cannot read per-block gamma {text!r}; expected e.g. 'down=0.3,mid=0.5,up=0.8'")
            mapping[key.strip()] = parse_gamma(value)
        return validate_gamma(mapping)
    if ":" in text:
        start, _, end = text.partition(":")
        return GammaSchedule(_parse_number(start, text), _parse_number(end, text))
    return check_gamma_value(_parse_number(text, text))


def _parse_number(value: str, whole: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise FlexIPInputError(f"cannot read gamma {whole!r}; expected a number in [0, 1], START:END, or down=..,mid=..,up=..") from None
