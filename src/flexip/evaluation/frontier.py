"""The identity-vs-text frontier of a method with one dial: pure functions over (text score, identity score)
points, both higher-is-better (e.g. CLIP-T on x, DINO-I on y), one point per dial value.

- **dominated area**: the area of the region that the points dominate above a reference point r (the
  2-D hypervolume): the union of the rectangles [r.x, p.x] × [r.y, p.y]. A method whose dial reaches more
  identity *and* more text together covers more of it. Points at or below r on either axis add nothing.
- **identity at a text level**: where the curve (the points in dial order, joined by straight segments)
  crosses a given text score, its identity score there (the highest crossing if it crosses several times);
  None if the curve never reaches that text score.

And of one metric along the dial (a curve: the metric at each dial value, in dial order):

- **Spearman ρ** with the dial: the Pearson correlation of the ranks (ties share their mean rank); 1 for a
  curve that only rises, −1 for one that only falls;
- **largest neighbour step share**: the largest |m[k+1] − m[k]| as a share of the curve's range
  (max − min); 1/(n − 1) for a straight line over n values, 1 for a curve that jumps all at once;
- **control range**: the metric at the last dial value minus at the first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flexip.errors import FlexIPInputError


def _points(points: Sequence[Sequence[float]]) -> np.ndarray:
    array = np.asarray(points, dtype=float)
    if array.ndim != 2 or array.shape[1] != 2 or len(array) == 0:
        raise FlexIPInputError(f"frontier points are (text, identity) pairs, got an array of shape {array.shape}")
    if not np.isfinite(array).all():
        raise FlexIPInputError("frontier points must be finite numbers")
    return array


def dominated_area(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """Area dominated by `points` above `reference` = (x, y): the union of [r.x, p.x] × [r.y, p.y]."""
    array, (rx, ry) = _points(points), (float(reference[0]), float(reference[1]))
    above = array[(array[:, 0] > rx) & (array[:, 1] > ry)]
    area, best_y = 0.0, ry
    for x, y in sorted(above.tolist(), key=lambda p: -p[0]):  # sweep from the most text leftward
        if y > best_y:
            area += (x - rx) * (y - best_y)
            best_y = y
    return area


def identity_at_text(points: Sequence[Sequence[float]], text: float) -> float | None:
    """The identity score where the dial-ordered curve through `points` has text score `text` (linear
    between neighbouring dial values; the highest if it crosses there more than once); None if never."""
    array, crossings = _points(points), []
    for (x0, y0), (x1, y1) in zip(array[:-1], array[1:]):
        low, high = min(x0, x1), max(x0, x1)
        if low <= text <= high:
            crossings.append(y0 if x1 == x0 else y0 + (y1 - y0) * (text - x0) / (x1 - x0))
    crossings += [y for x, y in array if x == text]
    return max(crossings) if crossings else None


def _curve(values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or len(array) < 2 or not np.isfinite(array).all():
        raise FlexIPInputError(f"a dial curve is at least two finite numbers, one per dial value; got {list(np.ravel(array))[:6]}")
    return array


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):  # ties share the mean of the ranks they span
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman_rho(curve: Sequence[float], dial: Sequence[float] | None = None) -> float:
    """Spearman's ρ of the metric with the dial (`dial` defaults to 0, 1, 2, …); nan for a flat curve."""
    values = _curve(curve)
    positions = np.arange(len(values), dtype=float) if dial is None else _curve(dial)
    if len(positions) != len(values):
        raise FlexIPInputError(f"{len(values)} metric values for {len(positions)} dial values")
    a, b = _ranks(values), _ranks(positions)
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else float("nan")


def largest_step_share(curve: Sequence[float]) -> float:
    """The largest neighbour step |m[k+1] − m[k]| as a share of the curve's range; nan for a flat curve."""
    values = _curve(curve)
    span = values.max() - values.min()
    return float(np.abs(np.diff(values)).max() / span) if span > 0 else float("nan")


def control_range(curve: Sequence[float]) -> float:
    """The metric at the dial's last value minus at its first."""
    values = _curve(curve)
    return float(values[-1] - values[0])
