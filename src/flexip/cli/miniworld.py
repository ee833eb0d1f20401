"""`flexip miniworld`: the procedural world the miniature stack is trained and evaluated on.

    flexip miniworld make-data data/miniworld --images 20000 --videos 1000 --multiview 500
    flexip miniworld preview docs/img/miniworld_world.png --rows 12
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import click

from flexip.errors import FlexIPInputError


@click.group("miniworld")
def miniworld_group() -> None:
    """The miniworld: procedural subjects and captioned scenes (images, videos, multi-view captures)."""


@miniworld_group.command("make-data")
@click.argument("out_dir")
@click.option("--images", default=20000, show_default=True, help="Captioned training images.")
@click.option("--videos", default=1000, show_default=True, help="Training video clips (mp4).")
@click.option("--multiview", default=500, show_default=True, help="Training multi-view captures.")
@click.option("--size", default=32, show_default=True, help="Image side in pixels (even).")
@click.option("--seed", default=0, show_default=True, help="World seed: identities, scenes, everything.")
@click.option("--identities", default=500, show_default=True, help="Training identities.")
@click.option("--heldout", default=60, show_default=True, help="Held-out identities (never in the manifest).")
@click.option("--frames", default=24, show_default=True, help="Frames per video clip.")
@click.option("--views", default=8, show_default=True, help="Views per multi-view capture.")
@click.option("--fps", default=8, show_default=True, help="Frame rate written into the mp4 files.")
@click.option("--codec", default="libx264", show_default=True, help="Video codec: libx264 or mpeg4.")
@click.option("--supersample", default=4, show_default=True, help="Render at this many times the size, then LANCZOS.")
@click.option("--workers", default=None, type=int, help="Worker processes [default: up to 2 CPU cores].")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def make_data(out_dir, images, videos, multiview, size, seed, identities, heldout, frames, views, fps, codec, supersample, workers, quiet):
    """Write a miniworld dataset to OUT_DIR: manifest.jsonl (training rows), heldout.jsonl (held-out
    identities with references and test prompts), pairs.jsonl (calibration pairs), identities.jsonl
    and world.json. Re-running completes an interrupted run; higher counts extend the dataset."""
    from flexip.miniworld.dataset import WorldConfig, make_dataset

    config = WorldConfig(
        seed=seed,
        size=size,
        supersample=supersample,
        identities=identities,
        heldout=heldout,
        frames=frames,
        views=views,
        fps=fps,
        codec=codec,
    )
    if workers is None:
        workers = max(1, min(2, os.cpu_count() or 1))
    start = time.perf_counter()
    summary = make_dataset(out_dir, config, images=images, videos=videos, multiview=multiview, workers=workers, progress=not quiet)
    seconds = time.perf_counter() - start
    done = summary["rendered_now"]
    click.echo(
        f"wrote {Path(out_dir) / 'manifest.jsonl'}: {images} images, {videos} videos, {multiview} multi-view captures; "
        f"{heldout} held-out identities in heldout.jsonl; rendered {done['frames']} frames in {seconds:.1f} s"
    )
    click.echo(json.dumps(summary["counts"]))


@miniworld_group.command("preview")
@click.argument("out_png")
@click.option("--rows", default=12, show_default=True, help="Identities to show (one row each).")
@click.option("--split", default="train", show_default=True, help="train or heldout.")
@click.option("--size", default=32, show_default=True, help="Render size in pixels.")
@click.option("--zoom", default=4, show_default=True, help="Nearest-neighbour enlargement of each render.")
@click.option("--seed", default=0, show_default=True, help="World seed.")
def preview(out_png, rows, split, size, zoom, seed):
    """Write a contact sheet OUT_PNG: identities × scenes (every background, layout, property, style)."""
    from flexip.miniworld.identity import make_identity
    from flexip.miniworld.render import contact_sheet, default_sheet_columns

    if not 1 <= rows <= 200:
        raise FlexIPInputError(f"--rows must be in [1, 200], got {rows}")
    if not 8 <= size <= 256:
        raise FlexIPInputError(f"--size must be in [8, 256], got {size}")
    if not 1 <= zoom <= 16:
        raise FlexIPInputError(f"--zoom must be in [1, 16], got {zoom}")
    if not str(out_png).lower().endswith(".png"):
        raise FlexIPInputError(f"the contact sheet is a PNG file; OUT_PNG must end in .png, got {out_png}")
    identities = [make_identity(split, i, seed) for i in range(rows)]
    sheet = contact_sheet(identities, default_sheet_columns(), size=size, zoom=zoom)
    path = Path(out_png)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    sheet.save(tmp, format="PNG", optimize=True)
    os.replace(tmp, path)
    click.echo(f"wrote {path} ({sheet.width}×{sheet.height})")
