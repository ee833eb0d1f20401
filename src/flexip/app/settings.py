"""What one render asks for, read once from the page's controls into an immutable value.

The dial takes one of four forms (the advanced panel chooses): one γ (the slider), w_pres and w_pers set
independently, γ per block (down / mid / up), or γ from a start to an end value over the denoising steps.
Each form is written as the very text `flexip generate --gamma` reads and parsed by the library's one parser
(`flexip.gate.parse_gamma`), so the image and the copied command line cannot disagree.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from flexip.errors import FlexIPInputError
from flexip.gate import Gamma, check_weight, parse_gamma
from flexip.version import __version__

DIAL_MODES = {
    "gamma": "one γ (the slider)",
    "weights": "w_pres and w_pers set independently",
    "blocks": "γ per block (down / mid / up)",
    "schedule": "γ from start to end over the steps",
}
MAX_STEPS = 150
MAX_SEED = 2**32 - 1


def _number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FlexIPInputError(f"{name} must be a number, got {value!r}")
    return round(float(value), 4)  # what a slider means; also what the command line and the PNG say


def _text(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class Dial:
    """The gate in one of `DIAL_MODES`: `gamma` (the parsed `Gamma`, None in "weights" mode) and its `text`."""

    mode: str
    text: str  # "0.5", "down=0.2,mid=0.5,up=0.8", "1:0.2" or "w_pres=0.7,w_pers=0.4"
    gamma: Gamma | None = None
    w_pres: float | None = None
    w_pers: float | None = None

    @classmethod
    def read(
        cls, mode: str, gamma: float, w_pres: float = 0.5, w_pers: float = 0.5, blocks: Sequence[float] = (0.5, 0.5, 0.5), schedule=(1.0, 0.0)
    ) -> Dial:
        if mode not in DIAL_MODES:  # (a sweep is made by `Dial.sweep`)
            raise FlexIPInputError(f"unknown dial mode {mode!r}; expected one of {', '.join(DIAL_MODES)}")
        if mode == "weights":
            pres, pers = check_weight(_number(w_pres, "w_pres"), "w_pres"), check_weight(_number(w_pers, "w_pers"), "w_pers")
            return cls(mode, f"w_pres={_text(pres)},w_pers={_text(pers)}", w_pres=pres, w_pers=pers)
        if mode == "blocks":
            down, mid, up = (_number(value, f"gamma[{key}]") for key, value in zip(("down", "mid", "up"), blocks))
            text = f"down={_text(down)},mid={_text(mid)},up={_text(up)}"
        elif mode == "schedule":
            start, end = (_number(value, name) for name, value in zip(("gamma start", "gamma end"), schedule))
            text = f"{_text(start)}:{_text(end)}"
        else:
            text = _text(_number(gamma, "gamma"))
        return cls(mode, text, gamma=parse_gamma(text))

    @classmethod
    def sweep(cls, values: Sequence[float]) -> Dial:
        """Plain γ values rendered in one batched call from one noise (the sweep strip, the control surface)."""
        text = ",".join(_text(_number(value, "gamma")) for value in values)
        return cls("sweep", text, gamma=parse_gamma(text))

    def pipeline_arguments(self) -> dict:
        if self.mode == "weights":
            return {"w_pres": self.w_pres, "w_pers": self.w_pers}
        return {"gamma": self.gamma}

    def command_arguments(self) -> list[str]:
        if self.mode == "weights":
            return ["--w-pres", _text(self.w_pres), "--w-pers", _text(self.w_pers)]
        return ["--gamma", self.text]


@dataclass(frozen=True)
class RenderSettings:
    """Everything a render needs besides the references; checked when made."""

    prompt: str
    dial: Dial
    negative_prompt: str = ""
    adapter_scale: float = 1.0
    steps: int = 30
    guidance: float = 7.5
    seed: int = 0

    def __post_init__(self):
        prompt = self.prompt.strip() if isinstance(self.prompt, str) else ""
        if not prompt:
            raise FlexIPInputError("write a prompt (e.g. 'a bird in the snow')")
        object.__setattr__(self, "prompt", prompt)
        object.__setattr__(self, "negative_prompt", (self.negative_prompt or "").strip())
        object.__setattr__(self, "adapter_scale", check_weight(_number(self.adapter_scale, "adapter scale"), "adapter scale"))
        steps = _number(self.steps, "steps")
        if steps != int(steps) or not 1 <= steps <= MAX_STEPS:
            raise FlexIPInputError(f"steps must be a whole number from 1 to {MAX_STEPS}, got {self.steps}")
        object.__setattr__(self, "steps", int(steps))
        guidance = _number(self.guidance, "guidance")
        if guidance < 0:
            raise FlexIPInputError(f"guidance must be ≥ 0 (1 or less turns it off), got {guidance}")
        object.__setattr__(self, "guidance", guidance)
        seed = _number(self.seed, "seed")
        if seed != int(seed) or not 0 <= seed <= MAX_SEED:
            raise FlexIPInputError(f"seed must be a whole number from 0 to {MAX_SEED}, got {self.seed}")
        object.__setattr__(self, "seed", int(seed))

    def pipeline_arguments(self) -> dict:
        """Keyword arguments of `FlexIPPipeline.__call__` (besides prompt, references and generator)."""
        return {
            **self.dial.pipeline_arguments(),
            "adapter_scale": self.adapter_scale,
            "negative_prompt": self.negative_prompt or None,
            "num_inference_steps": self.steps,
            "guidance_scale": self.guidance,
        }

    def command(self, references: Sequence[str], base: str, adapter: str | None = None) -> str:
        """The `flexip generate` call that renders the same image."""
        arguments = ["flexip", "generate", "--reference", *references, "--prompt", self.prompt, *self.dial.command_arguments()]
        arguments += ["--adapter-scale", _text(self.adapter_scale), "--steps", str(self.steps), "--guidance", _text(self.guidance)]
        arguments += ["--seed", str(self.seed), "--base", base]
        if adapter:
            arguments += ["--adapter", adapter]
        if self.negative_prompt:
            arguments += ["--negative-prompt", self.negative_prompt]
        return shlex.join(arguments)

    def png_text(self, command: str, base: str, adapter: str | None = None) -> dict[str, str]:
        """The settings a downloaded PNG carries as text chunks."""
        text = {
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "gamma": self.dial.text,
            "adapter_scale": _text(self.adapter_scale),
            "seed": str(self.seed),
            "steps": str(self.steps),
            "guidance": _text(self.guidance),
            "model": base,
            "adapter": adapter or f"{base}'s own",
            "command": command,
            "Software": f"flexip {__version__} (FlexIP Studio)",
        }
        return text
