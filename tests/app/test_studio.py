"""FlexIP Studio end to end through gradio_client: the real server (`flexip studio` on the miniworld preset, with a
random IP-Adapter for the Compare tab), real uploads, real renders."""

from __future__ import annotations

import shlex
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from studio_helpers import MINIWORLD, TEST_STEPS

REFERENCE = MINIWORLD.folder / "demo" / "heldout-00002-bird.png"


@pytest.fixture(scope="module")
def client(studio_server, tmp_path_factory):
    return Client(studio_server.url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


@pytest.fixture(scope="module")
def uploaded(client, tmp_path_factory):
    """The held-out bird uploaded as a user would (a file of their own), once for the module."""
    folder = tmp_path_factory.mktemp("uploads")
    path = folder / "my-bird.png"
    path.write_bytes(REFERENCE.read_bytes())
    in_use, note = client.predict(files=[handle_file(str(path))], api_name="/use_uploads")
    assert len(in_use) == 1 and note == ""
    return path


def render(client, **settings):
    image, status, command = client.predict(**{"steps": TEST_STEPS, **settings}, api_name="/render")
    return Path(image), status, command


def pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_changing_gamma_changes_the_image_and_reuses_the_encoding(client, uploaded):
    low, status_low, _ = render(client, gamma=0.1)
    high, status_high, _ = render(client, gamma=0.9)
    again, _, _ = render(client, gamma=0.1)
    assert pixels(low).shape == (32, 32, 3)
    assert np.abs(pixels(low) - pixels(high)).mean() > 1.0  # γ moved the image
    assert np.array_equal(pixels(low), pixels(again))  # same settings, same seed: the same image
    assert "reused from the cache" in status_low and "reused from the cache" in status_high  # encoded once, at upload


def test_a_download_carries_its_settings_and_the_command_renders_the_same(client, uploaded, studio_server, monkeypatch, tmp_path):
    from flexip.cli.main import main

    image, _, command = render(client, gamma=0.35, seed=7, prompt="a bird in the snow", adapter_scale=0.8)
    with Image.open(image) as png:
        text = dict(png.text)
    assert text["gamma"] == "0.35" and text["seed"] == "7" and text["steps"] == str(TEST_STEPS) and text["adapter_scale"] == "0.8"
    assert text["prompt"] == "a bird in the snow" and text["model"] == "miniworld" and text["command"] == command
    arguments = shlex.split(command)
    assert arguments[:2] == ["flexip", "generate"] and "--gamma" in arguments
    monkeypatch.chdir(studio_server.cwd)  # the command's reference paths are relative to the server's folder
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the server runs (--threads 1): float sums of other thread counts may differ in the last bit
    try:
        outcome = CliRunner().invoke(main, [*arguments[1:], "--out", str(tmp_path / "cli")])
    finally:
        torch.set_num_threads(threads)
    assert outcome.exit_code == 0, outcome.output
    (written,) = (tmp_path / "cli").glob("*.png")
    assert np.array_equal(pixels(written), pixels(image))  # the copied command renders the very same pixels


def test_every_form_of_the_dial_renders_and_reads_back_as_a_command(client, uploaded):
    forms = {
        "weights": ({"w_pres": 0.7, "w_pers": 0.3}, "--w-pres 0.7 --w-pers 0.3"),
        "blocks": ({"gamma_down": 0.2, "gamma_mid": 0.5, "gamma_up": 0.9}, "--gamma down=0.2,mid=0.5,up=0.9"),
        "schedule": ({"gamma_start": 1.0, "gamma_end": 0.2}, "--gamma 1:0.2"),
    }
    seen = []
    for dial, (values, expected) in forms.items():
        image, _, command = render(client, dial=dial, **values)
        assert expected in command
        seen.append(pixels(image))
    assert np.abs(seen[0] - seen[1]).mean() > 0 and np.abs(seen[1] - seen[2]).mean() > 0


def test_sweep_strip_and_control_surface(client, uploaded):
    strip, status, command = client.predict(steps=TEST_STEPS, guidance=1.0, api_name="/sweep")
    assert [item["caption"] for item in strip] == ["γ = 0", "γ = 0.25", "γ = 0.5", "γ = 0.75", "γ = 1"]
    assert "--gamma 0,0.25,0.5,0.75,1" in command  # one batched call
    images = [pixels(item["image"]) for item in strip]
    assert all(np.abs(a - b).mean() > 0 for a, b in zip(images, images[1:]))
    with Image.open(strip[2]["image"]) as png:
        assert png.text["gamma"] == "0.5"
    surface, _ = client.predict(steps=TEST_STEPS, guidance=1.0, api_name="/control_surface")
    with Image.open(surface) as grid:
        assert grid.width > grid.height  # 5 γ columns (+ labels) × 4 scale rows
        assert grid.text["adapter_scale"] == "0,0.5,1,1.5" and grid.text["gamma"] == "0,0.25,0.5,0.75,1"


def test_compare_puts_ip_adapter_beside_flexip_from_the_same_noise(client, uploaded):
    ours, theirs, timing = client.predict(steps=TEST_STEPS, guidance=1.0, api_name="/compare")
    assert [item["caption"] for item in theirs] == ["scale = 0", "scale = 0.25", "scale = 0.5", "scale = 0.75", "scale = 1"]
    assert len(ours) == 5 and "IP-Adapter" in timing
    base_model, _, _ = render(client, adapter_scale=0.0, guidance=1.0)  # FlexIP with its adapter off is the base model
    # IP-Adapter at scale 0 is the same base model from the same noise
    assert np.abs(pixels(theirs[0]["image"]) - pixels(base_model)).max() <= 2
    assert np.abs(pixels(theirs[-1]["image"]) - pixels(base_model)).mean() > 1.0  # and its scale does something


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("notes.png", b"this is text, not a picture", "not a readable image file: notes.png"),
        ("empty.png", b"", "empty"),
        ("huge.png", None, "too large"),
    ],
)
def test_a_bad_upload_gives_a_clear_message(client, tmp_path, name, content, message):
    path = tmp_path / name
    if content is None:  # a decompression bomb in miniature: a small file declaring 5000 × 4000 pixels
        Image.new("L", (5000, 4000)).save(path, optimize=True)
    else:
        path.write_bytes(content)
    with pytest.raises(AppError) as raised:
        client.predict(files=[handle_file(str(path))], api_name="/use_uploads")
    assert message in str(raised.value) and "Traceback" not in str(raised.value)


