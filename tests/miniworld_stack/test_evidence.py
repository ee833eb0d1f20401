"""Issue 14's measurement end to end on the shipped miniature: FlexIP and an IP-Adapter Plus (written by the
trainer's layout, loaded by diffusers' `load_ip_adapter`) evaluated along their dials and compared."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from flexip.errors import FlexIPInputError
from flexip.presets import get_preset, is_preset

pytestmark = pytest.mark.skipif(not is_preset("miniworld"), reason="miniworld weights not built yet")

VALUES = (0.0, 0.25, 0.5, 0.75, 1.0)


@pytest.fixture(scope="module")
def two_methods(tmp_path_factory):
    from flexip.loading import load_components
    from flexip.models.ip_adapter_plus import IPAdapterPlus
    from flexip_miniworld.evaluate import evaluate

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("evidence")
    preset = get_preset("miniworld").folder
    components = load_components(str(preset / "base"), str(preset / "image_encoder"), str(preset / "dino"))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        baseline = IPAdapterPlus.from_unet(components["unet"], components["image_encoder"].config.hidden_size, num_tokens=16, hidden_dims=64)
        with torch.no_grad():  # an untrained resampler's tokens are tiny; make the baseline act visibly
            baseline.image_proj.norm_out.weight.mul_(4.0)
    baseline.save_pretrained(root / "ip-adapter")
    common = dict(subjects=2, prompts=2, steps=2, log=lambda message: None, dial_values=VALUES)
    flexip = evaluate(preset, root / "data", root / "flexip", **common)
    ip_adapter = evaluate(preset, root / "data", root / "ip", method="ip-adapter", adapter_dir=root / "ip-adapter", **common)
    return root, flexip, ip_adapter


def test_both_methods_start_from_the_same_base_and_noise(two_methods):
    _, flexip, ip_adapter = two_methods
    assert flexip["dial"] == "gamma" and ip_adapter["dial"] == "scale" and ip_adapter["method"] == "ip-adapter"
    # the same base model, prompts and noise: the base renders score identically
    assert flexip["scores"]["base"] == ip_adapter["scores"]["base"]
    # IP-Adapter at scale 0 adds 0 × its attention: the base model
    assert all(math.isclose(ip_adapter["scores"]["scale=0.0"][m], ip_adapter["scores"]["base"][m], abs_tol=1e-5) for m in ("CLIP-T", "DINO-I"))
    assert ip_adapter["scores"]["scale=1.0"]["DINO-I"] != ip_adapter["scores"]["base"]["DINO-I"]
    stats = ip_adapter["dial_statistics"]
    assert stats["values"] == list(VALUES)  # not all of the 11-value sweep asked for: the statistics run over the values measured
    assert math.isclose(stats["DINO-I"]["control_range"], stats["DINO-I"]["curve"][-1] - stats["DINO-I"]["curve"][0])
    assert -1.0 <= stats["CLIP-T"]["rho"] <= 1.0
    assert set(stats["both ends"]) >= {"CLIP-T at dial 0 / base", "DINO id. at dial 0 / chance"}
    assert "IP-Adapter scale 0.5" in (two_methods[0] / "ip" / "evaluation.md").read_text()


def test_compare_puts_the_methods_side_by_side_with_a_frontier_plot(two_methods):
    from flexip_miniworld.cli import miniworld_group

    root, _, _ = two_methods
    plot = root / "frontier.png"
    out = CliRunner().invoke(
        miniworld_group,
        [
            "compare",
            str(root / "flexip"),
            str(root / "ip"),
            "--label",
            "FlexIP",
            "--label",
            "IP-Adapter",
            "--plot",
            str(plot),
            "--out",
            str(root / "t.md"),
        ],
    )
    assert out.exit_code == 0, out.output
    assert "| FlexIP | 1 |" in out.output and "| IP-Adapter | 1 |" in out.output and "mRank" in out.output
    assert (root / "t.md").read_text().strip() == out.output.strip()
    pixels = np.asarray(Image.open(plot).convert("L"))
    assert pixels.std() > 10
    bad = CliRunner().invoke(miniworld_group, ["compare", str(root / "flexip"), "--plot", str(root / "x.jpg")])
    assert isinstance(bad.exception, FlexIPInputError) and "PNG" in str(bad.exception)


def test_the_ip_adapter_method_needs_its_folder(tmp_path):
    from flexip_miniworld.evaluate import evaluate

    with pytest.raises(FlexIPInputError, match="--method ip-adapter needs --adapter"):
        evaluate(get_preset("miniworld").folder, tmp_path / "data", tmp_path / "out", subjects=1, method="ip-adapter", adapter_dir=tmp_path)
    with pytest.raises(FlexIPInputError, match="must include the 5-value sweep"):
        evaluate(get_preset("miniworld").folder, tmp_path / "data", tmp_path / "out", subjects=1, dial_values=(0.0, 1.0))


def test_the_ip_adapter_dial_renders_what_diffusers_renders_from_the_images(two_methods):
    """The dial encodes the references once and reuses the embeddings; the result must equal diffusers' own call with
    `ip_adapter_image=[references]` at that scale."""
    from flexip_miniworld.dials import make_dial

    root, _, _ = two_methods
    dial = make_dial("ip-adapter", get_preset("miniworld").folder, root / "ip-adapter", "cpu")
    references = [Image.open(path).convert("RGB") for path in sorted((root / "data" / "heldout" / "heldout-00000").glob("ref_*.png"))]
    texts = ["a blob in the snow", "a blob on a table"]
    swept = dial.sweep(references, texts, [0.5], steps=2, guidance=3.0, seed=4)[0.5]
    dial.pipe.set_ip_adapter_scale(0.5)
    own = dial.pipe(texts, ip_adapter_image=[references], num_inference_steps=2, guidance_scale=3.0, generator=torch.Generator().manual_seed(4))
    for a, b in zip(swept, own.images):
        assert np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).max() <= 1


def test_a_killed_evaluation_resumes_from_its_last_finished_identity(two_methods, monkeypatch):
    import flexip_miniworld.evaluate as evaluation

    root, flexip, _ = two_methods
    common = dict(subjects=2, prompts=2, steps=2, dial_values=VALUES)
    out = root / "resumed"

    def killed(message):
        if message.startswith("[evaluate] 1/2"):
            raise KeyboardInterrupt  # the first identity is finished and saved, the second never starts

    with pytest.raises(KeyboardInterrupt):
        evaluation.evaluate(get_preset("miniworld").folder, root / "data", out, log=killed, **common)
    assert not (out / "evaluation.json").exists() and len(list((out / "identities").rglob("00.pt"))) == 1
    rendered = []
    original = evaluation.score_identity
    monkeypatch.setattr(evaluation, "score_identity", lambda *a, **k: rendered.append(a[2]["subject"]) or original(*a, **k))
    with pytest.raises(KeyboardInterrupt):  # other settings in the same folder: nothing of the first run is reused
        evaluation.evaluate(get_preset("miniworld").folder, root / "data", out, log=killed, seed=1, **common)
    assert rendered == ["heldout-00000"] and len(list((out / "identities").iterdir())) == 2
    resumed = evaluation.evaluate(get_preset("miniworld").folder, root / "data", out, log=lambda m: None, **common)
    assert rendered == ["heldout-00000", "heldout-00001"]  # the seed-0 run's identity 0 came from its record
    assert resumed["scores"] == flexip["scores"]  # the same numbers as the run that was never killed
    assert not (out / "identities").exists()  # removed once evaluation.json is written
