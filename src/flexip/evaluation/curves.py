"""How a metric moves along a control sweep (FlexIP's γ, IP-Adapter's scale): pure statistics.

The paper's qualitative claim, made measurable: turning γ moves *monotonically* and *smoothly* from
personalization to identity preservation, while IP-Adapter's single scale gives abrupt identity shifts.

- **monotonicity**: Spearman rank correlation ρ between the control values and the metric values
  (+1: the metric rises at every step; −1: falls at every step; near 0: no consistent direction).
- **smoothness** (largest jump): the largest absolute change between neighbouring grid points, as a
  share of the curve's total range (max − min). 1/(n−1) for evenly spaced changes on n points, 1.0 when
  the whole change happens in one step. A flat curve (range 0) has no jump: 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from flexip.errors import FlexIPInputError


def _as_curve(controls: Sequence[float], values: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    controls = np.asarray(controls, dtype=float)
    values = np.asarray(values, dtype=float)
    if controls.ndim != 1 or controls.shape != values.shape:
        raise FlexIPInputError(f"a curve needs as many control values as metric values, got {controls.shape} and {values.shape}")
    if len(controls) < 2:
        raise FlexIPInputError("a curve needs at least 2 points")
    if not (np.isfinite(controls).all() and np.isfinite(values).all()):
        raise FlexIPInputError("curve values must be finite numbers")
    if len(np.unique(controls)) != len(controls):
        raise FlexIPInputError(f"control values must be distinct, got {controls.tolist()}")
    order = np.argsort(controls, kind="stable")
    return controls[order], values[order]


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's ρ: Pearson correlation of average ranks. NaN when either side is constant."""
    x_ranks = pd.Series(np.asarray(x, dtype=float)).rank(method="average").to_numpy()
    y_ranks = pd.Series(np.asarray(y, dtype=float)).rank(method="average").to_numpy()
    if len(x_ranks) != len(y_ranks):
        raise FlexIPInputError("spearman needs two sequences of equal length")
    x_centered, y_centered = x_ranks - x_ranks.mean(), y_ranks - y_ranks.mean()
    denominator = np.sqrt((x_centered**2).sum() * (y_centered**2).sum())
    return float("nan") if denominator == 0 else float((x_centered * y_centered).sum() / denominator)


def monotonicity(controls: Sequence[float], values: Sequence[float]) -> float:
    controls, values = _as_curve(controls, values)
    return spearman(controls, values)


def largest_jump(controls: Sequence[float], values: Sequence[float]) -> float:
    """Largest |step| between neighbouring control values / (max − min) of the curve, in [0, 1]."""
    _, values = _as_curve(controls, values)
    total = float(values.max() - values.min())
    if total == 0:
        return 0.0
    return float(np.abs(np.diff(values)).max() / total)


@dataclass(frozen=True)
class CurveStatistics:
    method: str
    control: str
    metric: str
    points: int
    control_min: float
    control_max: float
    value_at_min: float
    value_at_max: float
    spearman_rho: float
    largest_jump: float


def curve_statistics(method: str, control: str, metric: str, controls: Sequence[float], values: Sequence[float]) -> CurveStatistics:
    ordered_controls, ordered_values = _as_curve(controls, values)
    return CurveStatistics(
        method=method,
        control=control,
        metric=metric,
        points=len(ordered_controls),
        control_min=float(ordered_controls[0]),
        control_max=float(ordered_controls[-1]),
        value_at_min=float(ordered_values[0]),
        value_at_max=float(ordered_values[-1]),
        spearman_rho=monotonicity(ordered_controls, ordered_values),
        largest_jump=largest_jump(ordered_controls, ordered_values),
    )
