import pytest
import torch

from flexip.errors import FlexIPInputError
from flexip.evaluation.intervals import step_intervals


def _sweep(step_means, subjects=20, cells=8, noise=0.02, seed=0):
    """Scores (conditions, subjects·cells): a shared per-cell level plus each condition's offset plus noise."""
    g = torch.Generator().manual_seed(seed)
    level = torch.rand(subjects * cells, generator=g)
    offsets = torch.tensor([0.0, *step_means]).cumsum(0)
    scores = level + offsets[:, None] + noise * torch.randn(len(offsets), subjects * cells, generator=g)
    groups = torch.arange(subjects).repeat_interleave(cells)
    return scores, groups


def test_a_clear_trend_is_resolved():
    falls, rises = step_intervals(*_sweep([-0.05, 0.05]))
    assert falls.sign == -1 and rises.sign == 1


def test_intervals_cover_the_true_step_about_as_often_as_promised():
    # 60 independent sweeps with a true step of 0 and of +0.004: a 95 % interval should miss ~3 times
    misses = {0.0: 0, 0.004: 0}
    for seed in range(60):
        for true_step in misses:
            (step,) = step_intervals(*_sweep([true_step], noise=0.02, seed=seed), resamples=500, seed=seed)
            misses[true_step] += not step.low <= true_step <= step.high
    assert all(count <= 9 for count in misses.values()), misses


def test_the_mean_is_the_plain_paired_difference_and_the_interval_holds_it():
    scores, groups = _sweep([0.01, -0.02], noise=0.05, seed=3)
    for k, step in enumerate(step_intervals(scores, groups)):
        assert step.mean == pytest.approx(float((scores[k + 1] - scores[k]).double().mean()))
        assert step.low <= step.mean <= step.high


def test_the_shared_per_cell_level_cancels_out_by_pairing():
    # the cell levels vary by ±0.5 but are shared by both conditions: only the 0.003 noise is left
    scores, groups = _sweep([0.01], noise=0.003)
    (step,) = step_intervals(scores, groups)
    assert step.sign == 1 and step.high - step.low < 0.005


def test_clusters_widen_the_interval_when_a_subject_moves_as_a_whole():
    g = torch.Generator().manual_seed(1)
    subjects, cells = 10, 16
    groups = torch.arange(subjects).repeat_interleave(cells)
    shift = torch.randn(subjects, generator=g)[groups] * 0.05  # the step differs by subject, not by cell
    scores = torch.stack([torch.zeros(subjects * cells), shift + 0.001 * torch.randn(subjects * cells, generator=g)])
    clustered = step_intervals(scores, groups)[0]
    as_cells = step_intervals(scores, torch.arange(subjects * cells))[0]
    assert (clustered.high - clustered.low) > 2 * (as_cells.high - as_cells.low)


def test_deterministic_for_a_seed():
    scores, groups = _sweep([0.0, 0.0], noise=0.05)
    assert step_intervals(scores, groups, seed=7) == step_intervals(scores, groups, seed=7)
    assert step_intervals(scores, groups, seed=7) != step_intervals(scores, groups, seed=8)


@pytest.mark.parametrize(
    "scores, groups, message",
    [
        (torch.zeros(1, 4), torch.zeros(4), "conditions"),
        (torch.zeros(2, 4), torch.zeros(3), "one id per cell"),
    ],
)
def test_bad_shapes_say_what_was_expected(scores, groups, message):
    with pytest.raises(FlexIPInputError, match=message):
        step_intervals(scores, groups)
