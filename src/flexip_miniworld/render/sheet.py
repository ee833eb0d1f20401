"""Contact sheets for previews: `contact_sheet` (a grid of renders, identities × scenes) and `default_sheet_columns`."""

from __future__ import annotations

from PIL import Image, ImageDraw

from flexip_miniworld.render.frames import SUPERSAMPLE, render
from flexip_miniworld.scene import BACKGROUNDS, STYLES, Pose, SceneText

#: The sheet's margins: the identity labels' width and the column labels' height, pixels.
LABEL_WIDTH, HEADER = 96, 16
#: Columns past the backgrounds in the default sheet: a label and the scene it shows.
SHEET_EXTRAS: tuple[tuple[str, SceneText], ...] = (
    ("small left", SceneText(size="small", placement="left", background="grass")),
    ("big right", SceneText(size="big", placement="right")),
    ("red", SceneText(colour="red")),
    ("striped", SceneText(pattern="striped")),
    ("boxy", SceneText(shape="boxy")),
    ("spiky", SceneText(shape="spiky")),
)


def contact_sheet(identities, columns: list[tuple[str, SceneText]], size: int = 32, zoom: int = 4, supersample: int = SUPERSAMPLE) -> Image.Image:
    """A grid of renders: one row per identity, one column per (label, scene); each render is shown at
    its true resolution, enlarged `zoom`× with nearest-neighbour so pixels stay visible."""
    from PIL import ImageFont

    font = ImageFont.load_default()
    cell = size * zoom
    sheet = Image.new("RGB", (LABEL_WIDTH + cell * len(columns), HEADER + cell * len(identities)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for c, (label, _) in enumerate(columns):
        draw.text((LABEL_WIDTH + c * cell + 3, 2), label, fill=(0, 0, 0), font=font)
    for r, identity in enumerate(identities):
        y = HEADER + r * cell
        draw.text((4, y + cell // 2 - 12), identity.name, fill=(0, 0, 0), font=font)
        draw.text((4, y + cell // 2 + 2), identity.noun, fill=(80, 80, 80), font=font)
        for c, (_, text) in enumerate(columns):
            tile = Image.fromarray(render(identity, text, Pose(), size, supersample))
            sheet.paste(tile.resize((cell, cell), Image.Resampling.NEAREST), (LABEL_WIDTH + c * cell, y))
    return sheet


def default_sheet_columns() -> list[tuple[str, SceneText]]:
    """Columns of the preview sheet: the reference look, every background, layout, properties, styles."""
    columns = [("plain", SceneText())]
    columns += [(key, SceneText(background=key)) for key in BACKGROUNDS]
    columns += list(SHEET_EXTRAS)
    columns += [(style, SceneText(style=style)) for style in STYLES]
    return columns
