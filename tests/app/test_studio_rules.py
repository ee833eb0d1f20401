"""The app's rules without a model: the dial's forms read once (and as a command), the upload checks, the preset note,
and how the page is wired and served (one generation at a time per model, a bounded queue, the upload limit, the
served paths, 127.0.0.1)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from studio_helpers import MINIWORLD, free_port

from flexip.app.references import MAX_UPLOAD_BYTES, check_upload, from_example
from flexip.app.settings import Dial, RenderSettings
from flexip.errors import FlexIPInputError
from flexip.gate import GammaSchedule, parse_gamma
from flexip.presets import photo_note


def test_each_dial_form_is_the_text_generate_reads():
    assert Dial.read("gamma", 0.35).gamma == parse_gamma("0.35")
    blocks = Dial.read("blocks", 0.5, blocks=(0.2, 0.5, 0.9))
    assert blocks.text == "down=0.2,mid=0.5,up=0.9" and blocks.gamma.form == "per-block"
    schedule = Dial.read("schedule", 0.5, schedule=(1.0, 0.25))
    assert schedule.text == "1:0.25" and schedule.gamma.default == GammaSchedule(1.0, 0.25)
    weights = Dial.read("weights", 0.5, w_pres=0.7, w_pers=0.4000000001)
    assert weights.pipeline_arguments() == {"w_pres": 0.7, "w_pers": 0.4} and weights.command_arguments() == ["--w-pres", "0.7", "--w-pers", "0.4"]
    assert Dial.sweep([0, 0.5, 1]).gamma.numbers == (0.0, 0.5, 1.0)
    with pytest.raises(FlexIPInputError, match="unknown dial mode"):
        Dial.read("sweep", 0.5)


def test_render_settings_check_once_and_write_the_command():
    settings = RenderSettings(prompt="  a dog's hat ", dial=Dial.read("gamma", 0.8), negative_prompt="blurry", steps=12.0, guidance=3, seed=5)
    assert settings.prompt == "a dog's hat" and settings.steps == 12
    command = settings.command(["refs/a b.png"], "miniworld")
    assert command == (
        "flexip generate --reference 'refs/a b.png' --prompt 'a dog'\"'\"'s hat' --gamma 0.8 --adapter-scale 1 --steps 12 --guidance 3 "
        "--seed 5 --base miniworld --negative-prompt blurry"
    )
    text = settings.png_text(command, "miniworld")
    assert text["gamma"] == "0.8" and text["command"] == command and text["negative_prompt"] == "blurry"
    for bad, message in [
        ({"prompt": ""}, "write a prompt"),
        ({"steps": 2.5}, "whole number"),
        ({"seed": -1}, "seed"),
        ({"guidance": -1}, "guidance"),
    ]:
        with pytest.raises(FlexIPInputError, match=message):
            RenderSettings(**{"prompt": "x", "dial": Dial.read("gamma", 0.5), **bad})


def test_upload_checks(tmp_path):
    good = tmp_path / "wide.png"
    Image.new("RGB", (60, 40), (10, 20, 30)).save(good)
    assert check_upload(good).size == (40, 40)  # centre-cropped, as flexip generate crops
    (tmp_path / "x.gif").write_bytes(b"GIF89a")
    with pytest.raises(FlexIPInputError, match="not an image file"):
        check_upload(tmp_path / "x.gif")
    heavy = tmp_path / "heavy.png"
    heavy.write_bytes(b"\0" * (MAX_UPLOAD_BYTES + 1))
    with pytest.raises(FlexIPInputError, match="MiB"):
        check_upload(heavy)


def test_the_preset_note_is_for_photos_on_a_miniature_preset():
    render = from_example("miniworld", next(iter(MINIWORLD.demo().subjects)))
    assert photo_note("miniworld", render.images) is None  # its own 32 px subjects: no note
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8))
    assert "32×32 miniature" in photo_note("miniworld", [photo])
    assert photo_note("tiny-random", [photo]) is None and photo_note("some/sd15-model", [photo]) is None


def test_flexip_generate_says_the_same_note_once(tmp_path):
    from click.testing import CliRunner

    from flexip.cli.main import main

    photo = tmp_path / "photo.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (200, 300, 3), dtype=np.uint8)).save(photo)
    outcome = CliRunner().invoke(main, ["generate", "--reference", str(photo), "--prompt", "a bird", "--steps", "1", "--out", str(tmp_path / "out")])
    assert outcome.exit_code == 0, outcome.output
    assert outcome.output.count("knows only the subjects of its own world") == 1


@pytest.fixture(scope="module")
def wired(tmp_path_factory):
    """The studio's page on a stand-in session (the page is built without touching a model)."""
    import os

    from flexip.app.server import prepare
    from flexip.app.session import Defaults

    saved = {name: os.environ.get(name) for name in ("GRADIO_TEMP_DIR", "GRADIO_ANALYTICS_ENABLED")}
    out = prepare(tmp_path_factory.mktemp("outputs"))
    from flexip.app.studio import build_studio

    session = SimpleNamespace(base="miniworld", adapter=None, defaults=Defaults("a bird", 12, 3.0), description="stand-in", out_dir=out, encodings=0)
    yield build_studio(session), out
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def test_model_events_run_one_at_a_time_and_the_dial_keeps_only_its_latest_value(wired):
    blocks, _ = wired
    functions = {fn.api_name: fn for fn in blocks.fns.values()}
    model_events = [
        fn
        for name, fn in functions.items()
        if name.startswith(("render", "sweep", "control_surface", "use_uploads", "pick_example", "first_example"))
    ]
    assert len(model_events) >= 20
    assert all(fn.concurrency_id == "model" and fn.concurrency_limit == 1 for fn in model_events)
    assert functions["render_on_gamma"].trigger_mode == "always_last"


def test_served_under_the_rules(wired):
    from flexip.app.server import PROGRESS_POLL, QUEUE_POLL, QUEUE_SIZE, exposure_warning, launch

    blocks, out = wired
    launch(blocks, "127.0.0.1", free_port(), out, block=False)
    try:
        assert blocks.share is False and blocks.server_name == "127.0.0.1"
        assert blocks._queue.max_size == QUEUE_SIZE and blocks.max_file_size == MAX_UPLOAD_BYTES
        assert blocks.allowed_paths == [str(Path(out).resolve())] and blocks.show_error is False
        # the queue's loops poll at the studio's pace, not Gradio's 1 ms (a Gradio that renames them fails here)
        assert (blocks._queue.sleep_when_free, blocks._queue.progress_update_sleep_when_free) == (QUEUE_POLL, PROGRESS_POLL)
    finally:
        blocks.close()
    assert exposure_warning("127.0.0.1") is None
    assert "anyone who can reach" in exposure_warning("0.0.0.0")


def test_the_studio_runs_the_miniature_presets_on_one_torch_thread_unless_told():
    from flexip.cli.studio import torch_threads

    assert torch_threads(None, None) == 1  # the default base: the miniworld preset
    assert torch_threads(None, "tiny-random") == 1
    assert torch_threads(None, "runs/sd15") is None  # real weights: torch's own choice
    assert torch_threads(3, None) == 3 and torch_threads(2, "runs/sd15") == 2
