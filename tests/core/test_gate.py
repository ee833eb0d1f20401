"""The gate: γ as one typed, immutable value; its text grammar; the gates a pipeline call derives."""

import dataclasses
import math

import pytest
import torch

from flexip.errors import FlexIPInputError
from flexip.gate import Gamma, GammaSchedule, GateSettings, gate_weights, parse_gamma, sweep_values

LAYER_DOWN = "down_blocks.0.attentions.0.transformer_blocks.0.attn2"
LAYER_UP = "up_blocks.1.attentions.2.transformer_blocks.0.attn2"
LAYER_MID = "mid_block.attentions.0.transformer_blocks.0.attn2"


def test_gate_weights_are_gamma_and_its_complement():
    w_pres, w_pers = gate_weights(torch.tensor([0.0, 0.25, 1.0]))
    assert w_pres.tolist() == [0.0, 0.25, 1.0]
    assert w_pers.tolist() == [1.0, 0.75, 0.0]


# ---- the text grammar ---------------------------------------------------------------------------------

SWEEP = Gamma((0.0, 0.5, 1.0), sweep=True)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0.7", Gamma(0.7)),
        (" 1 ", Gamma(1.0)),
        (["0.25"], Gamma(0.25)),
        ("0,0.5,1", SWEEP),
        ("0, 0.5, 1,", SWEEP),  # spaces and a trailing comma, as `flexip eval run` always took them
        ("0 0.5 1", SWEEP),
        (["0", "0.5", "1"], SWEEP),  # --gamma 0 0.5 1
        (["0", "0.5,1"], SWEEP),
        ("1.0:0.2", Gamma(GammaSchedule(1.0, 0.2))),
        ("down=0.3,mid=0.5,up=1.0:0.4", Gamma(0.5, (("down", 0.3), ("mid", 0.5), ("up", GammaSchedule(1.0, 0.4))))),
        ("down=0.3, up=1.0:0.5,default=0.6", Gamma(0.6, (("down", 0.3), ("up", GammaSchedule(1.0, 0.5))))),
        (["down=0.2", "up=0.9"], Gamma(0.5, (("down", 0.2), ("up", 0.9)))),  # --gamma down=0.2 up=0.9
        ("up_blocks.1=0.2,default=0:1", Gamma(GammaSchedule(0.0, 1.0), (("up_blocks.1", 0.2),))),
    ],
)
def test_every_text_form_reads_as_its_value(text, expected):
    assert parse_gamma(text) == expected


def test_text_and_api_forms_make_the_same_value():
    assert parse_gamma("0,0.5,1") == Gamma.of([0, 0.5, 1]) == Gamma.of((0.0, 0.5, 1.0))
    assert parse_gamma("0.7") == Gamma.of(0.7) == Gamma.of(torch.tensor(0.7, dtype=torch.float64))
    assert parse_gamma("down=0.3,default=0.6") == Gamma.of({"down": 0.3, "default": 0.6})
    assert Gamma.of(parse_gamma("1:0")) == Gamma.of(GammaSchedule(1.0, 0.0))


