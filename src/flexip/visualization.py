"""Labelled image grids: the pictures FlexIP shows instead of tables (γ sweeps, validation, demo)."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def make_grid(
    rows: Sequence[Sequence[Image.Image | None]],
    column_labels: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    cell: int | None = None,
    padding: int = 4,
) -> Image.Image:
    """rows[r][c] images (None = empty cell) → one RGB image with labels above columns and beside rows.

    Small images are scaled up (nearest neighbour) to `cell` pixels so that 16–64 px renders stay legible.
    """
    if not rows or not any(rows):
        raise ValueError("make_grid needs at least one image")
    sizes = [image.size for row in rows for image in row if image is not None]
    cell = cell or max(128, max(max(size) for size in sizes))
    font = _font(max(10, cell // 10))
    label_height = (cell // 6 + padding) if column_labels else 0
    row_label_width = 0
    if row_labels:
        measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        row_label_width = min(4 * cell, max(int(measure.textlength(label, font=font)) for label in row_labels) + 2 * padding)
    columns = max(len(row) for row in rows)
    width = row_label_width + columns * (cell + padding) + padding
    height = label_height + len(rows) * (cell + padding) + padding
    grid = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for c, label in enumerate(column_labels or []):
        draw.text((row_label_width + padding + c * (cell + padding), padding // 2), label, fill=(0, 0, 0), font=font)
    for r, row in enumerate(rows):
        top = label_height + padding + r * (cell + padding)
        if row_labels:
            draw.text((padding, top + cell // 2), row_labels[r], fill=(0, 0, 0), font=font, anchor="lm")
        for c, image in enumerate(row):
            if image is None:
                continue
            resample = Image.NEAREST if max(image.size) < cell else Image.LANCZOS
            grid.paste(image.convert("RGB").resize((cell, cell), resample), (row_label_width + padding + c * (cell + padding), top))
    return grid
