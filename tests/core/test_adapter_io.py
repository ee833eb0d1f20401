import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from flexip.errors import CheckpointError
from flexip.models import FlexIPAdapter, inject_adapter
from flexip.models.adapter import WEIGHTS_NAME
from flexip.testing import tiny_adapter, tiny_base_components


def test_save_load_round_trip_is_exact(unet_and_adapter, tmp_path):
    _, adapter = unet_and_adapter
    adapter.save_pretrained(tmp_path / "adapter")
    assert sorted(p.name for p in (tmp_path / "adapter").iterdir()) == ["config.json", WEIGHTS_NAME]
    loaded = FlexIPAdapter.from_pretrained(tmp_path / "adapter")
    public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}
    assert public(loaded.config) == public(adapter.config)
    original = adapter.state_dict()
    assert loaded.state_dict().keys() == original.keys()
    assert all(torch.equal(loaded.state_dict()[k], original[k]) for k in original)


def test_weights_are_keyed_by_layer_name_and_self_describing(unet_and_adapter, tmp_path):
    unet, adapter = unet_and_adapter
    adapter.save_pretrained(tmp_path)
    keys = load_file(str(tmp_path / WEIGHTS_NAME)).keys()
    assert "layers.up_blocks.1.attentions.1.transformer_blocks.0.attn2.to_v_pers.weight" in keys
    for name in adapter.target_layers:
        assert unet.get_submodule(name).is_cross_attention
        assert f"layers.{name}.to_k_pres.weight" in keys
    from safetensors import safe_open

    with safe_open(str(tmp_path / WEIGHTS_NAME), "pt") as handle:
        assert json.loads(handle.metadata()["flexip_config"])["cross_attention_dim"] == 32


def test_fresh_adapter_copies_text_kv(unet_and_adapter):
    unet, _ = unet_and_adapter
    adapter = tiny_adapter(unet, randomize_outputs=False)
    name = "mid_block.attentions.0.transformer_blocks.0.attn2"
    assert torch.equal(adapter.layer(name).to_k_pers.weight, unet.get_submodule(name).to_k.weight)
    text = torch.randn(1, 77, 32)
    assert torch.equal(adapter.personalization_tokens(text, torch.randn(1, 24)), text)  # zero-init: identity


def _corrupt(tmp_path, adapter, edit):
    adapter.save_pretrained(tmp_path)
    tensors = load_file(str(tmp_path / WEIGHTS_NAME))
    edit(tensors)
    save_file(tensors, str(tmp_path / WEIGHTS_NAME))
    return tmp_path


def test_missing_key_is_reported(unet_and_adapter, tmp_path):
    _, adapter = unet_and_adapter
    path = _corrupt(tmp_path, adapter, lambda t: t.pop("preservation.queries"))
    with pytest.raises(CheckpointError, match="1 missing keys.*preservation.queries"):
        FlexIPAdapter.from_pretrained(path)


def test_wrong_shape_is_reported(unet_and_adapter, tmp_path):
    _, adapter = unet_and_adapter
    path = _corrupt(tmp_path, adapter, lambda t: t.__setitem__("preservation.queries", torch.zeros(3, 3)))
    with pytest.raises(CheckpointError, match="wrong shapes.*preservation.queries"):
        FlexIPAdapter.from_pretrained(path)


def test_different_cross_attention_width_is_refused(unet_and_adapter):
    _, adapter = unet_and_adapter
    other_unet = tiny_base_components(cross_attention_dim=48)["unet"]
    with pytest.raises(CheckpointError, match="cross-attention width mismatch.*32.*48"):
        inject_adapter(other_unet, adapter)


def test_pickle_checkpoint_needs_opt_in(unet_and_adapter, tmp_path):
    _, adapter = unet_and_adapter
    adapter.save_pretrained(tmp_path)
    (tmp_path / WEIGHTS_NAME).unlink()
    torch.save(adapter.state_dict(), tmp_path / "flexip_adapter.bin")
    with pytest.raises(CheckpointError, match="pickle"):
        FlexIPAdapter.from_pretrained(tmp_path)
    loaded = FlexIPAdapter.from_pretrained(tmp_path, allow_pickle=True)
    assert torch.equal(loaded.state_dict()["preservation.queries"], adapter.state_dict()["preservation.queries"])


def test_pickle_with_code_is_refused_even_with_opt_in(tmp_path, unet_and_adapter):
    _, adapter = unet_and_adapter
    adapter.save_pretrained(tmp_path)
    (tmp_path / WEIGHTS_NAME).unlink()
    torch.save({"payload": object()}, tmp_path / "flexip_adapter.bin")  # not loadable with weights_only
    with pytest.raises(CheckpointError, match="weights_only"):
        FlexIPAdapter.from_pretrained(tmp_path, allow_pickle=True)


@pytest.mark.parametrize("what", ["no_folder", "no_config", "bad_json", "no_weights"])
def test_unusable_adapter_locations(tmp_path, what, unet_and_adapter):
    _, adapter = unet_and_adapter
    if what == "no_folder":
        target = tmp_path / "missing"
    else:
        adapter.save_pretrained(tmp_path)
        target = tmp_path
        if what == "no_config":
            (tmp_path / "config.json").unlink()
        elif what == "bad_json":
            (tmp_path / "config.json").write_text("{not json")
        else:
            (tmp_path / WEIGHTS_NAME).unlink()
    with pytest.raises(CheckpointError):
        FlexIPAdapter.from_pretrained(target)
