"""Property tests over the command line: γ in every text form, numbers of every kind, output paths of every
kind. Each run exits 0, or 2 with exactly one stderr line `error: ...`; a bad number or path is refused
before any model loads, and no run leaves a temporary or half-written file in its output folder.

Model loading is replaced by the cached tiny-random pipeline (`loads`), which also records whether a run
got as far as loading."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from flexip.cli.main import main

from .checks import FAULTS, assert_cli_outcome, partial_files
from .strategies import gamma_text


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("reference") / "ref.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 12, 3), dtype=np.uint8)).save(path)
    return str(path)


def generate(*args: str):
    return CliRunner().invoke(main, ["generate", *args])


def fresh_folder(root: Path) -> Path:
    """An output folder that does not exist yet, under `root` (one per hypothesis example)."""
    index = len(list(root.iterdir()))
    return root / f"out{index}"


# ---- γ ---------------------------------------------------------------------------------------------------


@settings(FAULTS, max_examples=25)
@given(tokens=st.lists(gamma_text, min_size=1, max_size=3))
@example(tokens=[""])
@example(tokens=["-x"])
@example(tokens=["0", "0.5,1"])
@example(tokens=["down=0.2,nosuch=0.4"])
def test_gamma_in_any_text_renders_or_is_one_error_line(tmp_path, reference, loads, tokens):
    out = fresh_folder(tmp_path)
    # the fuzzed tokens first: whatever they hold, the fixed options after them win
    result = generate("--gamma", *tokens, "--reference", reference, "--prompt", "a blob", "--steps", "1", "--out", str(out))
    assert_cli_outcome(result)
    assert not partial_files(out)
    if result.exit_code == 0 and "Usage:" not in result.output:  # a token "-h" asks for the help
        assert list(out.glob("*.png"))


# ---- numbers ---------------------------------------------------------------------------------------------

wild_number = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["", " ", "1e400", "-0", "0x10", "1_0", "٣", "nan", "-inf", "½", "2**64", "18446744073709551616"]),
    st.text(max_size=4),
)
#: Values the options may be given when not fuzzed wild: small, so that a valid run renders in a blink.
SANE = {
    "--seed": st.integers(0, 2**64 - 1).map(str),
    "--steps": st.sampled_from(["1", "2"]),
    "--images-per-prompt": st.sampled_from(["1", "2"]),
    "--guidance": st.sampled_from(["0", "1", "3.5"]),
    "--adapter-scale": st.sampled_from(["0", "0.5", "1"]),
}
#: The wild values an option may take: steps and images only ≤ 2 or invalid (more only costs time; steps over
#: the scheduler's 1000 has its own test below).
WILD = {
    name: wild_number.filter(lambda text, name=name: name not in ("--steps", "--images-per-prompt") or not _integer_above(text, 2))
    for name in (*SANE, "--w-pres", "--w-pers")
}


def _integer_above(text: str, limit: int) -> bool:
    try:
        return int(text) > limit
    except ValueError:
        return False


@st.composite
def number_options(draw) -> list[str]:
    values = {name: draw(strategy) for name, strategy in SANE.items()}
    if draw(st.booleans()):
        values["--w-pres"], values["--w-pers"] = draw(st.sampled_from(["0", "0.7"])), draw(st.sampled_from(["0.3", "1"]))
    for name in draw(st.sets(st.sampled_from(sorted(WILD)), min_size=1, max_size=2)):
        values[name] = draw(WILD[name])
    return [f"{name}={value}" for name, value in values.items()]


@settings(FAULTS, max_examples=50)
@given(options=number_options())
@example(options=["--seed=18446744073709551616"])
@example(options=["--seed=-1"])
@example(options=["--guidance=nan"])
@example(options=["--adapter-scale=inf"])
@example(options=["--steps=0"])
@example(options=["--w-pres=0.5"])
@example(options=["--steps=abc"])
def test_numbers_of_any_kind_render_or_are_refused_before_loading(tmp_path, reference, loads, options):
    out = fresh_folder(tmp_path)
    loads.clear()
    result = generate(*options, "--reference", reference, "--prompt", "a blob", "--out", str(out))
    assert_cli_outcome(result)
    if result.exit_code == 2:
        # valid but extreme values (an adapter scale of 1e19) may still overflow while rendering: that stops with its own error
        assert not loads or "NaN or Inf" in result.stderr, f"refused only after loading the model: {result.stderr}"
        assert not out.exists()
    else:
        assert loads and list(out.glob("*.png")) and not partial_files(out)


# ---- output folders --------------------------------------------------------------------------------------

name_part = st.one_of(
    st.text(min_size=1, max_size=12),
    st.sampled_from(["", ".", "a\nb", "a\x00b", " ", "x" * 300, "é" * 200, "file.txt", "file.txt/below", "dir/file.txt"]),
)


@settings(FAULTS, max_examples=40)
@given(parts=st.lists(name_part, min_size=1, max_size=3))
@example(parts=["file.txt"])  # an existing file named as the folder: click printed its usage block
@example(parts=["file.txt", "below"])  # under a file
@example(parts=["x" * 300])  # a name too long
@example(parts=["a" * 200, "b" * 200] * 11)  # a path too long
@example(parts=[""])
def test_output_folders_of_any_name_are_used_or_refused_before_loading(tmp_path, reference, loads, parts):
    root = fresh_folder(tmp_path)
    root.mkdir()
    (root / "file.txt").write_text("not a folder")
    (root / "dir").mkdir()
    (root / "dir" / "file.txt").write_text("not a folder")
    out = os.path.join(str(root), *parts) if parts != [""] else ""
    try:
        inside = os.path.realpath(out).startswith(str(root) + os.sep)
    except ValueError:  # a NUL character: no path at all, refused by the check
        inside = True
    assume(out == "" or inside)  # never write outside this example's folder ("..", an absolute part)
    before = sorted(str(p) for p in root.rglob("*"))
    loads.clear()
    with contextlib.chdir(root):  # an empty or relative --out, wrongly accepted, still lands in this folder
        result = generate("--reference", reference, "--prompt", "a blob", "--steps", "1", "--out", out)
    assert_cli_outcome(result)
    assert not partial_files(root)
    if result.exit_code == 2:
        assert not loads, f"refused only after loading the model: {result.stderr}"
        assert sorted(str(p) for p in root.rglob("*")) == before  # nothing made
    else:
        assert list(Path(out).glob("*.png"))


@pytest.mark.parametrize(
    "options, message",
    [
        (["--out", "{file}"], "is a file, not a folder"),
        (["--out", "{file}/below"], "is a file"),
        (["--seed", "18446744073709551616"], "--seed"),
        (["--steps", "0"], "--steps"),
        (["--steps", "x"], "--steps"),
    ],
)
def test_demo_checks_its_options_before_loading(tmp_path, loads, options, message):
    file = tmp_path / "file.txt"
    file.write_text("x")
    result = CliRunner().invoke(main, ["demo", "--base", "tiny-random", *(o.format(file=file) for o in options)])
    assert result.exit_code == 2 and message in result.stderr and not loads
    assert_cli_outcome(result)


def test_more_steps_than_the_scheduler_has_is_one_error_line(tmp_path, reference, loads):
    result = generate("--reference", reference, "--prompt", "a blob", "--steps", "1001", "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert_cli_outcome(result)


# ---- flexip train: the same checks, on the config's folder and seed ------------------------------------------


@pytest.mark.parametrize(
    "override, message",
    [
        ("logging.output_dir={file}", "logging.output_dir: "),
        ("logging.output_dir={file}/run", "logging.output_dir: cannot make"),
        ("logging.output_dir={long}", "logging.output_dir: "),
        ("runtime.seed=18446744073709551616", "runtime.seed must be"),
    ],
)
def test_train_refuses_a_bad_output_folder_or_seed_before_reading_data(tmp_path, monkeypatch, override, message):
    import flexip.training.trainer

    def no_trainer(*args, **kwargs):
        raise AssertionError("the trainer started")

    monkeypatch.setattr(flexip.training.trainer, "Trainer", no_trainer)
    (tmp_path / "file.txt").write_text("x")
    config = tmp_path / "c.yaml"
    # the manifest does not even exist: the check comes before any data is read
    config.write_text(yaml.safe_dump({"data": {"manifest": str(tmp_path / "missing.jsonl")}, "logging": {"output_dir": str(tmp_path / "run")}}))
    override = override.format(file=tmp_path / "file.txt", long=tmp_path / ("x" * 300))
    result = CliRunner().invoke(main, ["train", "--config", str(config), override])
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert_cli_outcome(result)


def test_click_usage_errors_are_one_line_too(tmp_path):
    for args in (["generate", "--no-such-option"], ["generate"], ["train", "--config", str(tmp_path)], ["nosuchcommand"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, args
        assert_cli_outcome(result)
        assert "--help" in result.stderr  # the one line says where to look


# ---- references, models and devices --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reference, message",
    [
        ("{root}", "image not found"),
        ("{root}/" + "x" * 300 + ".png", "File name too long"),
        ("{root}/with\nnewline.png", "image not found"),
        ("{root}/empty.png", "empty"),
        ("{root}/text.png", "not a readable image"),
    ],
    ids=["folder", "name-too-long", "newline", "empty", "not-an-image"],
)
def test_odd_references_are_one_line_before_loading(tmp_path, loads, reference, message):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    result = generate("--reference", reference.format(root=tmp_path), "--prompt", "a blob", "--out", str(tmp_path / "out"))
    assert_cli_outcome(result)
    assert result.exit_code == 2 and message in result.stderr and not loads


@pytest.mark.parametrize("option", ["--adapter", "--base"])
def test_a_model_path_too_long_is_one_error_line(tmp_path, reference, option):
    base = ["--base", "tiny-random"] if option == "--adapter" else []
    result = generate(*base, option, str(tmp_path / ("x" * 300)), "--reference", reference, "--prompt", "a blob", "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "too long" in result.stderr
    assert_cli_outcome(result)


@pytest.mark.parametrize("which", ["adapter", "base"])
def test_the_api_refuses_a_model_path_too_long_with_a_flexip_error(tmp_path, which):
    from flexip.errors import FlexIPError
    from flexip.pipelines import FlexIPPipeline

    long = str(tmp_path / ("x" * 300))
    with pytest.raises(FlexIPError):
        FlexIPPipeline.from_pretrained(*(("tiny-random",) if which == "adapter" else (long,)), **({"adapter": long} if which == "adapter" else {}))


def test_a_device_that_cannot_compute_is_refused_before_loading(tmp_path, reference, monkeypatch):
    from flexip.pipelines import FlexIPPipeline

    def no_loading(cls, *args, **kwargs):  # not the shared pipeline: this run would move it to the meta device
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(FlexIPPipeline, "from_pretrained", classmethod(no_loading))
    result = generate("--device", "meta", "--reference", reference, "--prompt", "a blob", "--steps", "1", "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert_cli_outcome(result)


def test_an_adapter_with_nan_weights_stops_and_writes_no_image(tmp_path, pipe, reference, loads):
    import torch

    saved = {name: value.clone() for name, value in pipe.adapter.state_dict().items()}
    out = tmp_path / "out"
    try:
        with torch.no_grad():
            for parameter in pipe.adapter.parameters():
                parameter.fill_(float("nan"))
        result = generate("--reference", reference, "--prompt", "a blob", "--steps", "2", "--out", str(out))
    finally:
        pipe.adapter.load_state_dict(saved)
    assert result.exit_code == 2 and "NaN or Inf" in result.stderr
    assert_cli_outcome(result)
    assert not out.exists() or not any(out.iterdir())
