"""`flexip miniworld evaluate`: target checks, and a short end-to-end run on the shipped preset."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from flexip.errors import FlexIPInputError
from flexip.presets import get_preset, is_preset
from flexip_miniworld.dials import DIAL_VALUES
from flexip_miniworld.evaluate import GAMMAS, VALIDATION_FIRST, check_targets, evaluate, markdown, plot_curves


def table(clip_t, clip_i, dino_i, base=(0.8, 0.3, 0.2)):
    rows = {f"gamma={g}": {"CLIP-T": t, "CLIP-I": i, "DINO-I": d} for g, t, i, d in zip(GAMMAS, clip_t, clip_i, dino_i)}
    rows["base"] = dict(zip(("CLIP-T", "CLIP-I", "DINO-I"), base))
    return rows


def test_identification_accuracy_ignores_what_all_references_share():
    from flexip_miniworld.evaluate import identification_accuracy

    shared = torch.tensor([10.0, 0.0, 0.0])  # e.g. the plain backdrop every reference has
    references = [torch.stack([shared + torch.tensor([0.0, 1.0, 0.0])] * 2), torch.stack([shared + torch.tensor([0.0, 0.0, 1.0])] * 2)]
    images = torch.stack([shared + torch.tensor([0.0, 1.0, 0.0]), shared + torch.tensor([0.0, 0.0, 1.0]), shared + torch.tensor([0.0, 0.9, 0.1])])
    assert identification_accuracy(images, torch.tensor([0, 1, 0]), references) == 1.0
    assert math.isclose(identification_accuracy(images, torch.tensor([1, 1, 1]), references), 1 / 3, rel_tol=1e-6)


def test_targets_are_read_off_the_table():
    calibration = {"real-vs-real": {"DINO-I": 0.6}}
    good = check_targets(table([0.78, 0.77, 0.76, 0.7, 0.6], [0.3, 0.32, 0.34, 0.36, 0.4], [0.2, 0.25, 0.3, 0.4, 0.45]), calibration)
    assert good["DINO-I rises with gamma (monotone)"] and good["CLIP-I rises with gamma (monotone)"]
    assert good["CLIP-T falls with gamma (monotone)"]
    assert math.isclose(good["DINO-I gap closed at gamma=1 (target >= 0.5)"], (0.45 - 0.2) / (0.6 - 0.2))
    assert math.isclose(good["CLIP-T at gamma=0 / base (target >= 0.9)"], 0.78 / 0.8)
    bad = check_targets(table([0.78, 0.79, 0.76, 0.7, 0.6], [0.3, 0.29, 0.34, 0.36, 0.4], [0.2, 0.25, 0.3, 0.4, 0.39]), calibration)
    assert not bad["CLIP-T falls with gamma (monotone)"] and not bad["CLIP-I rises with gamma (monotone)"]
    assert not bad["DINO-I rises with gamma (monotone)"]


@pytest.mark.skipif(not is_preset("miniworld"), reason="miniworld weights not built yet")
def test_evaluate_end_to_end_on_held_out_subjects(tmp_path):
    torch.set_num_threads(1)
    result = evaluate(
        get_preset("miniworld").folder,
        tmp_path / "data",
        tmp_path / "out",
        subjects=2,
        prompts=2,
        steps=2,
        log=lambda message: None,
        first=1,
    )
    assert result["images_per_condition"] == 4 and result["first_subject"] == 1
    assert set(result["scores"]) == {"base", "real render", *(f"gamma={g}" for g in DIAL_VALUES)}  # the 11-value sweep and the quarters
    assert len(DIAL_VALUES) == 13 and set(GAMMAS) <= set(DIAL_VALUES)
    for values in result["scores"].values():
        assert all(math.isfinite(v) and -1.0 <= v <= 1.0 for v in values.values())
        assert values["DINO-I identification"] in (0.0, 0.25, 0.5, 0.75, 1.0)  # 4 images per condition
    found = result["calibration"]["identification"]
    assert found["identities"] == 40 and found["scenes"] == 240 and math.isclose(found["chance"], 1 / 40)
    assert 0.0 <= found["CLIP-I"] <= 1.0 and 0.0 <= found["DINO-I"] <= 1.0
    assert json.loads((tmp_path / "out" / "evaluation.json").read_text())["subjects"] == 2
    report = (tmp_path / "out" / "evaluation.md").read_text()
    assert "Identification" in report and report.startswith("Held-out identities 1–2: 2 × 2 prompts")
    assert markdown({**result, "first_subject": VALIDATION_FIRST}).startswith(
        f"Held-out identities {VALIDATION_FIRST}–{VALIDATION_FIRST + 1} (validation range)"
    )
    # at adapter scale 0 every γ is the base model itself: the same scores (up to batch-size rounding)
    off = evaluate(
        get_preset("miniworld").folder,
        tmp_path / "data",
        tmp_path / "off",
        subjects=1,
        prompts=2,
        steps=2,
        log=lambda message: None,
        scale=0.0,
        dial_values=GAMMAS,
    )
    assert off["adapter_scale"] == 0.0
    assert off["dial_statistics"]["values"] == list(GAMMAS)  # the 5 values measured, not the 3 of them on the 11-value sweep
    assert all(math.isclose(off["scores"][f"gamma={g}"][m], off["scores"]["base"][m], abs_tol=1e-4) for g in GAMMAS for m in off["scores"]["base"])
    assert "at adapter scale 0 " in (tmp_path / "off" / "evaluation.md").read_text()
    assert result["scores"]["gamma=1.0"]["DINO-I"] != result["scores"]["base"]["DINO-I"]  # and at scale 1 they differ
    # asking for identities the data does not have is a clear error, before any model is loaded
    with pytest.raises(FlexIPInputError, match="has 40 held-out identities; this evaluation needs 41"):
        evaluate(get_preset("miniworld").folder, tmp_path / "data", tmp_path / "out", subjects=2, first=39)
    with pytest.raises(FlexIPInputError, match="adapter scale must be in"):
        evaluate(get_preset("miniworld").folder, tmp_path / "data", tmp_path / "out", subjects=2, scale=-1.0)
    # every adjacent γ step of every metric, with the step's mean change inside its interval
    for metric, steps in result["gamma_steps"].items():
        assert [(s["from"], s["to"]) for s in steps] == list(zip(GAMMAS, GAMMAS[1:]))
        curve = [result["scores"][f"gamma={g}"][metric] for g in GAMMAS]
        for k, s in enumerate(steps):
            assert s["low"] <= s["mean"] + 1e-9 and s["mean"] <= s["high"] + 1e-9
            assert math.isclose(s["mean"], curve[k + 1] - curve[k], abs_tol=1e-5)
    assert "| γ 0.0 → 0.25 |" in (tmp_path / "out" / "evaluation.md").read_text()
    assert (tmp_path / "out" / "evaluation_samples.png").stat().st_size > 0
    curves = np.asarray(Image.open(tmp_path / "out" / "evaluation_curves.png").convert("L"))
    assert curves.shape == (330, 1056) and curves.std() > 10  # 9.6 × 3 in at 110 dpi, with something drawn


def _result(clip_t):
    rows = {f"gamma={g}": {"CLIP-T": t, "CLIP-I": 0.3 + 0.02 * k, "DINO-I": 0.4 + 0.02 * k} for k, (g, t) in enumerate(zip(GAMMAS, clip_t))}
    rows["base"] = rows["real render"] = {"CLIP-T": 0.82, "CLIP-I": 0.3, "DINO-I": 0.3}
    return {
        "gammas": list(GAMMAS),
        "subjects": 20,
        "prompts_per_subject": 8,
        "scores": rows,
        "calibration": {"real-vs-real": {"CLIP-T": 0.78, "CLIP-I": 0.15, "DINO-I": 0.44}},
    }


def _red_pixels(path):
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return int(((pixels[..., 0] > 180) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)).sum())


def test_curves_mark_a_step_against_the_target_in_red(tmp_path):
    falling = plot_curves(_result([0.79, 0.785, 0.78, 0.775, 0.77]), tmp_path / "falling.png")
    rising_once = plot_curves(_result([0.78, 0.79, 0.78, 0.775, 0.77]), tmp_path / "rising_once.png")
    assert _red_pixels(falling) == 0 and _red_pixels(rising_once) > 50
