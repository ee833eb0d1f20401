"""Reading and writing video clips with PyAV (which bundles FFmpeg).

Frame indices are 0-based positions in *decoded* order, the same numbering the manifest's caption
spans use. Every decoded frame passes through `load_image`, so video frames and still images reach
the trainer as the same thing: upright 8-bit RGB PIL images.

Decoding is sequential from the start of the clip up to the last frame asked for (exact and simple;
fine for the short clips used for training — cut long videos into clips first).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import av
import numpy as np
from PIL import Image

from flexip.atomic import atomic_path
from flexip.data.images import load_image
from flexip.errors import FlexIPInputError

FrameInput = Image.Image | np.ndarray

#: Decoder errors PyAV raises for broken input (FFmpegError covers InvalidDataError and friends).
_DECODE_ERRORS = (av.FFmpegError, OSError, EOFError, ValueError)


class VideoReadError(FlexIPInputError):
    """A video file is missing, empty, corrupt, has no video stream, or ends before a requested frame."""


def _open(path: Path):
    if not path.is_file():
        raise VideoReadError(f"video not found: {path}")
    if path.stat().st_size == 0:
        raise VideoReadError(f"video file is empty (0 bytes): {path}")
    try:
        container = av.open(str(path), mode="r")
    except _DECODE_ERRORS as error:
        raise VideoReadError(f"not a readable video file: {path} ({error})") from None
    if not container.streams.video:
        container.close()
        raise VideoReadError(f"file has no video stream: {path}")
    return container


def count_frames(path: str | os.PathLike, exact: bool = False) -> int:
    """Number of frames in the first video stream of `path`.

    Uses the container's frame count when it records one (mp4, mov) and decodes the whole clip
    otherwise (webm, mkv), or always when `exact=True`. Raises `VideoReadError` for unreadable files.
    """
    path = Path(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        if stream.frames > 0 and not exact:
            return int(stream.frames)
        count = 0
        try:
            for _ in container.decode(stream):
                count += 1
        except _DECODE_ERRORS as error:
            raise VideoReadError(f"video is corrupt: {path} ({error})") from None
        return count
    finally:
        container.close()


def read_frames(path: str | os.PathLike, indices: Sequence[int]) -> list[Image.Image]:
    """Decode the frames at `indices` (0-based, any order, repeats allowed) as RGB PIL images, in the
    order asked. Raises `VideoReadError` when the file is unreadable or ends before a requested frame."""
    path = Path(path)
    wanted = [int(i) for i in indices]
    if not wanted:
        return []
    if min(wanted) < 0:
        raise FlexIPInputError(f"frame indices must be >= 0, got {min(wanted)}")
    needed = set(wanted)
    last = max(wanted)
    found: dict[int, Image.Image] = {}
    container = _open(path)
    try:
        stream = container.streams.video[0]
        position = -1
        try:
            for position, frame in enumerate(container.decode(stream)):
                if position in needed:
                    found[position] = load_image(frame.to_image())
                if position >= last:
                    break
        except _DECODE_ERRORS as error:
            raise VideoReadError(f"video is corrupt at frame {position + 1}: {path} ({error})") from None
    finally:
        container.close()
    if len(found) < len(needed):
        raise VideoReadError(f"video {path} ended after {position + 1} frames; frame {last} was requested")
    return [found[i] for i in wanted]


def default_codec() -> str:
    """libx264 when this FFmpeg build has it, else the always-present mpeg4."""
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def write_video(
    frames: Iterable[FrameInput],
    path: str | os.PathLike,
    fps: int = 8,
    *,
    codec: str | None = None,
    pix_fmt: str = "yuv420p",
    crf: int = 17,
    qp: int | None = None,
) -> Path:
    """Encode RGB frames (PIL images or uint8 HxWx3 arrays, all the same size) into a video file.

    The container follows the extension (.mp4, .mkv, .mov, ...). `codec` defaults to `default_codec()`.
    `pix_fmt="yuv420p"` plays everywhere but halves colour resolution; `"yuv444p"` (libx264 only) keeps
    full colour, which matters for tiny frames. `crf` is libx264's quality (0 = lossless luma, 17 ≈
    visually lossless); mpeg4 gets a generous fixed bit rate instead. Width and height must be even for
    yuv420p. The file is written to a temporary name and moved into place, so an interrupted write
    never leaves a truncated clip. Returns the path.

    `qp` asks for a constant quantizer instead (libx264 QP, mpeg4 qscale) with one encoder thread: the
    same frames then always give the same bytes (CRF's rate control depends on encoder history).
    """
    out = Path(path)
    arrays = [_frame_array(frame, position) for position, frame in enumerate(frames)]
    if not arrays:
        raise FlexIPInputError("write_video needs at least one frame")
    height, width = arrays[0].shape[:2]
    for position, array in enumerate(arrays):
        if array.shape[:2] != (height, width):
            raise FlexIPInputError(
                f"all frames must have the same size: frame 0 is {width}×{height}, frame {position} is {array.shape[1]}×{array.shape[0]}"
            )
    if pix_fmt == "yuv420p" and (width % 2 or height % 2):
        raise FlexIPInputError(f"yuv420p video needs even width and height, got {width}×{height}")
    if fps <= 0:
        raise FlexIPInputError(f"fps must be positive, got {fps}")
    codec = codec or default_codec()
    if codec not in av.codecs_available:
        raise FlexIPInputError(f"video codec {codec!r} is not available in this PyAV/FFmpeg build")

    with atomic_path(out) as temporary:
        if qp is not None:
            options = {"qp": str(qp), "threads": "1"} if codec == "libx264" else {"qscale": str(min(31, max(1, qp)))}
        else:
            options = {"crf": str(crf)} if codec == "libx264" else {}
        with av.open(str(temporary), mode="w", format=_format_for(out)) as container:
            stream = container.add_stream(codec, rate=int(fps), options=options)
            stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
            if qp is not None:
                stream.codec_context.thread_count = 1
                if codec != "libx264":
                    stream.codec_context.qscale = min(31, max(1, qp))
            elif codec != "libx264":
                stream.bit_rate = max(400_000, width * height * int(fps) * 4)
            for array in arrays:
                for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return out


def _format_for(path: Path) -> str | None:
    """FFmpeg muxer for an extension (None: let FFmpeg guess from the name)."""
    return {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}.get(path.suffix.lower())


def _frame_array(frame: FrameInput, position: int) -> np.ndarray:
    if isinstance(frame, Image.Image):
        return np.asarray(frame.convert("RGB"), dtype=np.uint8)
    array = np.asarray(frame)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] != 3:
        raise FlexIPInputError(f"frame {position}: expected a PIL image or a uint8 array of shape HxWx3, got {array.dtype} {array.shape}")
    return np.ascontiguousarray(array)
