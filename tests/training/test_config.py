"""The training config: typed, validated on load, overridable from the command line, round-trips."""

from __future__ import annotations

import pytest

from flexip.errors import FlexIPInputError
from flexip.training.config import TrainConfig, load_config


def write(tmp_path, text: str):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_defaults_follow_the_spec(tmp_path):
    config = load_config(write(tmp_path, "data: {manifest: m.jsonl}\n"))
    assert config.gate.image_range == (0.5, 1.0) and config.gate.video_range == (0.0, 0.5)
    assert (config.dropout.text, config.dropout.image, config.dropout.both) == (0.05, 0.05, 0.05)
    assert config.logging.validation_gammas == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert config.model.base == "tiny-random" and config.cache.path is None


def test_overrides_and_yaml_round_trip(tmp_path):
    config = load_config(
        write(tmp_path, "data: {manifest: m.jsonl}\noptim: {lr: 1e-4}\n"),
        [
            "optim.lr=3e-4",
            "optim.max_steps=7",
            "data.mix.video=0.7",
            "model.adapter.num_queries=8",
            "logging.validation_gammas=[0, 1]",
            "runtime.ema_decay=0.99",
            "gate.video_range=[0.1, 0.4]",
        ],
    )
    assert config.optim.lr == 3e-4 and config.optim.max_steps == 7  # "1e-4" (a YAML string) read as a number
    assert config.data.mix == {"image": 0.5, "video": 0.7}
    assert config.model.adapter == {"num_queries": 8}
    assert config.gate.video_range == (0.1, 0.4)
    again = load_config(write(tmp_path, config.to_yaml()))
    assert again == config
    assert list(config.to_dict()) == ["model", "data", "gate", "dropout", "optim", "runtime", "logging", "cache"]


@pytest.mark.parametrize(
    "text, overrides, message",
    [
        ("data: {manifest: m.jsonl}\noptim: {learning_rate: 1}\n", [], "optim.learning_rate"),
        ("data: {manifest: m.jsonl}\nmodels: {}\n", [], "unknown config key models"),
        ("data: {manifest: m.jsonl}\n", ["optim.lr=fast"], "optim.lr: expected a number"),
        ("data: {manifest: m.jsonl}\n", ["optim.lrr=1"], "unknown config key optim.lrr; optim has: batch_size, betas"),
        ("data: {manifest: m.jsonl}\n", ["optim.lr=true"], "optim.lr: expected a number, got True"),
        ("data: {manifest: m.jsonl}\n", ["optim.max_steps=true"], "optim.max_steps: expected an integer, got True"),
        ("data: {manifest: m.jsonl}\n", ["logging.validation_guidance=.nan"], "logging.validation_guidance: expected a number, got nan"),
        ("data: {manifest: m.jsonl}\n", ["data.mix.video=x"], "data.mix.video: expected a number, got 'x'"),
        ("data: {manifest: m.jsonl}\n", ["optim.batch_size=2.5"], "optim.batch_size: expected an integer"),
        ("data: {manifest: m.jsonl}\n", ["runtime.gradient_checkpointing=1"], "true/false"),
        ("data: {manifest: m.jsonl}\n", ["runtime.mixed_precision=fp8"], "one of"),
        ("data: {manifest: m.jsonl}\n", ["gate.image_range=[0.8, 0.2]"], "gate.image_range"),
        ("data: {manifest: m.jsonl}\n", ["gate.video_range=[0, 1.5]"], "gate.video_range"),
        ("data: {manifest: m.jsonl}\n", ["dropout.both=0.95"], "≤ 1"),
        ("data: {manifest: m.jsonl}\n", ["optim.max_steps=0"], "optim.max_steps"),
        ("data: {manifest: m.jsonl}\n", ["model.adapter.heads=3"], "model.adapter: unknown key(s) heads"),
        ("data: {manifest: m.jsonl}\n", ["model.adapter.personalization_dino=1"], "personalization_dino must be true or false, got 1"),
        ("data: {manifest: m.jsonl}\n", ["model.adapter.num_queries=true"], "num_queries must be an integer, got True"),
        ("data: {manifest: m.jsonl}\n", ["data.mix.audio=1"], "data.mix: unknown modality audio"),
        ("data: {manifest: m.jsonl}\n", ["data.augment.flip=1"], "data.augment: unknown key(s) flip"),
        ("data: {manifest: m.jsonl}\n", ["data.augment.flip_p=2"], "flip_p"),
        ("data: {manifest: m.jsonl}\n", ["data.variant_masks=1.2"], "data.variant_masks is a probability"),
        ("data: {manifest: m.jsonl}\n", ["model.personalization_init=half"], "'copy' or 'zero'"),
        ("data: {manifest: m.jsonl}\n", ["optim.personalization_lr_scale=-1"], "optim.personalization_lr_scale must be in"),
        ("data: {manifest: m.jsonl}\n", ["model.init_adapter=a", "model.personalization_init=zero"], "only applies to a fresh adapter"),
        ("optim: {lr: 1}\n", [], "data.manifest is required"),
        ("- a\n- b\n", [], "expected a mapping"),
        ("data: {manifest: m.jsonl}\n", ["optim.lr"], "KEY=VALUE"),
    ],
)
def test_invalid_configs_name_the_problem(tmp_path, text, overrides, message):
    with pytest.raises(FlexIPInputError, match=None) as error:
        load_config(write(tmp_path, text), overrides)
    assert message in str(error.value)


