"""`flexip data ...`: training data tools (thin shells over `flexip.data`)."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("data")
def data_group() -> None:
    """Prepare training data (manifests of images, videos and multi-view captures)."""


@data_group.command("build-manifest")
@click.argument("root", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Manifest to write (JSONL). Default: ROOT/manifest.jsonl.",
)
def build_manifest_command(root: Path, out: Path | None) -> None:
    """Scan ROOT's images/, videos/, masks/ and multiview/ folders and write a JSONL manifest.

    Captions come from sidecar .txt files (see docs/data.md for the folder conventions). Entries
    without a caption are left out and counted; media files are not opened.
    """
    from flexip.data.build_manifest import build_manifest

    report = build_manifest(root, out)
    click.echo(report.summary())