@pytest.mark.parametrize(
    "text, message",
    [
        ("high", "expected a number in [0, 1], numbers separated by commas (a sweep), START:END"),
        ("1.2", "gamma must be in [0, 1], got 1.2"),
        ("nan", "gamma must be in [0, 1], got nan"),
        ("-0.1,0.5", "gamma must be in [0, 1], got -0.1"),
        ("0.2:x", "cannot read gamma '0.2:x'"),
        ("1:0.5:0", "cannot read gamma"),
        ("1.5:0", "GammaSchedule.start must be in [0, 1]"),
        ("", "no gamma in ''"),
        (",", "no gamma"),
        ([], "no gamma"),
        ("down=", "expected KEY=VALUE entries"),
        ("=0.3", "expected KEY=VALUE entries"),
        ("down=up=1", "expected KEY=VALUE entries"),
        ("down=0.3,0.5", "cannot read per-block gamma '0.5'"),
        ("down=0.3,down=0.4", "sets down twice"),
        ("down=0.3,down_blocks=0.4", "'down' and 'down_blocks' name the same block"),
        ("down=2", "gamma['down'] must be in [0, 1], got 2.0"),
        (["0.5", "1:0"], "a gamma sweep takes plain numbers"),
        ("0.5,1:0", "a gamma sweep takes plain numbers"),
        (["down=0.3", "0.5"], "a per-block gamma goes alone"),
    ],
)
def test_bad_text_is_one_clear_line(text, message):
    with pytest.raises(FlexIPInputError) as error:
        parse_gamma(text)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_sweep_values_for_grids_and_evaluation():
    assert sweep_values("0,0.5,1") == sweep_values(["0", "0.5", "1"]) == sweep_values([0, 0.5, 1]) == (0.0, 0.5, 1.0)
    assert sweep_values("0.3") == (0.3,)
    with pytest.raises(FlexIPInputError, match="^logging.validation_gammas: a sweep takes plain numbers .*, not a schedule gamma$"):
        sweep_values("1:0", "logging.validation_gammas")
    with pytest.raises(FlexIPInputError, match="not a per-block gamma"):
        sweep_values("down=0.2")
    with pytest.raises(FlexIPInputError, match=r"^key: gamma must be in \[0, 1\], got 2.0$"):
        sweep_values([0.5, 2], "key")


# ---- the API forms ------------------------------------------------------------------------------------


def _gamma_at(gamma, layer: str, fraction: float) -> float:
    """γ of `layer` at step fraction 0, 0.25, 0.5, 0.75 or 1 of a 5-step call, as the processor reads it."""
    gate = GateSettings(gamma=gamma).at_steps(5)[round(fraction * 4)]
    w_pres, w_pers = gate.branch_weights(layer, 1)
    assert math.isclose(float(w_pres + w_pers), 1.0, abs_tol=1e-6)
    return float(w_pres)


@pytest.mark.parametrize(
    "gamma, layer, fraction, expected",
    [
        (0.3, LAYER_DOWN, 0.0, 0.3),
        (torch.tensor(0.3), LAYER_UP, 1.0, 0.3),
        ({"down": 0.1, "up": 0.9}, LAYER_DOWN, 0.0, 0.1),
        ({"down": 0.1, "up": 0.9}, LAYER_UP, 0.0, 0.9),
        ({"down": 0.1, "up": 0.9}, LAYER_MID, 0.0, 0.5),  # unmatched → default 0.5
        ({"down": 0.1, "default": 0.7}, LAYER_MID, 0.0, 0.7),
        ({"up": 0.9, "up_blocks.1": 0.2}, LAYER_UP, 0.0, 0.2),  # longest prefix wins
        (GammaSchedule(0.0, 1.0), LAYER_UP, 0.25, 0.25),
        (lambda t: 1 - t, LAYER_UP, 0.75, 0.25),
        ({"up": GammaSchedule(1.0, 0.0)}, LAYER_UP, 1.0, 0.0),
        ({"up": GammaSchedule(1.0, 0.0)}, LAYER_DOWN, 1.0, 0.5),
    ],
)
def test_every_form_gives_its_weight_per_layer_and_step(gamma, layer, fraction, expected):
    assert math.isclose(_gamma_at(gamma, layer, fraction), expected, abs_tol=1e-7)


@pytest.mark.parametrize(
    "bad, message",
    [
        (1.5, r"\[0, 1\]"),
        (-0.1, r"\[0, 1\]"),
        (float("nan"), r"\[0, 1\]"),
        (True, "must be a number"),
        ("0.5", "parse_gamma"),
        ([0.2, 2.0], r"\[0, 1\]"),
        ([], "at least one value"),
        (torch.tensor([0.5, float("nan")]), r"\[0, 1\]"),
        (torch.zeros(2, 2), "1-D"),
        ({"down": 3.0}, r"gamma\['down'\]"),
        ({}, "must not be empty"),
        ({"down": {"up": 0.1}}, "nested"),
        ({1: 0.3}, "keys"),
        ({"down": 0.1, "down_blocks": 0.2}, "same block"),
        ({"up": []}, "at least one value"),
    ],
)
def test_invalid_gamma_is_refused_when_made(bad, message):
    with pytest.raises(FlexIPInputError, match=message):
        Gamma.of(bad)