def test_numbers_keep_their_types(tmp_path):
    config = load_config(write(tmp_path, "data: {manifest: m.jsonl}\noptim: {lr: 1e-4, max_steps: 7, grad_clip: 1}\ncache:\n"))
    assert config.optim.lr == 1e-4 and type(config.optim.max_steps) is int and type(config.optim.grad_clip) is float
    assert config.cache.path is None  # an empty section takes its defaults


def test_missing_file_and_python_construction_validates(tmp_path):
    with pytest.raises(FlexIPInputError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(FlexIPInputError, match="gate.image_range"):
        TrainConfig.from_dict({"data": {"manifest": "m"}, "gate": {"image_range": [0.2]}})


@pytest.mark.parametrize(
    "override, expected",
    [
        ("logging.validation_gammas=[0, 0.5, 1]", [0.0, 0.5, 1.0]),
        ("logging.validation_gammas=0,0.5,1", [0.0, 0.5, 1.0]),  # γ text, read by the same parser as --gamma
        ("logging.validation_gammas=0 0.25", [0.0, 0.25]),
        ("logging.validation_gammas=0.75", [0.75]),
    ],
)
def test_validation_gammas_take_numbers_or_gamma_text(tmp_path, override, expected):
    config = load_config(write(tmp_path, "data: {manifest: m.jsonl}\n"), [override])
    assert config.logging.validation_gammas == expected
    assert load_config(write(tmp_path, config.to_yaml())) == config


@pytest.mark.parametrize(
    "override, message",
    [
        ("logging.validation_gammas=[0, 1.5]", "logging.validation_gammas: gamma must be in [0, 1], got 1.5"),
        ("logging.validation_gammas=[]", "logging.validation_gammas: a gamma sweep needs at least one value"),
        ("logging.validation_gammas=0,x", "logging.validation_gammas: cannot read gamma '0,x'"),
        (
            "logging.validation_gammas=down=0.3",
            "logging.validation_gammas: a sweep takes plain numbers (e.g. 0,0.5,1), not a per-block gamma",
        ),
    ],
)
def test_bad_validation_gammas_are_refused_by_the_gamma_parser(tmp_path, override, message):
    with pytest.raises(FlexIPInputError) as error:
        load_config(write(tmp_path, "data: {manifest: m.jsonl}\n"), [override])
    assert message in str(error.value)
