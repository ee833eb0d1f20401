"""Several `flexip miniworld evaluate` results side by side: which training run meets which target.

    flexip miniworld compare runs/s51/validation runs/s52/validation [--label s51 --label s52]

Reads each folder's evaluation.json (or the file itself) and returns one markdown table: the γ curves of
CLIP-T and DINO-I, the first CLIP-T step with its 95 % interval, DINO identification at γ = 1, and the
targets met. Nothing is re-scored; the numbers are the evaluations' own.
"""

from __future__ import annotations

import json
from pathlib import Path

from flexip.errors import FlexIPInputError
from flexip_miniworld.evaluate import identity_range

#: The short names of `check_targets`' five entries, in its order; the last two are ratios with a bar.
TARGETS = (
    ("DINO-I rises with gamma (monotone)", "DINO-I ↑", None),
    ("CLIP-I rises with gamma (monotone)", "CLIP-I ↑", None),
    ("CLIP-T falls with gamma (monotone)", "CLIP-T ↓", None),
    ("DINO-I gap closed at gamma=1 (target >= 0.5)", "gap", 0.5),
    ("CLIP-T at gamma=0 / base (target >= 0.9)", "CLIP-T γ=0", 0.9),
)


def load_result(path: str | Path) -> dict:
    """An evaluation.json, given the file or the folder `flexip miniworld evaluate --out` wrote."""
    path = Path(path)
    file = path / "evaluation.json" if path.is_dir() else path
    try:
        result = json.loads(file.read_text())
    except FileNotFoundError:
        raise FlexIPInputError(f"{file} not found: expected a folder written by `flexip miniworld evaluate` (or its evaluation.json)") from None
    except json.JSONDecodeError as error:
        raise FlexIPInputError(f"{file} is not valid JSON ({error})") from None
    if not {"scores", "targets", "gammas", "subjects"} <= set(result):
        raise FlexIPInputError(f"{file} is not a `flexip miniworld evaluate` result (no scores / targets / gammas / subjects)")
    missing = [key for key, _, _ in TARGETS if key not in result["targets"]]
    missing += [f"gamma={g}" for g in result["gammas"] if "DINO-I identification" not in result["scores"].get(f"gamma={g}", {})]
    if missing:
        raise FlexIPInputError(f"{file} lacks {', '.join(missing)} (written by an older `flexip miniworld evaluate`? run it again)")
    return result


def targets_met(result: dict) -> list[str]:
    """The short names of the targets `result` meets (point estimates, as `check_targets` reads them)."""
    met = []
    for key, name, bar in TARGETS:
        value = result["targets"][key]
        if (value >= bar) if bar is not None else value:
            met.append(name)
    return met


def comparison_table(results: dict[str, dict]) -> str:
    """One markdown row per labelled result."""
    lines = [
        "| run | identities | CLIP-T γ = 0 → 1 | first CLIP-T step [95 %] | DINO-I γ = 0 → 1 | DINO id. γ = 1 | targets met | missed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, result in results.items():
        curve = {m: [result["scores"][f"gamma={g}"][m] for g in result["gammas"]] for m in ("CLIP-T", "DINO-I")}
        step = result.get("gamma_steps", {}).get("CLIP-T", [None])[0]
        step_text = f"{step['mean']:+.4f} [{step['low']:+.4f}, {step['high']:+.4f}]" if step else "—"
        met = targets_met(result)
        missed = [name for _, name, _ in TARGETS if name not in met]
        identified = result["scores"][f"gamma={result['gammas'][-1]}"]["DINO-I identification"]
        lines.append(
            f"| {label} | {identity_range(result)} | "
            + " ".join(f"{v:.4f}" for v in curve["CLIP-T"])
            + f" | {step_text} | "
            + " ".join(f"{v:.3f}" for v in curve["DINO-I"])
            + f" | {identified:.3f}"
            + f" | {len(met)}/{len(TARGETS)} | {', '.join(missed) or '—'} |"
        )
    return "\n".join(lines)
