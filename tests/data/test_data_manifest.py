"""Manifest parsing: structure errors at load time with line numbers; typed records; round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from flexip.data import (
    CaptionSpan,
    ImageRecord,
    MultiViewRecord,
    VideoRecord,
    load_manifest,
    record_to_json,
    write_manifest,
)
from flexip.errors import FlexIPInputError

GOOD = [
    {
        "modality": "image",
        "image": "imgs/0001.png",
        "caption": "a blob in the snow",
        "mask": "masks/0001.png",
        "subject": "id-17",
        "license": "cc0",
    },
    {"modality": "image", "image": "/abs/0002.png"},
    {"modality": "video", "video": "clips/0001.mp4", "caption": "a bot on the beach"},
    {
        "modality": "video",
        "video": "clips/0002.mp4",
        "captions": [{"start": 12, "end": 23, "caption": "b"}, {"start": 0, "end": 11, "caption": "a"}],
    },
    {"modality": "video", "views": ["views/s3/00.png", "views/s3/01.png"], "captions": ["front", "side"]},
]


def test_load_all_record_kinds(tmp_path, write_jsonl):
    path = write_jsonl(tmp_path / "m.jsonl", GOOD[:2] + [""] + GOOD[2:])  # a blank line is ignored
    records = load_manifest(path)
    assert [type(r) for r in records] == [ImageRecord, ImageRecord, VideoRecord, VideoRecord, MultiViewRecord]
    assert [r.modality for r in records] == ["image", "image", "video", "video", "video"]
    assert [r.kind for r in records] == ["image", "image", "video", "video", "multiview"]
    image = records[0]
    assert image.image == tmp_path.resolve() / "imgs/0001.png"
    assert image.mask == tmp_path.resolve() / "masks/0001.png"
    assert (image.caption, image.subject, image.extra) == ("a blob in the snow", "id-17", {"license": "cc0"})
    assert image.source == "m.jsonl:1"
    assert records[1].image == Path("/abs/0002.png") and records[1].caption is None
    assert records[1].sidecar_caption_path() == Path("/abs/0002.txt")
    spans = records[3].captions
    assert spans == (CaptionSpan(0, 11, "a"), CaptionSpan(12, 23, "b"))  # sorted by start
    assert records[3].caption_for_frame(11) == "a" and records[3].caption_for_frame(12) == "b"
    assert records[3].caption_for_frame(24) is None
    assert records[4].caption_for_view(1) == "side"
    assert records[4].source == "m.jsonl:6"


@pytest.mark.parametrize(
    "lines, message",
    [
        ([], "manifest is empty"),
        (["", "   "], "manifest is empty"),
        ([GOOD[0], '{"modality": "image", "image": '], "line 2 is not valid JSON"),
        (['["image"]'], "expected a JSON object"),
        ([{"modality": "audio", "image": "a.png"}], "unknown modality 'audio'"),
        ([{"image": "a.png"}], "unknown modality None"),
        ([{"modality": "image", "caption": "x"}], "missing required field 'image'"),
        ([{"modality": "image", "image": ""}], "non-empty path"),
        ([{"modality": "image", "image": 3}], "non-empty path"),
        ([{"modality": "image", "image": "a.png", "caption": 5}], "'caption' must be a string"),
        ([{"modality": "video", "caption": "x"}], "exactly one of 'video'"),
        ([{"modality": "video", "video": "a.mp4", "views": ["a.png", "b.png"]}], "exactly one of 'video'"),
        ([{"modality": "video", "views": ["a.png"], "caption": "x"}], "at least 2 views"),
        ([{"modality": "video", "views": "a.png"}], "'views' must be a list"),
        ([{"modality": "video", "views": ["a.png", "b.png"], "captions": ["x"]}], "one caption per view"),
        ([{"modality": "video", "video": "a.mp4", "captions": [{"start": 5, "end": 2, "caption": "x"}]}], "start <= end"),
        ([{"modality": "video", "video": "a.mp4", "captions": [{"start": 0, "caption": "x"}]}], "'start', 'end'"),
        (
            [
                {
                    "modality": "video",
                    "video": "a.mp4",
                    "captions": [{"start": 0, "end": 4, "caption": "x"}, {"start": 4, "end": 6, "caption": "y"}],
                }
            ],
            "overlap",
        ),
        ([{"modality": "video", "video": "a.mp4", "captions": []}], "non-empty list"),
    ],
)
def test_structure_errors_name_the_problem(tmp_path, write_jsonl, lines, message):
    path = tmp_path / "bad.jsonl"
    if lines:
        write_jsonl(path, lines)
    else:
        path.write_text("")
    with pytest.raises(FlexIPInputError, match=message):
        load_manifest(path)


def test_error_names_the_line(tmp_path, write_jsonl):
    path = write_jsonl(tmp_path / "m.jsonl", [GOOD[0], GOOD[2], {"modality": "image"}])
    with pytest.raises(FlexIPInputError, match=r"m\.jsonl:3"):
        load_manifest(path)


def test_missing_manifest(tmp_path):
    with pytest.raises(FlexIPInputError, match="manifest not found"):
        load_manifest(tmp_path / "nope.jsonl")


def test_missing_media_files_are_not_load_errors(tmp_path, write_jsonl):
    path = write_jsonl(tmp_path / "m.jsonl", [{"modality": "image", "image": "does/not/exist.png", "caption": "x"}])
    assert len(load_manifest(path)) == 1


def test_write_manifest_round_trip(tmp_path, write_jsonl):
    records = load_manifest(write_jsonl(tmp_path / "m.jsonl", GOOD))
    out = tmp_path / "copy" / "again.jsonl"
    assert write_manifest(records, out) == len(GOOD)
    again = load_manifest(out)
    assert again == [type(r)(**{**r.__dict__, "source": f"again.jsonl:{i + 1}"}) for i, r in enumerate(records)]
    # paths below the manifest folder are written relative to it, others absolute
    entry = record_to_json(records[0], tmp_path)
    assert entry["image"] == "imgs/0001.png" and entry["license"] == "cc0"
    assert record_to_json(records[0], out.parent)["image"] == str((tmp_path / "imgs/0001.png").resolve())
    assert not list(out.parent.glob(".*.tmp"))  # the atomic write left no temporary file


def test_package_imports_stay_light_and_names_resolve():
    import subprocess
    import sys

    code = (
        "import sys, flexip.data.build_manifest, flexip.data as d\n"
        "from flexip.data.images import load_image\n"
        "assert callable(d.build_manifest) and not isinstance(d.build_manifest, type(sys))\n"
        "assert 'torch' not in sys.modules and 'av' not in sys.modules, 'heavy import'\n"
        "assert all(getattr(d, name) is not None for name in d.__all__)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
