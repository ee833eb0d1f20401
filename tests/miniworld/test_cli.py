from click.testing import CliRunner
from PIL import Image

from flexip.errors import FlexIPInputError
from flexip_miniworld.cli import miniworld_group
from flexip_miniworld.dataset import load_jsonl


def test_make_data_and_preview(tmp_path):
    runner = CliRunner()
    out = tmp_path / "world"
    result = runner.invoke(
        miniworld_group,
        [
            "make-data",
            str(out),
            "--images",
            "5",
            "--videos",
            "1",
            "--multiview",
            "1",
            "--identities",
            "6",
            "--heldout",
            "2",
            "--frames",
            "4",
            "--views",
            "2",
            "--quiet",
            "--seed",
            "9",
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(load_jsonl(out / "manifest.jsonl")) == 7
    assert len(load_jsonl(out / "heldout.jsonl")) == 2

    sheet = tmp_path / "sheet.png"
    result = runner.invoke(miniworld_group, ["preview", str(sheet), "--rows", "2", "--zoom", "1"])
    assert result.exit_code == 0, result.output
    assert Image.open(sheet).height == 16 + 2 * 32


def test_bad_input_raises_flexip_input_error(tmp_path):
    runner = CliRunner()
    result = runner.invoke(miniworld_group, ["make-data", str(tmp_path), "--size", "31", "--images", "1"])
    assert isinstance(result.exception, FlexIPInputError)
    result = runner.invoke(miniworld_group, ["preview", str(tmp_path / "sheet.jpg")])
    assert isinstance(result.exception, FlexIPInputError)