def test_upload_rules_on_count_and_type(client, tmp_path):
    five = []
    for index in range(5):
        five.append(tmp_path / f"ref{index}.png")
        Image.new("RGB", (32, 32), (index * 40, 0, 0)).save(five[-1])
    with pytest.raises(AppError, match="at most 4"):
        client.predict(files=[handle_file(str(p)) for p in five], api_name="/use_uploads")
    script = tmp_path / "page.html"
    script.write_text("<script>alert(1)</script>")
    with pytest.raises(AppError) as raised:
        client.predict(files=[handle_file(str(script))], api_name="/use_uploads")
    assert "Traceback" not in str(raised.value)


def test_bad_settings_give_a_clear_message(client, uploaded):
    with pytest.raises(AppError, match="write a prompt"):
        render(client, prompt="   ")
    with pytest.raises(AppError, match="less than minimum"):  # the page's own range checks say so too
        render(client, dial="weights", w_pres=-1.0)


def test_a_photo_on_the_miniworld_preset_gets_the_note(client, tmp_path):
    photo = tmp_path / "holiday.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(photo)
    in_use, note = client.predict(files=[handle_file(str(photo))], api_name="/use_uploads")
    assert "knows only the subjects of its own world" in note and "SD1.5" in note


def test_no_request_reaches_files_outside_the_outputs(studio_server, client, uploaded):
    image, _, _ = render(client, gamma=0.5)  # a file the page shows: served
    repository_file = Path(__file__).resolve().parents[2] / "pyproject.toml"
    cache = studio_server.out / "cache"
    refused = ["/etc/passwd", str(repository_file), f"{cache}/../../ip-adapter/ip-adapter_miniworld.safetensors", str(studio_server.log)]
    for target in refused:
        try:
            with urllib.request.urlopen(f"{studio_server.url}gradio_api/file={target}", timeout=10) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        assert status in (403, 404), f"{target} was served ({status})"


def test_it_listens_on_loopback_only(studio_server):
    port = int(studio_server.url.rstrip("/").rsplit(":", 1)[1])
    table = Path("/proc/net/tcp")
    if not table.exists():
        pytest.skip("no /proc/net/tcp on this system")
    listening = [line.split()[1] for line in table.read_text().splitlines()[1:] if line.split()[3] == "0A"]  # state LISTEN
    addresses = {entry.split(":")[0] for entry in listening if int(entry.split(":")[1], 16) == port}
    assert addresses == {"0100007F"}  # 127.0.0.1, little-endian hex


def test_the_compare_tab_says_what_to_load_without_a_baseline():
    from flexip.app.compare import MISSING

    assert "--ip-adapter" in MISSING and "image_encoder" in MISSING


def test_an_upload_over_the_byte_limit_is_refused_by_the_server(client, studio_server, tmp_path):
    from flexip.app.references import MAX_UPLOAD_BYTES

    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + b"\0" * MAX_UPLOAD_BYTES)
    with pytest.raises(Exception) as raised:  # refused at the upload, before any handler runs
        client.predict(files=[handle_file(str(big))], api_name="/use_uploads")
    assert "Traceback" not in str(raised.value) and "size" in str(raised.value).lower()
    assert not any(path.stat().st_size > MAX_UPLOAD_BYTES for path in studio_server.out.rglob("*") if path.is_file())  # never stored