def test_schedule_endpoints_are_checked():
    with pytest.raises(FlexIPInputError, match="GammaSchedule.end"):
        GammaSchedule(0.2, 1.2)


def test_a_callable_is_checked_at_each_step_it_is_evaluated():
    gamma = Gamma.of(lambda t: 2 * t)  # nothing is called when the value is made
    with pytest.raises(FlexIPInputError, match=r"step fraction 1 must be in \[0, 1\], got 2.0"):
        gamma.at_steps(3)
    assert [step.default for step in gamma.at_steps(1)] == [0.0]  # one step: t = 0 only, in range
    with pytest.raises(FlexIPInputError, match="must be a number"):
        Gamma.of(lambda t: torch.tensor(t)).at_steps(1)


def test_forms_and_numbers():
    assert Gamma.of(0.4).form == "number" and Gamma.of(0.4).numbers == (0.4,)
    assert SWEEP.form == "sweep" and SWEEP.numbers == (0.0, 0.5, 1.0)
    assert Gamma.of(torch.tensor([0.1, 0.2])).form == "per-sample" and Gamma.of(torch.tensor([0.1, 0.2])).numbers is None
    assert Gamma.of({"up": 0.2}).form == "per-block" and Gamma.of({"up": 0.2}).numbers is None
    assert Gamma.of(GammaSchedule(1, 0)).form == "schedule" and Gamma.of(GammaSchedule(1, 0)).is_scheduled
    assert Gamma.of({"up": lambda t: t}).is_scheduled and not Gamma.of({"up": 0.3}).is_scheduled
    assert GateSettings(gamma=[0.2, 0.8]).sweep == (0.2, 0.8)
    assert GateSettings(gamma=0.3).sweep == (0.3,) and GateSettings(gamma=GammaSchedule(1, 0)).sweep == (None,)
    assert GateSettings(w_pres=0.5, w_pers=0.5).sweep == (None,)


# ---- immutable --------------------------------------------------------------------------------------


def test_a_value_cannot_be_mutated():
    gamma = Gamma.of({"down": [0.2, 0.8], "up": 0.9})
    for name, value in (("default", 0.1), ("blocks", ()), ("sweep", True)):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(gamma, name, value)
    with pytest.raises(TypeError):
        gamma.blocks[0][1][0] = 1.0  # per-sample values are a tuple
    gate = GateSettings(gamma=gamma, adapter_scale=0.5)
    for name, value in (("gamma", Gamma(0.1)), ("adapter_scale", 1.0), ("repeat", 2), ("w_pres", 1.0)):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(gate, name, value)


def test_a_value_owns_its_numbers():
    source = torch.tensor([0.2, 0.8])
    values, mapping = [0.2, 0.8], {"down": 0.3}
    from_tensor, from_list, from_mapping = Gamma.of(source), Gamma.of(values), Gamma.of(mapping)
    gate = GateSettings(gamma=source)
    source[0], values[0], mapping["down"] = 0.9, 0.9, 0.9
    assert from_tensor.default == tuple(torch.tensor([0.2, 0.8]).tolist())
    assert from_list.default == (0.2, 0.8) and from_mapping.part_for(LAYER_DOWN) == 0.3
    assert gate.branch_weights(LAYER_DOWN, 2)[0].tolist() == torch.tensor([0.2, 0.8]).tolist()


