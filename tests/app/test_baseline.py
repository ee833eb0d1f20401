"""The Compare tab's baseline, in process: the IP-Adapter that ships beside the miniworld preset (found when
`--ip-adapter` is not given), and an explicit diffusers-format checkpoint with its image encoder beside it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from studio_helpers import MINIWORLD, write_ip_adapter

from flexip.app.compare import Baseline
from flexip.app.references import References
from flexip.app.settings import Dial, RenderSettings


@pytest.fixture(scope="module")
def references():
    setup = MINIWORLD.demo()
    return References.of(next(iter(setup.subjects.values())), "demo")


def _sweep(baseline, references):
    torch.set_num_threads(1)
    settings = RenderSettings(prompt="a blob in the snow", dial=Dial.read("gamma", 0.5), steps=3, guidance=3.0, seed=1)
    rendered = baseline.sweep(references, settings, scales=(0.0, 1.0))
    assert list(rendered.captions) == ["scale = 0", "scale = 1"]
    return [np.asarray(image, dtype=float) for image in rendered.images]


def test_the_shipped_baseline_loads_for_the_miniworld_preset(references):
    weights = MINIWORLD.ip_adapter_file
    assert weights is not None and weights.parent.name == "ip_adapter"
    off, on = _sweep(Baseline.load("miniworld", weights, "cpu"), references)
    assert np.abs(on - off).mean() > 1.0  # the trained baseline's scale does something


def test_an_explicit_checkpoint_with_its_encoder_beside_it(tmp_path, references):
    off, on = _sweep(Baseline.load("miniworld", write_ip_adapter(tmp_path / "ip"), "cpu"), references)
    assert np.isfinite(on).all() and np.abs(on - off).max() > 0
