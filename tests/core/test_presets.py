"""The preset registry is data: names resolve to folders, missing presets are clear errors (never a
fallback), `NAME:SUBFOLDER` ids resolve inside a preset, and loading a preset never imports the miniworld
package. The shipped tiny-random folder is exactly what `flexip.testing` builds."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from flexip import presets
from flexip.errors import FlexIPInputError


def test_shipped_presets_are_listed_and_resolve():
    assert {"miniworld", "tiny-random"} <= set(presets.available_presets())
    assert presets.DEFAULT_PRESET == "miniworld"
    folder = presets.get_preset("miniworld").folder
    assert presets.resolve_preset_id("miniworld:image_encoder") == str(folder / "image_encoder")
    assert presets.resolve_preset_id("h94/IP-Adapter:models/image_encoder") == "h94/IP-Adapter:models/image_encoder"
    assert presets.resolve_preset_id("some/folder") == "some/folder"


@pytest.mark.parametrize("name", ["nope", "", "../miniworld", "miniworld/base"])
def test_unknown_preset_is_a_clear_error(name):
    assert not presets.is_preset(name)
    with pytest.raises(FlexIPInputError, match="unknown preset"):
        presets.get_preset(name)


def test_preset_without_manifest_is_not_installed(tmp_path, monkeypatch):
    (tmp_path / "half").mkdir()
    monkeypatch.setattr(presets, "PRESETS_ROOT", tmp_path)
    with pytest.raises(FlexIPInputError, match="not installed completely"):
        presets.get_preset("half")
    with pytest.raises(FlexIPInputError, match="unknown preset 'miniworld'"):  # no fallback to another preset
        presets.get_preset("miniworld")


def test_damaged_manifest_and_missing_subfolder(tmp_path, monkeypatch):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_bytes(b"\xff\xfe not utf-8")
    monkeypatch.setattr(presets, "PRESETS_ROOT", tmp_path)
    with pytest.raises(FlexIPInputError, match="damaged"):
        _ = presets.get_preset("bad").manifest
    with pytest.raises(FlexIPInputError, match="has no 'dino'"):
        presets.resolve_preset_id("bad:dino")


def test_shipped_adapter_configs_name_encoders_inside_their_preset():
    for name in ("miniworld", "tiny-random"):
        config = json.loads((presets.get_preset(name).folder / "adapter" / "config.json").read_text())
        for key in ("image_encoder", "dino_encoder"):
            assert config[key].startswith(f"{name}:"), (name, key, config[key])
            assert presets.resolve_preset_id(config[key])  # resolves to an existing folder (else it raises)


def test_tiny_random_preset_is_what_flexip_testing_builds():
    from flexip.pipelines import FlexIPPipeline
    from flexip.testing import tiny_pipeline

    loaded, built = FlexIPPipeline.from_pretrained("tiny-random"), tiny_pipeline()
    for name in ("unet", "vae", "text_encoder", "image_encoder", "dino_encoder", "adapter"):
        a, b = getattr(loaded, name).state_dict(), getattr(built, name).state_dict()
        assert a.keys() == b.keys(), name
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_allow_pickle_reaches_the_adapter_with_a_preset_base(tmp_path):
    from flexip.pipelines import FlexIPPipeline
    from flexip.testing import tiny_adapter, tiny_base_components

    adapter = tiny_adapter(tiny_base_components()["unet"])
    adapter.save_pretrained(tmp_path)
    torch.save(adapter.state_dict(), tmp_path / "flexip_adapter.bin")
    (tmp_path / "flexip_adapter.safetensors").unlink()
    with pytest.raises(Exception, match="pickle"):
        FlexIPPipeline.from_pretrained("tiny-random", adapter=str(tmp_path))
    pipe = FlexIPPipeline.from_pretrained("tiny-random", adapter=str(tmp_path), allow_pickle=True)
    assert torch.equal(next(iter(pipe.adapter.state_dict().values())), next(iter(adapter.state_dict().values())))


def test_loading_the_miniworld_preset_does_not_import_the_miniworld_package():
    code = (
        "import sys; from flexip import FlexIPPipeline; FlexIPPipeline.from_pretrained('miniworld'); "
        "print(sorted(m for m in sys.modules if m.startswith('flexip_miniworld')))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"
