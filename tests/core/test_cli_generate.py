import numpy as np
from click.testing import CliRunner
from PIL import Image

from flexip.cli.main import main


def _reference(tmp_path):
    path = tmp_path / "ref.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 32, 3), dtype=np.uint8)).save(path)
    return path


def test_generate_sweep_writes_images_and_grid(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "generate",
            "--reference",
            str(_reference(tmp_path)),
            "--prompt",
            "a dog in the snow",
            "--gamma",
            "0",
            "0.5,1",
            "--steps",
            "2",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["00_a-dog-in-the-snow_g0.00_0.png", "00_a-dog-in-the-snow_g0.50_0.png", "00_a-dog-in-the-snow_g1.00_0.png", "grid.png"]
    grid = Image.open(out / "grid.png")
    assert grid.width > 3 * grid.height  # reference + 3 columns in one row
    pixels = [np.asarray(Image.open(out / name), dtype=float) for name in names[:3]]
    assert np.abs(pixels[0] - pixels[2]).max() > 0  # γ changes the picture


def test_variadic_options_and_bad_input_give_one_line_and_exit_2(tmp_path):
    runner = CliRunner()
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    cases = [
        (["generate", "--reference", str(bad), "--prompt", "x"], "empty"),
        (["generate", "--reference", str(tmp_path / "missing.png"), "--prompt", "x"], "not found"),
        (["generate", "--reference", str(_reference(tmp_path)), "--prompt", "x", "--gamma", "0.5", "1.5", "--steps", "1"], "[0, 1]"),
        (["generate", "--reference", str(_reference(tmp_path)), "--prompt", "x", "--gamma", "nan", "--steps", "1"], "[0, 1]"),
        (["generate", "--prompt", "x"], "--reference"),
        (["generate", "--reference", str(_reference(tmp_path)), "--prompt", "x", "--adapter", str(tmp_path / "none")], "adapter not found"),
    ]
    for args, message in cases:
        result = runner.invoke(main, args)
        assert result.exit_code == 2, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.output
        assert "Traceback" not in result.output


def test_help_everywhere():
    runner = CliRunner()
    for args in (["--help"], ["generate", "--help"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 0 and "Usage:" in result.output
    assert "--gamma" in runner.invoke(main, ["generate", "--help"]).output


def test_demo_writes_a_grid(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--steps", "1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    grid = np.asarray(Image.open(tmp_path / "demo_grid.png"), dtype=float)
    assert grid.std() > 10 and "grid:" in result.output


def test_generate_accepts_schedule_and_per_block_gamma(tmp_path):
    runner = CliRunner()
    for gamma, stem in (("1.0:0.2", "1-0-0-2"), ("down=0.2,up=0.9", "down-0-2-up-0-9")):
        out = tmp_path / stem
        result = runner.invoke(
            main,
            [
                "generate",
                "--reference",
                str(_reference(tmp_path)),
                "--prompt",
                "a dog",
                "--gamma",
                gamma,
                "--steps",
                "1",
                "--out",
                str(out),
            ],
        )
        assert result.exit_code == 0, result.output
        assert [p.name for p in out.iterdir()] == [f"00_a-dog_{stem}_0.png"]
    result = runner.invoke(main, ["generate", "--reference", str(_reference(tmp_path)), "--prompt", "a dog", "--gamma", "0.5", "1:0", "--steps", "1"])
    assert result.exit_code == 2 and "plain numbers" in result.output
