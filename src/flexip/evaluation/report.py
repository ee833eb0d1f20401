"""Plots and sweep statistics from result files (matplotlib, no display needed).

- `identity_vs_text.png`: identity preservation (CLIP-I, DINO-I) against text fidelity (CLIP-T), one
  colour per method, the paper's Fig. 2. A sweep is drawn as a connected path labelled with its
  control values, so FlexIP's γ path and IP-Adapter's scale path share the same axes.
- `sweep_curves.png`: every metric against the control value, one line per swept method.
- `sweep_statistics.csv` / `.md`: monotonicity (Spearman ρ) and the largest jump per method × metric
  (see `flexip.evaluation.curves`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from flexip.atomic import atomic_path, write_text
from flexip.errors import FlexIPInputError
from flexip.evaluation.curves import CurveStatistics, curve_statistics
from flexip.evaluation.metrics import METRICS
from flexip.evaluation.ranking import markdown_table
from flexip.evaluation.results import EvaluationResult

IDENTITY_METRICS = ("CLIP-I", "DINO-I")
TEXT_METRIC = "CLIP-T"


def group_by_method(results: Sequence[EvaluationResult]) -> dict[tuple[str, str | None], list[EvaluationResult]]:
    """{(method, control name or None): results sorted by control value}, in first-seen order."""
    groups: dict[tuple[str, str | None], list[EvaluationResult]] = defaultdict(list)
    for result in results:
        groups[(result.method, result.control["name"] if result.control else None)].append(result)
    for (method, control), members in groups.items():
        if control is not None:
            members.sort(key=lambda result: result.control["value"])
            values = [result.control["value"] for result in members]
            if len(set(values)) != len(values):
                raise FlexIPInputError(f"{method}: two results share the same {control} value ({values})")
        elif len(members) > 1:
            raise FlexIPInputError(f"{len(members)} results for {method!r} without a control value; give each a distinct name")
    return dict(groups)


def _common_metrics(results: Sequence[EvaluationResult]) -> list[str]:
    return [name for name in METRICS if all(name in result.overall for result in results)]


def sweep_statistics(results: Sequence[EvaluationResult]) -> list[CurveStatistics]:
    """Monotonicity and largest jump for every swept method (≥ 2 control values) and metric."""
    statistics = []
    for (method, control), members in group_by_method(results).items():
        if control is None or len(members) < 2:
            continue
        controls = [result.control["value"] for result in members]
        for metric in _common_metrics(members):
            values = [result.overall[metric] for result in members]
            statistics.append(curve_statistics(method, control, metric, controls, values))
    return statistics


def statistics_markdown(statistics: Sequence[CurveStatistics]) -> str:
    header = ["method", "control", "metric", "points", "from → to", "Spearman ρ", "largest jump"]
    rows = [
        [
            item.method,
            f"{item.control} {item.control_min:g}…{item.control_max:g}",
            item.metric,
            str(item.points),
            f"{item.value_at_min:.3f} → {item.value_at_max:.3f}",
            "n/a" if item.spearman_rho != item.spearman_rho else f"{item.spearman_rho:+.2f}",
            f"{item.largest_jump:.0%}",
        ]
        for item in statistics
    ]
    return markdown_table(header, rows)


def plot_identity_vs_text(results: Sequence[EvaluationResult], path: str | Path) -> Path:
    """Scatter of identity (CLIP-I, DINO-I) against text fidelity (CLIP-T); one path per swept method."""
    metrics = _common_metrics(results)
    panels = [name for name in IDENTITY_METRICS if name in metrics]
    if TEXT_METRIC not in metrics or not panels:
        raise FlexIPInputError("the identity-vs-text plot needs CLIP-T and CLIP-I or DINO-I in every result")
    figure = Figure(figsize=(5.5 * len(panels), 4.8), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    groups = group_by_method(results)
    colours = {key: f"C{index % 10}" for index, key in enumerate(groups)}
    for axis, identity in zip(axes, panels):
        for key, members in groups.items():
            method, control = key
            xs = [result.overall[TEXT_METRIC] for result in members]
            ys = [result.overall[identity] for result in members]
            if control is None:
                label = method
            elif len(members) == 1:
                label = f"{method} ({control}={members[0].control['value']:g})"
            else:
                label = f"{method} ({control} sweep)"
            axis.plot(xs, ys, marker="o", linestyle="-" if len(members) > 1 else "none", color=colours[key], label=label)
            if control is not None:
                for result, x, y in zip(members, xs, ys):
                    axis.annotate(f"{result.control['value']:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        axis.set_xlabel(f"{TEXT_METRIC} (text fidelity, personalization) →")
        axis.set_ylabel(f"{identity} (identity preservation) →")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.suptitle("Identity preservation vs. text fidelity")
    return _save(figure, path)


def plot_sweep_curves(results: Sequence[EvaluationResult], path: str | Path) -> Path:
    """Each metric against the control value, one line per swept method (legend: ρ and largest jump)."""
    sweeps = {key: members for key, members in group_by_method(results).items() if key[1] is not None and len(members) > 1}
    if not sweeps:
        raise FlexIPInputError("no sweep to plot: need results of one method at ≥ 2 control values (e.g. gamma)")
    metrics = _common_metrics([result for members in sweeps.values() for result in members])
    statistics = {(item.method, item.control, item.metric): item for item in sweep_statistics(results)}
    columns = min(3, len(metrics))
    rows = -(-len(metrics) // columns)
    figure = Figure(figsize=(4.6 * columns, 3.6 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for axis, metric in zip(axes, metrics):
        for index, ((method, control), members) in enumerate(sweeps.items()):
            item = statistics[(method, control, metric)]
            rho = "n/a" if item.spearman_rho != item.spearman_rho else f"{item.spearman_rho:+.2f}"
            axis.plot(
                [result.control["value"] for result in members],
                [result.overall[metric] for result in members],
                marker="o",
                color=f"C{index % 10}",
                label=f"{method} ({control}): ρ={rho}, jump {item.largest_jump:.0%}",
            )
        axis.set_title(metric)
        axis.set_xlabel("control value (γ or scale)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    for axis in axes[len(metrics) :]:
        axis.set_visible(False)
    figure.suptitle("Metrics along the control sweep")
    return _save(figure, path)


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120)
    return path


def write_report(results: Sequence[EvaluationResult], out_dir: str | Path) -> dict[str, Path]:
    """Write the plots (and, when there is a sweep, its statistics) to `out_dir`; returns the paths."""
    if not results:
        raise FlexIPInputError("no results to report on")
    out_dir = Path(out_dir)
    written = {"identity_vs_text": plot_identity_vs_text(results, out_dir / "identity_vs_text.png")}
    statistics = sweep_statistics(results)
    if statistics:
        written["sweep_curves"] = plot_sweep_curves(results, out_dir / "sweep_curves.png")
        frame = pd.DataFrame([asdict(item) for item in statistics])
        written["sweep_statistics_csv"] = write_text(out_dir / "sweep_statistics.csv", frame.to_csv(index=False))
        written["sweep_statistics_md"] = write_text(out_dir / "sweep_statistics.md", statistics_markdown(statistics))
    return written
