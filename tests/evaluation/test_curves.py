"""Sweep statistics: monotonicity (Spearman ρ) and the largest jump between neighbours."""

from __future__ import annotations

import math

import pytest

from flexip.errors import FlexIPInputError
from flexip.evaluation.curves import curve_statistics, largest_jump, monotonicity, spearman

GRID = [0.0, 0.25, 0.5, 0.75, 1.0]


def test_monotonicity():
    assert monotonicity(GRID, [0.1, 0.2, 0.25, 0.4, 0.9]) == pytest.approx(1.0)
    assert monotonicity(GRID, [5, 4, 3, 2, 1]) == pytest.approx(-1.0)
    assert monotonicity(list(reversed(GRID)), [5, 4, 3, 2, 1]) == pytest.approx(1.0)  # order of points is irrelevant
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert math.isnan(monotonicity(GRID, [1, 1, 1, 1, 1]))


def test_largest_jump():
    assert largest_jump(GRID, [0, 1, 2, 3, 4]) == pytest.approx(0.25)  # even steps: 1 / (n − 1)
    assert largest_jump(GRID, [0, 0, 0, 1, 1]) == pytest.approx(1.0)  # everything in one step
    assert largest_jump(GRID, [0, 0.1, 0.2, 0.9, 1.0]) == pytest.approx(0.7)
    assert largest_jump(GRID, [2, 2, 2, 2, 2]) == 0.0


def test_curve_statistics_and_errors():
    stats = curve_statistics("FlexIP", "gamma", "DINO-I", [1.0, 0.0, 0.5], [0.8, 0.4, 0.6])
    assert (stats.control_min, stats.control_max, stats.value_at_min, stats.value_at_max) == (0.0, 1.0, 0.4, 0.8)
    assert stats.spearman_rho == pytest.approx(1.0) and stats.largest_jump == pytest.approx(0.5)
    with pytest.raises(FlexIPInputError, match="at least 2"):
        largest_jump([0.5], [1.0])
    with pytest.raises(FlexIPInputError, match="distinct"):
        monotonicity([0.5, 0.5], [1.0, 2.0])
