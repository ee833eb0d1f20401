"""The dynamic weight gate: FlexIP's user-facing dial.

    w_pres = γ,  w_pers = 1 − γ,  and both branches are multiplied by the global adapter scale s.

γ ("gamma", the one public name used by the API, the CLI flag `--gamma`, config keys and the UI) is one
typed, immutable value, `Gamma`, checked completely once, when it is made. `Gamma.of` makes it from any
form the API takes, `parse_gamma` from any text form (CLI flags, config files):

- a number in [0, 1]                                   0.7                        "0.7"
- a sweep: plain numbers, one batched pass, one noise  [0, 0.5, 1]                "0,0.5,1" or "0" "0.5" "1"
- per-sample values (training; one per prompt in the   torch.tensor([0.2, 0.9])
  pipeline)
- per block: down / mid / up or any prefix of an       {"down": 0.3, "up": 0.8}   "down=0.3,up=1.0:0.4"
  attention layer name ("up_blocks.1"); the longest
  matching prefix wins, "default" covers the rest (else 0.5)
- a schedule over the denoising steps, of the step     GammaSchedule(1.0, 0.2)    "1.0:0.2"
  fraction t = index / max(1, steps − 1)               or any callable of t

Instead of γ, the two branch weights can be given independently (`w_pres`, `w_pers` ≥ 0): together with
the scale they span the continuous control surface. `GateSettings` holds γ (or the two weights) and the
scale, checked once; it is what the attention processors read, with every block's branch weights
computed when it is made. The pipeline never changes one: it derives the gate of its batch (`for_batch`)
and of each denoising step (`at_steps`, the one place a schedule is evaluated: once per step).
"""

from flexip.gate.gamma import DEFAULT_GAMMA, Gamma, GammaLike, GammaSchedule, GammaValue, check_gamma_value, check_weight
from flexip.gate.settings import GateSettings, gate_weights
from flexip.gate.text import parse_gamma, sweep_values

__all__ = [
    "DEFAULT_GAMMA",
    "Gamma",
    "GammaLike",
    "GammaSchedule",
    "GammaValue",
    "GateSettings",
    "check_gamma_value",
    "check_weight",
    "gate_weights",
    "parse_gamma",
    "sweep_values",
]
