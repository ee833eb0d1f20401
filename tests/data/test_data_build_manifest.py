"""`flexip data build-manifest`: folder conventions → a manifest that loads and samples."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from flexip.cli.data import data_group
from flexip.data import FlexIPDataset, build_manifest, load_manifest
from flexip.errors import FlexIPInputError


@pytest.fixture
def tree(tmp_path, make_image, make_video):
    root = tmp_path / "root"
    make_image(root / "images/cat.png", caption="a cat on a sofa")
    make_image(root / "images/dog1/a.JPG", caption="a dog in the snow")
    make_image(root / "images/uncaptioned.png")
    make_image(root / "images/.hidden/x.png", caption="hidden")
    Image.fromarray(np.full((32, 32), 255, np.uint8)).save(root / "images/dog1/a_mask_unused.bmp")  # no caption
    (root / "masks/dog1").mkdir(parents=True)
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 8:24] = 255
    Image.fromarray(mask).save(root / "masks/dog1/a.png")
    make_video(root / "videos/walk.mp4", frames=12)
    (root / "videos/walk.txt").write_text("a bot on the beach\n")
    make_video(root / "videos/s9/spin.mkv", frames=12)
    (root / "videos/s9/spin.captions.json").write_text(
        json.dumps([{"start": 0, "end": 5, "caption": "a red bot"}, {"start": 6, "end": 11, "caption": "a blue bot"}])
    )
    make_video(root / "videos/nocaption.mp4", frames=12)
    for view in range(3):
        make_image(root / f"multiview/s1/{view:02d}.png")
        make_image(root / f"multiview/s2/{view:02d}.png", caption=f"view {view}")
    (root / "multiview/s1/caption.txt").write_text("a plush toy")
    make_image(root / "multiview/lonely/00.png", caption="alone")
    make_image(root / "multiview/s4/00.png")
    make_image(root / "multiview/s4/01.png")
    return root


def test_build_manifest_finds_everything_and_loads(tree, tmp_path):
    out = tmp_path / "out" / "train.jsonl"
    report = build_manifest(tree, out)
    assert dict(report.counts) == {"image": 2, "video": 2, "multiview": 2}
    assert dict(report.left_out) == {
        "image_without_caption": 2,
        "video_without_caption": 1,
        "multiview_too_few_views": 1,
        "multiview_without_caption": 1,
    }
    records = load_manifest(out)
    assert len(records) == 6
    by_name = {getattr(r, "image", getattr(r, "video", None)).name if r.kind != "multiview" else r.subject: r for r in records}
    assert by_name["cat.png"].caption == "a cat on a sofa" and by_name["cat.png"].subject is None
    dog = by_name["a.JPG"]
    assert dog.subject == "dog1" and dog.mask == (tree / "masks/dog1/a.png").resolve()
    assert by_name["walk.mp4"].caption == "a bot on the beach"
    assert [s.caption for s in by_name["spin.mkv"].captions] == ["a red bot", "a blue bot"]
    assert by_name["spin.mkv"].subject == "s9"
    assert by_name["s1"].caption == "a plush toy" and len(by_name["s1"].views) == 3
    assert by_name["s2"].captions == ("view 0", "view 1", "view 2")
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["image"] == str((tree / "images/cat.png").resolve())  # not below the manifest: absolute
    build_manifest(tree, tree / "train.jsonl")
    first = json.loads((tree / "train.jsonl").read_text().splitlines()[0])
    assert first["image"] == "images/cat.png"  # below the manifest's folder: relative
    dataset = FlexIPDataset(records, min_gap=1, max_gap=4)
    for index in range(len(dataset)):
        sample = dataset[index]
        assert sample["skipped"] == {} and sample["caption"]


def test_default_output_and_cli(tree):
    result = CliRunner().invoke(data_group, ["build-manifest", str(tree)])
    assert result.exit_code == 0, result.output
    assert "wrote 6 records" in result.output and "images: 2, videos: 2, multi-view captures: 2" in result.output
    assert "left out (image_without_caption): 2" in result.output
    assert len(load_manifest(tree / "manifest.jsonl")) == 6


def test_build_manifest_errors(tmp_path):
    with pytest.raises(FlexIPInputError, match="not a folder"):
        build_manifest(tmp_path / "nope")
    (tmp_path / "stuff").mkdir()
    with pytest.raises(FlexIPInputError, match="none of the folders"):
        build_manifest(tmp_path / "stuff")
    (tmp_path / "stuff/images").mkdir()
    (tmp_path / "stuff/images/x.png").write_bytes(b"")
    with pytest.raises(FlexIPInputError, match="no usable records"):
        build_manifest(tmp_path / "stuff")
    assert not (tmp_path / "stuff/manifest.jsonl").exists()
    (tmp_path / "stuff/videos").mkdir()
    (tmp_path / "stuff/videos/v.mp4").write_bytes(b"")
    (tmp_path / "stuff/videos/v.captions.json").write_text('[{"start": 3, "end": 1, "caption": "x"}]')
    with pytest.raises(FlexIPInputError, match="start <= end"):
        build_manifest(tmp_path / "stuff")


def test_cli_reports_user_errors_with_exit_code_2(tmp_path):
    from flexip.cli.main import main

    assert "data" in main.commands
    result = CliRunner().invoke(main, ["data", "build-manifest", str(tmp_path)])
    assert result.exit_code == 2
    assert "error:" in result.output and "none of the folders" in result.output
