"""The frontier statistics on hand-made curves whose answers are known."""

from __future__ import annotations

import pytest

from flexip.errors import FlexIPInputError
from flexip.evaluation.frontier import dominated_area, identity_at_text


def test_one_point_dominates_its_rectangle():
    assert dominated_area([(0.8, 0.5)], reference=(0.6, 0.3)) == pytest.approx(0.2 * 0.2)


def test_a_staircase_is_the_union_of_rectangles_not_their_sum():
    # (3, 1) and (1, 3) above (0, 0): 3·1 + 1·3 − the shared 1·1 = 5
    assert dominated_area([(3, 1), (1, 3)], reference=(0, 0)) == pytest.approx(5.0)
    # a dominated point adds nothing; order does not matter
    assert dominated_area([(1, 3), (0.5, 0.5), (3, 1)], reference=(0, 0)) == pytest.approx(5.0)


def test_points_at_or_below_the_reference_add_nothing():
    assert dominated_area([(0.5, 2.0), (2.0, -1.0), (1.0, 0.0)], reference=(1.0, 0.0)) == 0.0


def test_a_method_better_on_both_axes_has_the_larger_area():
    ip_adapter = [(0.80, 0.30), (0.78, 0.40), (0.70, 0.55), (0.60, 0.60)]
    flexip = [(0.82, 0.35), (0.80, 0.45), (0.76, 0.58), (0.70, 0.62)]
    reference = (0.60, 0.30)
    assert dominated_area(flexip, reference) > dominated_area(ip_adapter, reference)


def test_identity_at_text_interpolates_along_the_dial():
    curve = [(0.8, 0.3), (0.7, 0.5), (0.6, 0.6)]  # text falls, identity rises with the dial
    assert identity_at_text(curve, 0.75) == pytest.approx(0.4)
    assert identity_at_text(curve, 0.6) == pytest.approx(0.6)
    assert identity_at_text(curve, 0.9) is None  # the curve never reaches that much text


def test_identity_at_text_takes_the_highest_crossing():
    curve = [(0.8, 0.2), (0.6, 0.4), (0.8, 0.9)]  # comes back to 0.7 with more identity
    assert identity_at_text(curve, 0.7) == pytest.approx(0.65)


@pytest.mark.parametrize("points", [[], [(1.0,)], [(1.0, float("nan"))]])
def test_bad_points_are_clear_errors(points):
    with pytest.raises(FlexIPInputError):
        dominated_area(points, (0, 0))


def test_spearman_rho_of_monotone_noisy_and_tied_curves():
    from flexip.evaluation.frontier import spearman_rho

    assert spearman_rho([0.1, 0.2, 0.5, 0.9]) == pytest.approx(1.0)
    assert spearman_rho([0.9, 0.5, 0.2, 0.1]) == pytest.approx(-1.0)
    # one swapped pair among 5: ρ = 1 − 6·Σd²/(n(n²−1)) = 1 − 6·2/120 = 0.9
    assert spearman_rho([1, 2, 4, 3, 5]) == pytest.approx(0.9)
    # ties share their mean rank: ranks 1, 2.5, 2.5, 4 against 1..4 → ρ = 4.5 / sqrt(4.5 · 5)
    assert spearman_rho([0.0, 1.0, 1.0, 2.0]) == pytest.approx(4.5 / (4.5 * 5) ** 0.5)
    assert spearman_rho([3.0, 1.0, 2.0], dial=[0.0, 1.0, 0.5]) == pytest.approx(-1.0)  # against the dial's own order


def test_step_share_and_control_range_on_known_curves():
    from flexip.evaluation.frontier import control_range, largest_step_share, spearman_rho

    line = [0.1 * k for k in range(11)]
    assert largest_step_share(line) == pytest.approx(0.1)
    jump = [0.2] * 5 + [0.7] * 6  # all of the change in one step
    assert largest_step_share(jump) == pytest.approx(1.0)
    assert largest_step_share([0.0, 0.3, 0.2, 1.0]) == pytest.approx(0.8)
    assert control_range([0.3, 0.5, 0.45]) == pytest.approx(0.15)
    assert control_range([0.8, 0.1]) == pytest.approx(-0.7)
    assert largest_step_share([0.4, 0.4, 0.4]) != largest_step_share([0.4, 0.4, 0.4])  # nan: a flat curve has no range
    assert spearman_rho([0.4, 0.4]) != spearman_rho([0.4, 0.4])
    with pytest.raises(FlexIPInputError):
        control_range([0.5])