def test_derived_gates_are_new_objects_and_leave_the_original_as_it_was():
    gate = GateSettings(gamma=[0.2, 0.8], adapter_scale=0.5)
    batch = gate.for_batch(num_prompts=2, images_per_prompt=2, repeat=2)
    assert gate == GateSettings(gamma=[0.2, 0.8], adapter_scale=0.5) and batch is not gate
    # rows: prompts × sweep × images, then the two guidance copies
    assert batch.gamma.default == (0.2, 0.2, 0.8, 0.8) * 2 and not batch.gamma.sweep
    w_pres, w_pers = batch.branch_weights(LAYER_UP, 16)
    assert w_pres.tolist() == pytest.approx([0.1, 0.1, 0.4, 0.4] * 4)
    assert w_pers.tolist() == pytest.approx([0.4, 0.4, 0.1, 0.1] * 4)
    per_prompt = GateSettings(gamma=torch.tensor([0.0, 1.0])).for_batch(2, 3, repeat=1)
    assert per_prompt.gamma.default == (0.0, 0.0, 0.0, 1.0, 1.0, 1.0)
    with pytest.raises(FlexIPInputError, match=r"one value per prompt \(3\), got 2"):
        GateSettings(gamma=torch.tensor([0.0, 1.0])).for_batch(3, 1, repeat=1)
    with pytest.raises(FlexIPInputError, match=r"one value per prompt \(1\), got 2"):
        GateSettings(gamma={"up": [0.1, 0.2]}).for_batch(1, 1, repeat=2)


def test_a_schedule_is_resolved_once_per_step_into_step_free_gates():
    calls = []

    def schedule(t):
        calls.append(t)
        return 1.0 - t

    gate = GateSettings(gamma={"down": schedule, "up": schedule, "mid": GammaSchedule(0.0, 1.0)})
    assert calls == []  # making the value calls nothing
    with pytest.raises(FlexIPInputError, match="at_steps"):
        gate.branch_weights(LAYER_DOWN, 1)
    steps = gate.at_steps(3)
    assert calls == [0.0, 0.5, 1.0]  # once per step, though two blocks use it
    for step in steps:  # reading the weights of every layer calls nothing more
        for layer in (LAYER_DOWN, LAYER_MID, LAYER_UP):
            step.branch_weights(layer, 1)
    assert calls == [0.0, 0.5, 1.0]
    assert [float(s.branch_weights(LAYER_UP, 1)[0]) for s in steps] == [1.0, 0.5, 0.0]
    assert [float(s.branch_weights(LAYER_MID, 1)[0]) for s in steps] == [0.0, 0.5, 1.0]
    one = GateSettings(gamma=GammaSchedule(0.3, 0.9)).at_steps(1)  # a single step sits at fraction 0
    assert float(one[0].branch_weights(LAYER_UP, 1)[0]) == pytest.approx(0.3)
    static = GateSettings(gamma=0.4)
    assert all(step is static for step in static.at_steps(4))


def test_branch_weights_include_scale_and_repeat_for_guidance():
    settings = GateSettings(gamma=torch.tensor([0.0, 1.0]), adapter_scale=0.5, repeat=2)
    w_pres, w_pers = settings.branch_weights(LAYER_DOWN, batch_size=4)
    assert w_pres.tolist() == [0.0, 0.5, 0.0, 0.5]
    assert w_pers.tolist() == [0.5, 0.0, 0.5, 0.0]
    with pytest.raises(FlexIPInputError, match="per-sample gamma has 2 values but the batch has 3 samples"):
        settings.branch_weights(LAYER_DOWN, batch_size=6)


def test_independent_weights_and_off_states():
    assert GateSettings(w_pres=0.7, w_pers=0.2).branch_weights(LAYER_UP, 1)[1].item() == pytest.approx(0.2)
    assert GateSettings(w_pres=0.7, w_pers=0.2, adapter_scale=0.5).branch_weights(LAYER_UP, 1)[0].item() == pytest.approx(0.35)
    assert GateSettings(adapter_scale=0.0).is_off
    assert GateSettings(w_pres=0.0, w_pers=0.0).is_off
    assert not GateSettings(gamma=0.0).is_off
    assert GateSettings().gamma == Gamma(0.5)
    for kwargs, message in (
        (dict(w_pres=0.5), "give both"),
        (dict(w_pres=-1.0, w_pers=0.5), "w_pres"),
        (dict(adapter_scale=float("inf")), "adapter_scale"),
        (dict(gamma=0.5, w_pres=0.5, w_pers=0.5), "either gamma"),
        (dict(repeat=0), "repeat"),
    ):
        with pytest.raises(FlexIPInputError, match=message):
            GateSettings(**kwargs)
