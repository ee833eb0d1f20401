"""Hand-made `flexip miniworld evaluate` results with the 11-value sweep, for the tables that read them."""

from __future__ import annotations

import pytest


def make_swept(dial, clip_t, dino_i, identified, seed_shift=0.0, first=0):
    """A complete result (what `load_result` accepts) whose curves are given at every value 0, 0.1, …, 1."""
    from flexip_miniworld.dials import SWEEP_11
    from flexip_miniworld.evaluate import GAMMAS, check_targets, dial_statistics

    scores = {
        f"{dial}={v}": {"CLIP-T": t, "CLIP-I": 0.3, "DINO-I": d + seed_shift, "DINO-I identification": i}
        for v, t, d, i in zip(SWEEP_11, clip_t, dino_i, identified)
    }
    for v in (0.25, 0.75):
        scores[f"{dial}={v}"] = dict(scores[f"{dial}={round(v, 1)}"])
    scores["base"] = {"CLIP-T": 0.8, "CLIP-I": 0.3, "DINO-I": 0.2, "DINO-I identification": 0.05}
    scores["real render"] = {"CLIP-T": 0.8, "CLIP-I": 0.4, "DINO-I": 0.6, "DINO-I identification": 0.4}
    calibration = {"real-vs-real": {"DINO-I": 0.6}}
    return {
        "dial": dial,
        "gammas": list(GAMMAS),
        "subjects": 20,
        "first_subject": first,
        "scores": scores,
        "calibration": calibration,
        "targets": check_targets(scores, calibration, dial),
        "dial_statistics": dial_statistics(scores, dial, list(SWEEP_11), 20),
    }


@pytest.fixture
def swept():
    return make_swept
