import math

import pytest
import torch

from flexip.errors import FlexIPInputError
from flexip.gate import GammaSchedule, GateSettings, gate_weights, resolve_gamma, validate_gamma

LAYER_DOWN = "down_blocks.0.attentions.0.transformer_blocks.0.attn2"
LAYER_UP = "up_blocks.1.attentions.2.transformer_blocks.0.attn2"
LAYER_MID = "mid_block.attentions.0.transformer_blocks.0.attn2"


def test_gate_weights_are_gamma_and_its_complement():
    w_pres, w_pers = gate_weights(torch.tensor([0.0, 0.25, 1.0]))
    assert w_pres.tolist() == [0.0, 0.25, 1.0]
    assert w_pers.tolist() == [1.0, 0.75, 0.0]


@pytest.mark.parametrize(
    "gamma, layer, fraction, expected",
    [
        (0.3, LAYER_DOWN, 0.0, 0.3),
        ({"down": 0.1, "up": 0.9}, LAYER_DOWN, 0.0, 0.1),
        ({"down": 0.1, "up": 0.9}, LAYER_UP, 0.0, 0.9),
        ({"down": 0.1, "up": 0.9}, LAYER_MID, 0.0, 0.5),  # unmatched → default 0.5
        ({"down": 0.1, "default": 0.7}, LAYER_MID, 0.0, 0.7),
        ({"up": 0.9, "up_blocks.1": 0.2}, LAYER_UP, 0.0, 0.2),  # longest prefix wins
        (GammaSchedule(0.0, 1.0), LAYER_UP, 0.25, 0.25),
        (lambda t: 1 - t, LAYER_UP, 0.75, 0.25),
        ({"up": GammaSchedule(1.0, 0.0)}, LAYER_UP, 1.0, 0.0),
    ],
)
def test_resolve_gamma_forms(gamma, layer, fraction, expected):
    assert math.isclose(float(resolve_gamma(gamma, layer, fraction)), expected, abs_tol=1e-7)


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan"), "high", [0.2, 2.0], torch.tensor([0.5, float("nan")]), {"down": 3.0}, {}])
def test_invalid_gamma_is_refused(bad):
    with pytest.raises(FlexIPInputError):
        validate_gamma(bad)


def test_schedule_endpoints_are_checked():
    with pytest.raises(FlexIPInputError, match="GammaSchedule.end"):
        GammaSchedule(0.2, 1.2)


def test_schedule_that_leaves_range_is_refused():
    with pytest.raises(FlexIPInputError, match=r"\[0, 1\]"):
        validate_gamma(lambda t: 2 * t)


def test_branch_weights_include_scale_and_repeat_for_guidance():
    settings = GateSettings(gamma=torch.tensor([0.0, 1.0]), adapter_scale=0.5, repeat=2)
    w_pres, w_pers = settings.branch_weights(LAYER_DOWN, batch_size=4)
    assert w_pres.tolist() == [0.0, 0.5, 0.0, 0.5]
    assert w_pers.tolist() == [0.5, 0.0, 0.5, 0.0]
    with pytest.raises(FlexIPInputError, match="per-sample gamma"):
        settings.branch_weights(LAYER_DOWN, batch_size=6)


def test_independent_weights_and_off_states():
    assert GateSettings(w_pres=0.7, w_pers=0.2).branch_weights(LAYER_UP, 1)[1].item() == pytest.approx(0.2)
    assert GateSettings(adapter_scale=0.0).is_off
    assert GateSettings(w_pres=0.0, w_pers=0.0).is_off
    assert not GateSettings(gamma=0.0).is_off
    with pytest.raises(FlexIPInputError):
        GateSettings(w_pres=0.5)
    with pytest.raises(FlexIPInputError):
        GateSettings(w_pres=-1.0, w_pers=0.5)
    with pytest.raises(FlexIPInputError):
        GateSettings(adapter_scale=float("inf"))


def test_parse_gamma_text_forms():
    from flexip.gate import parse_gamma

    assert parse_gamma("0.7") == 0.7
    assert parse_gamma("1:0.25") == GammaSchedule(1.0, 0.25)
    mapping = parse_gamma("down=0.3, up=1.0:0.5,default=0.6")
    assert mapping["down"] == 0.3 and mapping["up"] == GammaSchedule(1.0, 0.5) and mapping["default"] == 0.6
    assert float(resolve_gamma(mapping, LAYER_UP, 1.0)) == 0.5
    for bad in ("high", "1.2", "0.2:x", "down=", "down=up=1", "nan"):
        with pytest.raises(FlexIPInputError):
            parse_gamma(bad)
