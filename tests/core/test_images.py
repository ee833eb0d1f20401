import io

import numpy as np
import pytest
from PIL import Image

from flexip.data.images import fit_square, load_image
from flexip.errors import FlexIPInputError


def _save(image, path, **kwargs):
    image.save(path, **kwargs)
    return path


@pytest.mark.parametrize("content, message", [(b"", "empty"), (b"this is not an image", "not a readable image")])
def test_empty_and_non_image_files(tmp_path, content, message):
    path = tmp_path / "ref.png"
    path.write_bytes(content)
    with pytest.raises(FlexIPInputError, match=message):
        load_image(path)


def test_truncated_file_is_reported_as_corrupt(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buffer.getvalue()[:200])
    with pytest.raises(FlexIPInputError, match="corrupt|not a readable"):
        load_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(FlexIPInputError, match="not found"):
        load_image(tmp_path / "nope.jpg")


def test_decompression_bomb_guard_reads_only_the_header(tmp_path):
    # a 12000×12000 single-colour PNG is a few hundred KB on disk but 144 MP once decoded
    path = _save(Image.new("L", (12000, 12000)), tmp_path / "bomb.png")
    assert path.stat().st_size < 2_000_000
    with pytest.raises(FlexIPInputError, match="too large"):
        load_image(path)
    with pytest.raises(FlexIPInputError, match="too large"):
        load_image(_save(Image.new("RGB", (50, 50)), tmp_path / "small.png"), max_pixels=1000)


def test_modes_become_rgb_uint8(tmp_path):
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))  # fully transparent red → white background
    assert load_image(rgba).getpixel((0, 0)) == (255, 255, 255)
    assert load_image(Image.new("L", (8, 8), 100)).getpixel((0, 0)) == (100, 100, 100)
    cmyk = load_image(_save(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), tmp_path / "c.jpg"))
    assert cmyk.mode == "RGB" and cmyk.getpixel((0, 0))[0] > 200 and cmyk.getpixel((0, 0))[1] < 60
    sixteen = Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16))
    assert load_image(sixteen).getpixel((0, 0)) == (255, 255, 255)
    palette = Image.new("P", (8, 8), 3)
    assert load_image(palette).mode == "RGB"
    assert load_image(np.zeros((8, 8, 3), dtype=np.float32)).getpixel((0, 0)) == (0, 0, 0)
    with pytest.raises(FlexIPInputError):
        load_image(np.full((8, 8, 3), 2.0))


def test_exif_rotation_is_applied(tmp_path):
    image = Image.new("RGB", (20, 10), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif.tobytes())
    assert load_image(path).size == (10, 20)


def test_fit_square_crop_and_pad():
    wide = Image.new("RGB", (30, 10), (10, 20, 30))
    assert fit_square(wide, "center_crop").size == (10, 10)
    padded = fit_square(wide, "pad")
    assert padded.size == (30, 30) and padded.getpixel((0, 0)) == (255, 255, 255) and padded.getpixel((15, 15)) == (10, 20, 30)
    with pytest.raises(FlexIPInputError):
        fit_square(wide, "stretch")
