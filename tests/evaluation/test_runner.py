"""Generation over a benchmark: layout, seeds, resuming, and scoring what was generated."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from flexip.errors import FlexIPInputError
from flexip.evaluation.results import load_result
from flexip.evaluation.runner import (
    GenerationSettings,
    RunConfig,
    generate_benchmark,
    image_path,
    score_run,
)
from flexip.evaluation.scoring import ScoreConfig


class FakeMethod:
    """Records its calls; makes an image whose colour encodes (seed, control value)."""

    name = "Fake"
    control = "gamma"

    def __init__(self):
        self.calls = []
        self.encoded = 0

    def encode_reference(self, images):
        assert all(isinstance(image, Image.Image) and image.mode == "RGB" for image in images)
        self.encoded += 1
        return {"reference": images[0].size}

    def generate(self, prompt, reference, values, seed, settings):
        self.calls.append((prompt, tuple(values), seed))
        return [Image.new("RGB", (32, 32), (seed * 40 % 256, int(value * 255), 128)) for value in values]

    def describe(self):
        return {"kind": "fake"}


def test_layout_seeds_and_resume(tmp_path, tiny_bench):
    method = FakeMethod()
    config = RunConfig(values=(1.0, 0.0), images_per_prompt=2, seed=5, prompts_per_subject=2, generation=GenerationSettings(num_inference_steps=2))
    summary = generate_benchmark(method, tiny_bench, tmp_path, config, progress=False)
    assert config.values == (0.0, 1.0) and config.seeds == [5, 6]
    assert (summary.generated, summary.skipped) == (2 * 2 * 2 * 2, 0)  # subjects × prompts × seeds × values
    assert method.encoded == 2  # each reference is encoded once, reused for every prompt, seed and value
    assert ("a dog in the jungle", (0.0, 1.0), 5) in method.calls  # one call per prompt × seed for the sweep
    path = image_path(tmp_path / "images", "gamma", 1.0, "can", 1, 6, "png")
    assert path.relative_to(tmp_path).as_posix() == "images/gamma-1/can/01/6.png"
    assert Image.open(path).getpixel((0, 0)) == (6 * 40, 255, 128)
    record = json.loads((tmp_path / "images" / "run.json").read_text())
    assert record["seeds"] == [5, 6] and record["reference_index"] == 0 and record["generation"]["num_inference_steps"] == 2

    again = FakeMethod()
    summary = generate_benchmark(again, tiny_bench, tmp_path, config, progress=False)
    assert (summary.generated, summary.skipped, again.calls, again.encoded) == (0, 16, [], 0)

    path.unlink()  # a missing image (e.g. an interrupted run) is regenerated, only for its value
    extended = RunConfig(
        values=(0.0, 0.5, 1.0), images_per_prompt=2, seed=5, prompts_per_subject=2, generation=GenerationSettings(num_inference_steps=2)
    )
    resumed = FakeMethod()
    summary = generate_benchmark(resumed, tiny_bench, tmp_path, extended, progress=False)
    assert summary.generated == 8 + 1 and ("a can in the snow", (0.5, 1.0), 6) in resumed.calls
    assert json.loads((tmp_path / "images" / "run.json").read_text())["values"] == [0.0, 0.5, 1.0]

    more = RunConfig(values=(0.0,), images_per_prompt=3, seed=5, prompts_per_subject=1, generation=GenerationSettings(num_inference_steps=2))
    summary = generate_benchmark(FakeMethod(), tiny_bench, tmp_path, more, progress=False)
    assert summary.generated == 2  # only seed 7 is new, for 2 subjects × 1 prompt
    assert json.loads((tmp_path / "images" / "run.json").read_text())["seeds"] == [5, 6, 7]

    changed = RunConfig(values=(0.0,), images_per_prompt=2, seed=5, generation=GenerationSettings(num_inference_steps=3))
    with pytest.raises(FlexIPInputError, match="different generation"):
        generate_benchmark(FakeMethod(), tiny_bench, tmp_path, changed, progress=False)
    other_model = FakeMethod()
    other_model.describe = lambda: {"kind": "another"}
    with pytest.raises(FlexIPInputError, match="different method_config"):
        generate_benchmark(other_model, tiny_bench, tmp_path, more, progress=False)


def test_run_config_validation():
    with pytest.raises(FlexIPInputError, match="distinct"):
        RunConfig(values=(0.5, 0.5))
    with pytest.raises(FlexIPInputError, match="images_per_prompt"):
        RunConfig(values=(0.5,), images_per_prompt=0)
    with pytest.raises(FlexIPInputError, match="multiple of 8"):
        GenerationSettings(height=100)


def test_generated_sweep_is_scored_with_its_run_settings(tmp_path, tiny_bench, backbones):
    config = RunConfig(values=(0.0, 1.0), images_per_prompt=1, subjects=("can",), prompts_per_subject=1)
    generate_benchmark(FakeMethod(), tiny_bench, tmp_path, config, progress=False)
    written = score_run(tmp_path, tiny_bench, backbones, ScoreConfig(metrics=("CLIP-T", "DINO-I")), "Fake", "gamma", config.values)
    assert [path.name for path in written] == ["Fake_gamma-0.json", "Fake_gamma-1.json"]
    result = load_result(written[1])
    assert result.control == {"name": "gamma", "value": 1.0} and result.seeds == [0]
    assert result.config["generation"]["method_config"] == {"kind": "fake"}
    assert set(result.overall) == {"CLIP-T", "DINO-I"} and result.live is None


def test_flexip_sweep_is_one_call_from_one_noise(tmp_path, tiny_bench):
    from flexip.evaluation.runner import FlexIPMethod
    from flexip.testing import tiny_pipeline

    method = FlexIPMethod(tiny_pipeline(seed=0))
    settings = GenerationSettings(num_inference_steps=2)
    reference = method.encode_reference([Image.open(tiny_bench.subject("can").images[0]).convert("RGB")])
    swept = method.generate("a can in the snow", reference, [0.0, 1.0], 3, settings)
    single = method.generate("a can in the snow", reference, [1.0], 3, settings)
    assert len(swept) == 2 and swept[0].tobytes() != swept[1].tobytes()
    assert swept[1].tobytes() == single[0].tobytes()  # same seed → same noise, with or without the sweep


def test_eval_run_command_end_to_end(tmp_path, cli, tiny_bench_dir, backbone_args):
    from click.testing import CliRunner

    args = [
        "eval",
        "run",
        "--out",
        str(tmp_path / "run"),
        "--base-model",
        "tiny-random",
        "--gamma",
        "0,0.5,1",
        "--images-per-prompt",
        "1",
        "--subjects",
        "dog,can",
        "--prompts-per-subject",
        "1",
        "--steps",
        "2",
        "--device",
        "cpu",
        *backbone_args,
    ]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "generated 6 images" in first.output and "FlexIP (gamma=0.5)" in first.output
    result = load_result(tmp_path / "run" / "results" / "FlexIP_gamma-0.5.json")
    assert result.config["generation"]["method_config"]["base_model"] == "tiny-random"
    assert result.config["generation"]["seeds"] == [0] == result.seeds
    assert result.live is not None and result.object is not None
    again = CliRunner().invoke(cli, [*args, "--no-score"])
    assert again.exit_code == 0 and "generated 0 images, kept 6" in again.output
    wrong = CliRunner().invoke(cli, [*args[:6], "--scale", "0.5"])
    assert wrong.exit_code == 2 and "--gamma" in wrong.output


@pytest.mark.parametrize("tokens", [["0,0.5,1"], ["0", "0.5", "1"], ["0", "0.5,1"], ["1, 0.5 ,0,"]])
def test_generate_and_eval_run_accept_the_same_sweep_texts(tmp_path, cli, tiny_bench_dir, tokens):
    from click.testing import CliRunner

    common = ["--steps", "1", "--device", "cpu"]
    generated = CliRunner().invoke(
        cli,
        [
            "generate",
            "--base",
            "tiny-random",
            "--reference",
            str(tiny_bench_dir / "dog" / "00.jpg"),
            "--prompt",
            "a dog",
            "--gamma",
            *tokens,
            "--out",
            str(tmp_path / "gen"),
            *common,
        ],
    )
    assert generated.exit_code == 0, generated.output
    assert sorted(path.name for path in (tmp_path / "gen").glob("00_*.png")) == [f"00_a-dog_g{g}_0.png" for g in ("0.00", "0.50", "1.00")]
    evaluated = CliRunner().invoke(
        cli,
        [
            "eval",
            "run",
            "--out",
            str(tmp_path / "run"),
            "--base-model",
            "tiny-random",
            "--gamma",
            *tokens,
            "--images-per-prompt",
            "1",
            "--subjects",
            "dog",
            "--prompts-per-subject",
            "1",
            "--no-score",
            "--benchmark",
            str(tiny_bench_dir),
            *common,
        ],
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads((tmp_path / "run" / "images" / "run.json").read_text())["values"] == [0.0, 0.5, 1.0]
    assert sorted(path.name for path in (tmp_path / "run" / "images").glob("gamma-*")) == ["gamma-0", "gamma-0.5", "gamma-1"]


@pytest.mark.parametrize(
    "tokens, message",
    [
        (["0.5", "1.5"], "error: gamma must be in [0, 1], got 1.5"),
        (["0,x"], "error: cannot read gamma '0,x'; expected a number in [0, 1]"),
        (["0.5", "1:0"], "error: a gamma sweep takes plain numbers"),
    ],
)
def test_generate_and_eval_run_refuse_the_same_bad_sweeps_alike(tmp_path, cli, tiny_bench_dir, tokens, message):
    from click.testing import CliRunner

    for args in (
        ["generate", "--reference", str(tiny_bench_dir / "dog" / "00.jpg"), "--prompt", "a dog"],
        ["eval", "run", "--out", str(tmp_path / "run"), "--base-model", "tiny-random", "--benchmark", str(tiny_bench_dir)],
    ):
        result = CliRunner().invoke(cli, [*args, "--gamma", *tokens])
        assert result.exit_code == 2 and result.output.strip().splitlines() == [result.output.strip()], result.output
        assert result.output.strip().startswith(message), result.output


def test_eval_run_sweeps_plain_numbers_only(tmp_path, cli, tiny_bench_dir):
    from click.testing import CliRunner

    for text, form in (("1:0", "schedule"), ("down=0.2,up=0.8", "per-block")):
        result = CliRunner().invoke(cli, ["eval", "run", "--out", str(tmp_path / "run"), "--base-model", "tiny-random", "--gamma", text])
        assert result.exit_code == 2 and f"a sweep takes plain numbers (e.g. 0,0.5,1), not a {form} gamma" in result.output
