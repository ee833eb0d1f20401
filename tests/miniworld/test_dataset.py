import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flexip.errors import FlexIPInputError
from flexip_miniworld.dataset import WorldConfig, load_jsonl, make_dataset, read_video, write_video
from flexip_miniworld.scene import parse_caption

CONFIG = WorldConfig(seed=3, identities=12, heldout=3, frames=10, views=3)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    summary = make_dataset(root, CONFIG, images=30, videos=4, multiview=2, workers=1, progress=False)
    return root, summary


def _pixels(path):
    return np.asarray(Image.open(path).convert("RGB"))


def test_manifest_paths_exist_and_rows_are_well_formed(dataset):
    root, _ = dataset
    rows = load_jsonl(root / "manifest.jsonl")
    assert [r["modality"] for r in rows].count("image") == 30
    assert sum("video" in r for r in rows) == 4 and sum("views" in r for r in rows) == 2
    for row in rows:
        assert row["subject"].startswith("train-")
        if row["modality"] == "image":
            assert set(row) == {"modality", "image", "caption", "subject"}
            assert _pixels(root / row["image"]).shape == (32, 32, 3)
            noun, _ = parse_caption(row["caption"])
        elif "video" in row:
            frames = read_video(root / row["video"])
            assert len(frames) == CONFIG.frames and frames[0].shape == (32, 32, 3)
            spans = row.get("captions") or [{"start": 0, "end": CONFIG.frames - 1, "caption": row["caption"]}]
            assert spans[0]["start"] == 0 and spans[-1]["end"] == CONFIG.frames - 1
            nouns = {parse_caption(span["caption"])[0] for span in spans}
            assert len(nouns) == 1
        else:
            assert len(row["views"]) == CONFIG.views
            assert all((root / view).is_file() for view in row["views"])
            parse_caption(row["caption"])


def test_heldout_and_pairs(dataset):
    root, _ = dataset
    heldout = load_jsonl(root / "heldout.jsonl")
    assert [h["subject"] for h in heldout] == ["heldout-00000", "heldout-00001", "heldout-00002"]
    train_subjects = {r["subject"] for r in load_jsonl(root / "manifest.jsonl")}
    for entry in heldout:
        assert entry["subject"] not in train_subjects
        assert len(entry["prompts"]) >= 8 and len(entry["targets"]) == len(entry["prompts"])
        assert all(parse_caption(p)[0] == entry["noun"] for p in entry["prompts"])
        for path in entry["references"] + entry["targets"]:
            assert (root / path).is_file()
    pairs = load_jsonl(root / "pairs.jsonl")
    kinds = {p["kind"] for p in pairs}
    assert kinds == {"real-vs-real", "real-vs-other"}
    for pair in pairs:
        assert (root / pair["a"]).is_file() and (root / pair["b"]).is_file() and pair["a"] != pair["b"]
        assert (pair["subject_a"] == pair["subject_b"]) == (pair["kind"] == "real-vs-real")
    world = json.loads((root / "world.json").read_text())
    assert world["config"]["seed"] == 3
    assert len(load_jsonl(root / "identities.jsonl")) == 15


def test_rerun_is_idempotent_and_settings_must_match(dataset):
    root, _ = dataset
    before = (root / "manifest.jsonl").read_bytes()
    (root / "images" / "000000.png").unlink()
    (root / "images" / "000001.png.tmp-123").write_bytes(b"partial")
    summary = make_dataset(root, CONFIG, images=30, videos=4, multiview=2, progress=False)
    assert summary["rendered_now"]["jobs"] == 1  # only the missing file
    assert (root / "manifest.jsonl").read_bytes() == before
    assert not (root / "images" / "000001.png.tmp-123").exists()
    with pytest.raises(FlexIPInputError, match="other settings"):
        make_dataset(root, WorldConfig(seed=4, identities=12, heldout=3, frames=10, views=3), images=1, progress=False)


def test_same_seed_same_files_across_processes(dataset, tmp_path):
    """A second run (two worker processes) writes pixel-identical images and video frames."""
    root, _ = dataset
    make_dataset(tmp_path, CONFIG, images=70, videos=4, multiview=2, workers=2, progress=False)
    rows = load_jsonl(tmp_path / "manifest.jsonl")
    reference = load_jsonl(root / "manifest.jsonl")
    assert rows[:30] == reference[:30] and rows[70:] == reference[30:]
    for row in rows[:30]:
        assert np.array_equal(_pixels(tmp_path / row["image"]), _pixels(root / row["image"]))
    for row in rows[70:74]:
        for a, b in zip(read_video(tmp_path / row["video"]), read_video(root / row["video"])):
            assert np.array_equal(a, b)
    assert (tmp_path / "heldout.jsonl").read_bytes() == (root / "heldout.jsonl").read_bytes()


@pytest.mark.parametrize("codec", ["libx264", "mpeg4"])
def test_video_round_trip(tmp_path, codec):
    rng = np.random.default_rng(0)
    frames = [np.full((32, 32, 3), 40 * i, np.uint8) + rng.integers(0, 8, (32, 32, 3), dtype=np.uint8) for i in range(6)]
    write_video(tmp_path / "clip.mp4", frames, codec=codec)
    decoded = read_video(tmp_path / "clip.mp4")
    assert len(decoded) == 6
    assert max(np.abs(a.astype(int) - b).mean() for a, b in zip(frames, decoded)) < 6
    with pytest.raises(FlexIPInputError):
        write_video(tmp_path / "odd.mp4", [np.zeros((31, 32, 3), np.uint8)] * 2)
    assert [p.name for p in Path(tmp_path).iterdir()] == ["clip.mp4"]


@pytest.mark.parametrize("kwargs", [{"size": 33}, {"size": 8}, {"identities": 0}, {"frames": 1}, {"codec": "vp9"}, {"heldout": -1}])
def test_bad_config_raises(kwargs):
    with pytest.raises(FlexIPInputError):
        WorldConfig(**kwargs)


def test_bad_counts_raise(tmp_path):
    with pytest.raises(FlexIPInputError):
        make_dataset(tmp_path, CONFIG, images=-1, progress=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(FlexIPInputError):
        make_dataset(tmp_path / "file", CONFIG, images=1, progress=False)
