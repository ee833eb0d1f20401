"""PyAV reading and writing on real, tiny video files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from flexip.data import VideoReadError, count_frames, read_frames, write_video
from flexip.data.video import default_codec
from flexip.errors import FlexIPInputError


def test_write_count_and_read_frames_in_requested_order(tmp_path, make_video, frame_index):
    path = make_video(tmp_path / "clip.mp4", frames=16)
    assert count_frames(path) == 16
    assert count_frames(path, exact=True) == 16
    frames = read_frames(path, [9, 2, 9, 15])
    assert all(isinstance(f, Image.Image) and f.mode == "RGB" and f.size == (32, 32) for f in frames)
    assert [frame_index(f) for f in frames] == [9, 2, 9, 15]


@pytest.mark.parametrize("codec", sorted({"mpeg4", default_codec()}))
def test_codecs_and_containers_without_frame_count(tmp_path, make_video, frame_index, codec):
    arrays = [np.full((32, 32, 3), 10 + 9 * i, np.uint8) for i in range(12)]
    path = write_video(arrays, tmp_path / f"clip-{codec}.mkv", fps=8, codec=codec)
    assert count_frames(path) == 12  # matroska stores no frame count: counted by decoding
    assert frame_index(read_frames(path, [7])[0]) == 7


def test_full_colour_option(tmp_path):
    if default_codec() != "libx264":
        pytest.skip("yuv444p needs libx264")
    rng = np.random.default_rng(0)
    arrays = [np.kron(rng.integers(0, 255, (4, 4, 3)), np.ones((8, 8, 1))).astype(np.uint8) for _ in range(3)]
    path = write_video(arrays, tmp_path / "sharp.mp4", pix_fmt="yuv444p", crf=0)
    decoded = np.asarray(read_frames(path, [1])[0]).astype(float)
    assert np.abs(decoded - arrays[1]).mean() < 2


def test_reading_past_the_end_or_broken_files_raises(tmp_path, make_video):
    path = make_video(tmp_path / "clip.mp4", frames=12)
    with pytest.raises(VideoReadError, match="ended after 12 frames"):
        read_frames(path, [3, 12])
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x01 not a video " * 50)
    for broken in (empty, garbage, tmp_path / "missing.mp4"):
        with pytest.raises(VideoReadError):
            count_frames(broken)
        with pytest.raises(VideoReadError):
            read_frames(broken, [0])
    assert issubclass(VideoReadError, FlexIPInputError)


def test_write_video_checks_its_input(tmp_path):
    with pytest.raises(FlexIPInputError, match="at least one frame"):
        write_video([], tmp_path / "a.mp4")
    with pytest.raises(FlexIPInputError, match="same size"):
        write_video([np.zeros((32, 32, 3), np.uint8), np.zeros((16, 16, 3), np.uint8)], tmp_path / "a.mp4")
    with pytest.raises(FlexIPInputError, match="even width and height"):
        write_video([np.zeros((31, 32, 3), np.uint8)], tmp_path / "a.mp4")
    with pytest.raises(FlexIPInputError, match="uint8 array"):
        write_video([np.zeros((32, 32), np.float32)], tmp_path / "a.mp4")
    assert list(tmp_path.iterdir()) == []  # nothing half-written
    # PIL frames work too
    path = write_video([Image.new("RGB", (32, 32), (0, 200, 0))] * 3, tmp_path / "pil.mp4")
    assert count_frames(path) == 3
