"""Several `flexip miniworld evaluate` results side by side: which training run meets which target, and how
methods with one dial compare.

    flexip miniworld compare runs/s51/validation runs/s52/validation [--label s51 --label s52]
    flexip miniworld compare A/report B/report C/report D/report --label FlexIP --label FlexIP \
        --label IP-Adapter --label IP-Adapter --plot frontier.png

Reads each folder's evaluation.json (or the file itself) and returns markdown: one row per run (the dial's
5-value curves of CLIP-T and DINO-I, the first CLIP-T step with its 95 % interval, DINO identification at
dial 1, the targets met); and, for results with the 11-value sweep, one row per *method* — runs with the same
label are seeds of one method — with mean ± standard deviation over its seeds of:

- the frontier area: what the (CLIP-T, DINO-I) points of the sweep dominate above one reference point for
  the whole comparison (the base model's DINO-I, the lowest CLIP-T of any point compared), and the same for
  (CLIP-T, DINO identification) above the base's identification;
- DINO-I at the CLIP-T that the last method reaches at dial 1 (`identity_at_text`: C1's "at IP-Adapter's
  scale-1 CLIP-T"; a method whose curve keeps more text than that everywhere gets the DINO-I of its
  least-text point, which then has both more text and that identity);
- Spearman ρ, the largest neighbour step share and the control range of DINO-I and CLIP-T;
- mRank at each method's default setting (FlexIP γ = 0.5, IP-Adapter scale 1) over CLIP-T, CLIP-I, DINO-I and
  DINO identification, from the seed means;

and one row per run of what the dial's two ends keep (`both_ends_table`: issue 14's "both ends" targets).

Nothing is re-scored; the numbers are the evaluations' own.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from flexip.atomic import atomic_path
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
    dial = result.get("dial", "gamma")
    missing += [f"{dial}={g}" for g in result["gammas"] if "DINO-I identification" not in result["scores"].get(f"{dial}={g}", {})]
    if missing:
        raise FlexIPInputError(f"{file} lacks {', '.join(missing)} (written by an older `flexip miniworld evaluate`? run it again)")
    return result


def meets(value, bar: float | None) -> bool:
    """A ratio against its bar (`value >= bar`), or a flag (bar None) that must be true."""
    return bool(value) if bar is None else value >= bar


def targets_met(result: dict) -> list[str]:
    """The short names of the targets `result` meets (point estimates, as `check_targets` reads them)."""
    return [name for key, name, bar in TARGETS if meets(result["targets"][key], bar)]


def comparison_table(results: dict[str, dict]) -> str:
    """One markdown row per labelled result."""
    lines = [
        "| run | identities | CLIP-T γ = 0 → 1 | first CLIP-T step [95 %] | DINO-I γ = 0 → 1 | DINO id. γ = 1 | targets met | missed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, result in results.items():
        dial = result.get("dial", "gamma")
        curve = {m: [result["scores"][f"{dial}={g}"][m] for g in result["gammas"]] for m in ("CLIP-T", "DINO-I")}
        step = result.get("gamma_steps", {}).get("CLIP-T", [None])[0]
        step_text = f"{step['mean']:+.4f} [{step['low']:+.4f}, {step['high']:+.4f}]" if step else "—"
        met = targets_met(result)
        missed = [name for _, name, _ in TARGETS if name not in met]
        identified = result["scores"][f"{dial}={result['gammas'][-1]}"]["DINO-I identification"]
        lines.append(
            f"| {label} | {identity_range(result)} | "
            + " ".join(f"{v:.4f}" for v in curve["CLIP-T"])
            + f" | {step_text} | "
            + " ".join(f"{v:.3f}" for v in curve["DINO-I"])
            + f" | {identified:.3f}"
            + f" | {len(met)}/{len(TARGETS)} | {', '.join(missed) or '—'} |"
        )
    return "\n".join(lines)


#: issue 14's "both ends keep the subject" and "identity at γ = 1" targets: (key in dial_statistics' "both ends",
#: short name, bar); a bar of None is a flag that must be true
BOTH_ENDS = (
    ("DINO id. at dial 0 / chance", "id. 0 / chance", 3.0),
    ("CLIP-T at dial 0 / base", "CLIP-T 0 / base", 0.95),
    ("CLIP-T falls at every step of the 5-value sweep", "CLIP-T falls", None),
    ("DINO-I rises at every step of the 5-value sweep", "DINO-I rises", None),
    ("DINO id. at dial 1 / true renders'", "id. 1 / true renders'", 0.5),
)


def both_ends_table(results: dict[str, dict]) -> str:
    """One markdown row per labelled result with the 11-value sweep: what each end of its dial keeps, the bar
    beside each ratio, and how many of the five targets it meets."""
    header = " | ".join(f"{name} (≥ {bar:g})" if bar is not None else name for _, name, bar in BOTH_ENDS)
    lines = [f"| run | identities | {header} | met |", "|---|---|" + "---|" * (len(BOTH_ENDS) + 1)]
    for label, result in results.items():
        ends = result["dial_statistics"]["both ends"]
        met = sum(meets(ends[key], bar) for key, _, bar in BOTH_ENDS)
        cells = [("yes" if ends[key] else "no") if bar is None else f"{ends[key]:.2f}" for key, _, bar in BOTH_ENDS]
        lines.append(f"| {label} | {identity_range(result)} | " + " | ".join(cells) + f" | {met}/{len(BOTH_ENDS)} |")
    return "\n".join(lines)


def _ends(ends: list[dict], metric: str, digits: int) -> str:
    return f"{ends[0][metric]:.{digits}f} → {ends[1][metric]:.{digits}f}"


def dial_table(results: dict[str, dict]) -> str:
    """One markdown row per labelled result with the 11-value sweep: each metric at the dial's two ends (dial 0 and
    dial 1; for IP-Adapter dial 0 is the base), ρ and the largest neighbour step share of DINO-I and CLIP-T, and the
    both-ends ratios, so every run's numbers sit in one table."""
    lines = [
        "| run | identities | base CLIP-T | CLIP-T 0 → 1 | DINO-I 0 → 1 | DINO id. 0 → 1 | ρ DINO-I / CLIP-T "
        "| largest step share DINO-I / CLIP-T | id. 0 / chance | CLIP-T 0 / base | id. 1 / true renders' |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, result in results.items():
        dial, scores, statistics = result.get("dial", "gamma"), result["scores"], result["dial_statistics"]
        ends = [scores[f"{dial}={value}"] for value in (result["gammas"][0], result["gammas"][-1])]
        both = statistics["both ends"]
        lines.append(
            f"| {label} | {identity_range(result)} | {scores['base']['CLIP-T']:.4f} | {_ends(ends, 'CLIP-T', 4)} | {_ends(ends, 'DINO-I', 4)} "
            f"| {_ends(ends, 'DINO-I identification', 3)} | {statistics['DINO-I']['rho']:+.3f} / {statistics['CLIP-T']['rho']:+.3f} "
            f"| {statistics['DINO-I']['largest_step_share']:.3f} / {statistics['CLIP-T']['largest_step_share']:.3f} | "
            + " | ".join(f"{both[key]:.3f}" for key, _, bar in BOTH_ENDS if bar is not None)
            + " |"
        )
    return "\n".join(lines)


#: each method's default dial setting (FlexIP's pipeline default γ; diffusers' default IP-Adapter scale)
DEFAULT_SETTING = {"gamma": 0.5, "scale": 1.0}
RANK_METRICS = ("CLIP-T", "CLIP-I", "DINO-I", "DINO-I identification")


def sweep_points(result: dict, identity: str = "DINO-I") -> list[tuple[float, float]]:
    """(CLIP-T, identity) at each value of the 11-value sweep, in dial order."""
    statistics = result.get("dial_statistics")
    if statistics is None:
        raise FlexIPInputError("this evaluation has no 11-value sweep (dial_statistics): run `flexip miniworld evaluate` again")
    return list(zip(statistics["CLIP-T"]["curve"], statistics[identity]["curve"]))


def _mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    import numpy as np

    array = np.asarray(values, dtype=float)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def method_statistics(groups: dict[str, list[dict]]) -> dict[str, dict]:
    """Per method label: every statistic of the module docstring as (mean, sd, n) over its runs (seeds)."""
    from flexip.evaluation.frontier import dominated_area, identity_at_text

    every = [r for runs in groups.values() for r in runs]
    lowest_text = min(x for r in every for x, _ in sweep_points(r))
    base = {m: sum(r["scores"]["base"][m] for r in every) / len(every) for m in ("DINO-I", "DINO-I identification")}
    last = list(groups.values())[-1]
    text_level = sum(r["dial_statistics"]["CLIP-T"]["curve"][-1] for r in last) / len(last)
    out = {}
    for label, runs in groups.items():
        per_run: dict[str, list[float]] = {}
        add = lambda name, value, into=per_run: into.setdefault(name, []).append(value)  # noqa: E731

        for r in runs:
            stats = r["dial_statistics"]
            add("area DINO-I", dominated_area(sweep_points(r), (lowest_text, base["DINO-I"])))
            add("area DINO id.", dominated_area(sweep_points(r, "DINO-I identification"), (lowest_text, base["DINO-I identification"])))
            points = sweep_points(r)
            found = identity_at_text(points, text_level)
            if found is None and min(x for x, _ in points) > text_level:  # never that little text: its least-text point, which has more
                found = min(points)[1]
            add("DINO-I at the reference CLIP-T", float("nan") if found is None else found)
            for metric in ("DINO-I", "CLIP-T", "DINO-I identification"):
                for key in ("rho", "largest_step_share", "control_range"):
                    add(f"{metric} {key}", stats[metric][key])
            default = f"{r.get('dial', 'gamma')}={DEFAULT_SETTING[r.get('dial', 'gamma')]}"
            for metric in RANK_METRICS:
                add(f"default {metric}", r["scores"][default][metric])
        out[label] = {name: (*_mean_sd(values), len(values)) for name, values in per_run.items()}
        reached = [v for v in per_run["DINO-I at the reference CLIP-T"] if not math.isnan(v)]  # over the seeds that get there
        out[label]["DINO-I at the reference CLIP-T"] = (*_mean_sd(reached), len(reached)) if reached else (float("nan"), float("nan"), 0)
    out["_reference"] = {
        "lowest CLIP-T": lowest_text,
        "base DINO-I": base["DINO-I"],
        "base DINO id.": base["DINO-I identification"],
        "CLIP-T level": text_level,
    }
    return out


def _cell(column: str, mean: float, sd: float, n: int, seeds: int) -> str:
    if math.isnan(mean) and column == "DINO-I at the reference CLIP-T":
        return "not reached"  # every point of every seed's sweep has less CLIP-T than the reference level
    return f"{mean:.4f} ± {sd:.4f}" + (f" ({n} of {seeds} seeds reach it)" if n < seeds else "")


def default_ranking(stats: dict[str, dict]):
    """`rank_methods` over the seed means at each method's default setting (`method_statistics` without its
    "_reference"): a frame with method, mRank and the metrics, in the methods' order."""
    import pandas as pd

    from flexip.evaluation.ranking import rank_methods

    table = pd.DataFrame([{"method": label, **{m: values[f"default {m}"][0] for m in RANK_METRICS}} for label, values in stats.items()])
    return rank_methods(table, list(RANK_METRICS))


def group_by_label(named: list[tuple[str, dict]]) -> dict[str, list[dict]]:
    """(label, result) pairs → label: its results in order (a label given to several results: seeds of one method)."""
    groups: dict[str, list[dict]] = {}
    for name, result in named:
        groups.setdefault(name, []).append(result)
    return groups


def method_table(groups: dict[str, list[dict]]) -> str:
    """Markdown: one row per method (mean ± sd over seeds), then mRank at the default settings."""
    stats = method_statistics(groups)
    reference = stats.pop("_reference")
    columns = (
        "area DINO-I",
        "area DINO id.",
        "DINO-I at the reference CLIP-T",
        "DINO-I rho",
        "CLIP-T rho",
        "DINO-I largest_step_share",
        "CLIP-T largest_step_share",
        "DINO-I control_range",
        "DINO-I identification control_range",
    )
    lines = [
        f"Reference point: CLIP-T {reference['lowest CLIP-T']:.4f} (the lowest compared), base DINO-I {reference['base DINO-I']:.4f}, "
        f"base DINO id. {reference['base DINO id.']:.3f}; reference CLIP-T level {reference['CLIP-T level']:.4f} (the last method at dial 1; "
        "*not reached*: no dial value of the method gets that much CLIP-T). Mean ± sd over seeds (n).",
        "",
        "| method | n | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for label, values in stats.items():
        seeds = values[columns[0]][2]
        cells = [_cell(c, *values[c], seeds) for c in columns]
        lines.append(f"| {label} | {seeds} | " + " | ".join(cells) + " |")
    ranked = default_ranking(stats)
    lines += [
        "",
        "mRank at each method's default setting (FlexIP γ = 0.5, IP-Adapter scale 1), seed means:",
        "",
        "| method | mRank | " + " | ".join(RANK_METRICS) + " |",
        "|---|---|" + "---|" * len(RANK_METRICS),
    ]
    for _, row in ranked.iterrows():
        lines.append(f"| {row['method']} | {row['mRank']:.2f} | " + " | ".join(f"{row[m]:.4f}" for m in RANK_METRICS) + " |")
    return "\n".join(lines)


def plot_frontiers(groups: dict[str, list[dict]], path: Path) -> Path:
    """Identity against text along each method's dial: each seed a thin line, the seeds' mean bold; one panel for
    DINO-I, one for DINO identification; the base model as a grey cross."""
    import numpy as np
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9.0, 3.8))
    axes = figure.subplots(1, 2)
    colours = ["tab:green", "tab:red", "tab:blue", "tab:orange", "tab:purple", "tab:brown"]
    for axis, identity in zip(axes, ("DINO-I", "DINO-I identification")):
        for colour, (label, runs) in zip(colours, groups.items()):
            curves = np.array([sweep_points(r, identity) for r in runs])
            for curve in curves:
                axis.plot(curve[:, 0], curve[:, 1], color=colour, lw=0.7, alpha=0.5)
            mean = curves.mean(axis=0)
            axis.plot(mean[:, 0], mean[:, 1], color=colour, lw=2.2, marker="o", ms=3, label=f"{label} (n = {len(runs)})")
            axis.annotate("1", mean[-1], fontsize=7, color=colour, xytext=(3, 3), textcoords="offset points")
            axis.annotate("0", mean[0], fontsize=7, color=colour, xytext=(3, -9), textcoords="offset points")
        every = [r for runs in groups.values() for r in runs]
        axis.plot(
            np.mean([r["scores"]["base"]["CLIP-T"] for r in every]),
            np.mean([r["scores"]["base"][identity] for r in every]),
            "x",
            color="0.4",
            ms=8,
            label="base model",
        )
        axis.set_xlabel("CLIP-T (text) →", fontsize=8)
        axis.set_ylabel(f"{identity} (subject) →", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    first = list(groups.values())[0][0]
    figure.suptitle(f"held-out identities {identity_range(first)}: the dial from 0 to 1 (11 values); thin: one seed, bold: mean", fontsize=9)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=110)
    return path


def compare_results(named: list[tuple[str, dict]], plot: Path | None = None) -> str:
    """`flexip miniworld compare`'s markdown for (label, result) pairs, in order (a label given to several results
    makes them seeds of one method, numbered in the per-run tables); with the 11-value sweep, the per-method table,
    the both-ends and dial-ends tables and, if `plot` is given, the frontier plot there."""
    from collections import Counter

    groups = group_by_label(named)
    rows, seen = {}, Counter()
    for name, result in named:
        seen[name] += 1
        rows[name if len(groups[name]) == 1 else f"{name} #{seen[name]}"] = result
    text = comparison_table(rows)
    if all("dial_statistics" in r for _, r in named):
        text += "\n\n" + method_table(groups) + "\n\nWhat each end of the dial keeps, per run:\n\n" + both_ends_table(rows)
        text += "\n\nEvery run at dial 0 and dial 1:\n\n" + dial_table(rows)
        if plot is not None:
            plot_frontiers(groups, plot)
    elif plot is not None:
        raise FlexIPInputError("--plot needs evaluations with the 11-value sweep (run `flexip miniworld evaluate` again)")
    return text
