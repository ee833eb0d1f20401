"""Property tests over the library's inputs: γ text, images (random sizes, modes, bytes, damaged files),
arrays, manifests and the pipeline's arguments. Each call ends in a result or a FlexIPError with a one-line
message; never another exception. The defects it found in the pipeline's own checks are the cases at the end."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from flexip.data.images import load_image
from flexip.data.manifest import load_manifest
from flexip.errors import FlexIPError
from flexip.gate import Gamma, GateSettings, parse_gamma

from .checks import FAULTS, assert_one_line
from .strategies import FITS, arrays, damaged_files, gamma_text, manifest_bytes, pil_images, pipeline_arguments

# numpy's "invalid value encountered" warnings are how a NaN pixel turns silently into a black one: errors here
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


# ---- γ text ------------------------------------------------------------------------------------------------


@settings(FAULTS, max_examples=150)
@given(st.one_of(gamma_text, st.lists(gamma_text, min_size=1, max_size=3)))
@example("")
@example(["0", ""])
@example("down=0.3,mid=0.5,up=1.0:0.4")
@example("up=1e400")
def test_parse_gamma_reads_or_refuses_every_text(text):
    try:
        gamma = parse_gamma(text)
        GateSettings(gamma=gamma).for_batch(2, 1, repeat=2).at_steps(3)  # a parsed γ is usable as it stands
    except FlexIPError as error:
        assert_one_line(error)
        return
    assert isinstance(gamma, Gamma)


@settings(FAULTS, max_examples=25)
@given(text=gamma_text)
@example(text="down=0.2,up=0.9")
@example(text="nosuchblock=0.5")
def test_the_pipeline_renders_or_refuses_every_gamma_text(pipe, embeds, text):
    try:
        result = pipe("a blob", reference_embeds=embeds, gamma=parse_gamma(text), num_inference_steps=1, guidance_scale=2.0)
    except FlexIPError as error:
        assert_one_line(error)
        return
    assert result.images and all(image.size == (16, 16) for image in result.images)


# ---- images and arrays -------------------------------------------------------------------------------------


def check_loaded(source, fit: str, **kwargs) -> None:
    try:
        image = load_image(source, fit=fit, **kwargs)
    except FlexIPError as error:
        assert_one_line(error)
        return
    assert image.mode == "RGB" and image.width > 0 and image.height > 0
    assert fit == "none" or image.width == image.height


@settings(FAULTS, max_examples=120)
@given(image=pil_images(), fit=st.sampled_from(FITS))
def test_every_mode_and_size_loads_or_is_refused(image, fit):
    check_loaded(image, fit)


@settings(FAULTS, max_examples=150)
@given(data=damaged_files() | st.binary(max_size=300), fit=st.sampled_from(FITS), as_path=st.booleans())
def test_damaged_and_random_bytes_load_or_are_refused(tmp_path, data, fit, as_path):
    source = data
    if as_path:
        source = tmp_path / "image.bin"
        source.write_bytes(data)
    check_loaded(source, fit, max_pixels=200_000)  # a damaged header may claim any size: keep decoding quick


@settings(FAULTS, max_examples=120)
@given(array=arrays(), fit=st.sampled_from(FITS))
@example(array=np.zeros((0, 0, 3), np.uint8), fit="none")
@example(array=np.zeros((5, 0), np.uint8), fit="pad")
def test_arrays_of_any_shape_and_dtype_load_or_are_refused(array, fit):
    check_loaded(array, fit)


@pytest.mark.parametrize(
    "source",
    ["a" * 300 + ".png", "folder\nwith a newline/ref.png", "bad\x00name.png", ".", 12, None, bytearray(b"\x89PNG")],
    ids=["name-too-long", "newline", "nul", "folder", "int", "none", "bytearray"],
)
def test_odd_sources_are_one_line_errors(source):
    with pytest.raises(FlexIPError) as caught:
        load_image(source)
    assert_one_line(caught.value)


def test_an_unknown_fit_mode_is_refused_even_for_a_square_image():
    with pytest.raises(FlexIPError, match="fit mode"):
        load_image(np.zeros((8, 8, 3), np.uint8), fit="stretch")


@settings(FAULTS, max_examples=50)
@given(
    images=st.one_of(
        pil_images(),
        arrays(),
        st.binary(max_size=64),
        st.lists(pil_images(min_side=1), max_size=3),
        st.lists(st.lists(pil_images(min_side=1), max_size=2), max_size=2),
    ),
    multi=st.sampled_from(["mean", "concat", "sum"]),
    fit=st.sampled_from([*FITS, "stretch"]),
)
def test_encode_reference_encodes_or_refuses(pipe, images, multi, fit):
    try:
        embeds = pipe.encode_reference(images, multi_reference=multi, fit=fit)
    except FlexIPError as error:
        assert_one_line(error)
        return
    assert torch.isfinite(embeds.clip_embeds).all() and torch.isfinite(embeds.dino_tokens).all()


# ---- manifests ---------------------------------------------------------------------------------------------


@settings(FAULTS, max_examples=150)
@given(data=manifest_bytes)
@example(data=b"\xff\xfe not utf-8")
@example(data=b"[" * 5000)  # deeper than json's recursion limit
@example(data=b'{"modality": "video", "video": "c.mp4", "captions": [{"start": ' + b"9" * 5000 + b', "end": 1, "caption": "x"}]}')
def test_manifests_of_random_bytes_load_or_are_refused(tmp_path, data):
    path = tmp_path / "manifest.jsonl"
    path.write_bytes(data)
    try:
        records = load_manifest(path)
    except FlexIPError as error:
        assert_one_line(error)
        return
    assert records


# ---- the pipeline's arguments --------------------------------------------------------------------------------


@settings(FAULTS, max_examples=40)
@given(arguments=pipeline_arguments())
@example(arguments={"prompt": "a blob", "guidance_scale": math.nan, "num_inference_steps": 1})
def test_the_pipeline_renders_or_refuses_any_arguments(pipe, embeds, arguments):
    try:
        result = pipe(reference_embeds=embeds, **arguments)
    except FlexIPError as error:
        assert_one_line(error)
        return
    assert result.images and len(result.images) == len(result.gammas)


# ---- defects this suite found in the pipeline's checks (each value: the arguments, the fix made) -----------------

OUTSIDE = {
    "guidance too large for a float": (
        {"guidance_scale": 10**400},
        "pipelines/pipeline_flexip.py: math.isfinite(10**400) raises OverflowError; convert with float() inside a try",
    ),
    "more steps than the scheduler has": (
        {"num_inference_steps": 1001},
        "pipelines/pipeline_flexip.py: check num_inference_steps <= scheduler.config.num_train_timesteps (diffusers raises ValueError)",
    ),
    "fractional steps": (
        {"num_inference_steps": 1.5},
        "pipelines/pipeline_flexip.py: require an int num_inference_steps (not bool); 1.5 ends in an IndexError in the scheduler",
    ),
    "fractional images per prompt": (
        {"num_images_per_prompt": 1.5},
        "pipelines/pipeline_flexip.py: require an int num_images_per_prompt (not bool); 1.5 ends in a TypeError in repeat_interleave",
    ),
    "negative height": (
        {"height": -8},
        "pipelines/pipeline_flexip.py: require height and width > 0 (-8 passes the multiple-of-8 check; torch raises RuntimeError)",
    ),
}


@pytest.mark.parametrize("arguments", [{"adapter_scale": 10**400}, {"gamma": 10**400}, {"w_pres": 10**400, "w_pers": 0.5}], ids=str)
def test_numbers_too_large_for_a_float_are_refused(pipe, embeds, arguments):
    """Found by this suite: float(10**400) raised OverflowError inside the gate's checks."""
    with pytest.raises(FlexIPError) as caught:
        pipe("a blob", reference_embeds=embeds, num_inference_steps=1, **arguments)
    assert_one_line(caught.value)


@pytest.mark.parametrize("case", list(OUTSIDE))
def test_pipeline_arguments_refused_outside_this_layer(pipe, embeds, case):
    arguments = {"num_inference_steps": 1, **OUTSIDE[case][0]}
    with pytest.raises(FlexIPError) as caught:
        pipe("a blob", reference_embeds=embeds, **arguments)
    assert_one_line(caught.value)


def test_a_training_seed_beyond_64_bits_is_refused_by_the_config():
    from flexip.training.config import TrainConfig

    with pytest.raises(FlexIPError, match="runtime.seed"):
        TrainConfig.from_dict({"data": {"manifest": "m.jsonl"}, "runtime": {"seed": 2**64}})
