"""γ, the dial, as one typed, immutable value: `Gamma` (every form the API takes, checked once when made),
`GammaSchedule`, and the checks of a single γ value and of a branch weight. See `flexip.gate`."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch

from flexip.errors import FlexIPInputError

DEFAULT_GAMMA = 0.5

_BLOCK_ALIASES = {"down": "down_blocks", "mid": "mid_block", "up": "up_blocks"}
#: What the text forms of γ are, for error messages (the parser is `flexip.gate.text`).
TEXT_FORMS = "a number in [0, 1], numbers separated by commas (a sweep), START:END (a schedule) or down=..,mid=..,up=.. (per block)"

T = TypeVar("T")


def check_gamma_value(value: float, name: str = "gamma") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FlexIPInputError(f"{name} must be a number in [0, 1], got {value!r}")
    try:
        value = float(value)
    except OverflowError:  # an int beyond the float range
        raise FlexIPInputError(f"{name} must be in [0, 1], got an integer of {len(str(value))} digits") from None
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise FlexIPInputError(f"{name} must be in [0, 1], got {value}")
    return value


def check_weight(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FlexIPInputError(f"{name} must be a non-negative number, got {value!r}")
    try:
        value = float(value)
    except OverflowError:  # an int beyond the float range
        raise FlexIPInputError(f"{name} must be finite and ≥ 0, got an integer of {len(str(value))} digits") from None
    if not math.isfinite(value) or value < 0:
        raise FlexIPInputError(f"{name} must be finite and ≥ 0, got {value}")
    return value


@dataclass(frozen=True)
class GammaSchedule:
    """γ moving linearly from `start` (first denoising step) to `end` (last step)."""

    start: float
    end: float

    def __post_init__(self):
        object.__setattr__(self, "start", check_gamma_value(self.start, "GammaSchedule.start"))
        object.__setattr__(self, "end", check_gamma_value(self.end, "GammaSchedule.end"))

    def __call__(self, step_fraction: float) -> float:
        return self.start + (self.end - self.start) * step_fraction


#: γ of one block: a number, per-sample values (a tuple), or a schedule (a callable of the step fraction).
GammaPart = float | tuple[float, ...] | GammaSchedule | Callable[[float], float]


def _checked_part(value, name: str) -> GammaPart:
    if isinstance(value, GammaSchedule):
        return value
    if isinstance(value, torch.Tensor):
        if value.ndim > 1:
            raise FlexIPInputError(f"{name} as a tensor must be 1-D (one value per sample), got shape {tuple(value.shape)}")
        value = value.item() if value.ndim == 0 else tuple(value.tolist())  # copied out: the Gamma owns its values
    if isinstance(value, (list, tuple)):
        if not value:
            raise FlexIPInputError(f"{name} needs at least one value")
        return tuple(check_gamma_value(item, name) for item in value)
    if isinstance(value, Mapping):
        raise FlexIPInputError("per-block gamma mappings cannot be nested")
    if callable(value):
        return value  # each of its values is checked when the pipeline evaluates it, once per step (`Gamma.at_steps`)
    return check_gamma_value(value, name)


def block_prefix(key: str) -> str:
    return _BLOCK_ALIASES.get(key, key)


def longest_prefix(entries: Iterable[tuple[str, T]], layer_name: str, default: T) -> T:
    """The value of the entry whose prefix is the longest match of `layer_name`, else `default`."""
    best, best_length = default, -1
    for prefix, value in entries:
        if layer_name.startswith(prefix) and len(prefix) > best_length:
            best, best_length = value, len(prefix)
    return best


def derived(cls: type[T], **values) -> T:
    """An instance of the frozen dataclass `cls` made from parts that are already checked: its
    `__post_init__` (the checks) is skipped. Only for values this module derives from checked ones."""
    instance = object.__new__(cls)
    for name, value in values.items():
        object.__setattr__(instance, name, value)
    return instance


@dataclass(frozen=True)
class Gamma:
    """γ in one of its forms, checked completely when it is made; immutable (use `Gamma.of` / `parse_gamma`).

    `default` is γ wherever no block entry matches (all of γ unless it is per block): a number, per-sample
    values (a tuple) or a schedule. `blocks` are the per-block entries, (key, γ) pairs, in order. `sweep`
    says that `default` holds the values of a sweep (laid along the pipeline's sweep axis) rather than
    per-sample values.
    """

    default: GammaPart = DEFAULT_GAMMA
    blocks: tuple[tuple[str, GammaPart], ...] = ()
    sweep: bool = False

    def __post_init__(self):
        object.__setattr__(self, "default", _checked_part(self.default, "gamma"))
        blocks, keys_by_prefix = [], {}
        for entry in self.blocks:
            if not (isinstance(entry, tuple) and len(entry) == 2):
                raise FlexIPInputError(f"per-block gamma entries are (key, gamma) pairs, got {entry!r}")
            key, value = entry
            if not isinstance(key, str) or not key.strip() or key == "default":
                raise FlexIPInputError(f"per-block gamma keys are down / mid / up or layer-name prefixes, got {key!r}")
            prefix = block_prefix(key)
            if prefix in keys_by_prefix:
                raise FlexIPInputError(f"per-block gamma keys {keys_by_prefix[prefix]!r} and {key!r} name the same block")
            keys_by_prefix[prefix] = key
            blocks.append((key, _checked_part(value, f"gamma[{key!r}]")))
        object.__setattr__(self, "blocks", tuple(blocks))
        if not isinstance(self.sweep, bool):
            raise FlexIPInputError(f"Gamma.sweep is True or False, got {self.sweep!r}")
        if self.sweep and (self.blocks or not isinstance(self.default, tuple)):
            raise FlexIPInputError("a gamma sweep is a list of plain numbers (no per-block entries, no schedule)")

    @classmethod
    def of(cls, value: GammaLike) -> Gamma:
        """Any form of γ the API takes → a `Gamma` (a `Gamma` is returned as it is).

        A list or tuple is a sweep; a 1-D tensor holds per-sample values; a mapping is per block (its values
        take any form but a sweep or a mapping; a list there holds per-sample values)."""
        if isinstance(value, Gamma):
            return value
        if isinstance(value, str):
            raise FlexIPInputError(f"gamma {value!r} is text: read it with flexip.gate.parse_gamma (expected {TEXT_FORMS})")
        if isinstance(value, Mapping):
            if not value:
                raise FlexIPInputError("a per-block gamma mapping must not be empty")
            return cls(value.get("default", DEFAULT_GAMMA), tuple((key, part) for key, part in value.items() if key != "default"))
        if isinstance(value, (list, tuple)):
            if not value:
                raise FlexIPInputError("a gamma sweep needs at least one value")
            return cls(tuple(value), sweep=True)
        return cls(value)

    # ---- what it is ------------------------------------------------------------------------------------
    @property
    def form(self) -> str:
        if self.blocks:
            return "per-block"
        if self.sweep:
            return "sweep"
        if isinstance(self.default, float):
            return "number"
        return "per-sample" if isinstance(self.default, tuple) else "schedule"

    @property
    def numbers(self) -> tuple[float, ...] | None:
        """Its plain numbers: (γ,) for a number, a sweep's values; None for the other forms."""
        if self.form == "number":
            return (self.default,)
        return self.default if self.sweep else None

    @property
    def is_scheduled(self) -> bool:
        """True when some part changes over the denoising steps (resolve it per step with `at_steps`)."""
        return any(callable(part) for part in self._parts())

    def part_for(self, layer_name: str) -> GammaPart:
        """The γ of one attention layer: the block entry with the longest matching prefix, else `default`."""
        return longest_prefix(((block_prefix(key), part) for key, part in self.blocks), layer_name, self.default)

    # ---- derived values (built from checked parts, not checked again) ----------------------------------
    def for_batch(self, num_prompts: int, images_per_prompt: int) -> Gamma:
        """This γ for a pipeline batch laid out prompts × sweep × images per prompt: a sweep's values and
        per-prompt values become one value per row."""
        if self.sweep:
            rows = tuple(value for _ in range(num_prompts) for value in self.default for _ in range(images_per_prompt))
            return derived(Gamma, default=rows, blocks=(), sweep=False)

        def per_row(part: GammaPart) -> GammaPart:
            if not isinstance(part, tuple):
                return part
            if len(part) != num_prompts:
                raise FlexIPInputError(f"a per-sample gamma needs one value per prompt ({num_prompts}), got {len(part)}")
            return tuple(value for value in part for _ in range(images_per_prompt))

        return self._map_parts(per_row)

    def at_steps(self, num_steps: int) -> tuple[Gamma, ...]:
        """The γ of each of `num_steps` denoising steps, with no schedule left: each schedule is called once
        per step, at step fraction index / max(1, num_steps − 1), and its value checked then."""
        if not self.is_scheduled:
            return (self,) * num_steps
        schedules = {id(part): part for part in self._parts() if callable(part)}  # a schedule used twice is called once
        steps = []
        for index in range(num_steps):
            fraction = index / max(1, num_steps - 1)
            values = {
                key: check_gamma_value(schedule(fraction), f"gamma schedule value at step fraction {fraction:.3g}")
                for key, schedule in schedules.items()
            }
            steps.append(self._map_parts(lambda part, values=values: values[id(part)] if callable(part) else part))
        return tuple(steps)

    def _parts(self) -> tuple[GammaPart, ...]:
        return (self.default, *(part for _, part in self.blocks))

    def _map_parts(self, function: Callable[[GammaPart], GammaPart]) -> Gamma:
        blocks = tuple((key, function(part)) for key, part in self.blocks)
        return derived(Gamma, default=function(self.default), blocks=blocks, sweep=self.sweep)


GammaValue = float | int | torch.Tensor | Sequence[float] | GammaSchedule | Callable[[float], float]
GammaLike = Gamma | GammaValue | Mapping[str, GammaValue]
