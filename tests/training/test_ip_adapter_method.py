"""`model.method: ip-adapter`: the IP-Adapter Plus baseline, trained by the same trainer as FlexIP, written in
IP-Adapter's official layout and run by diffusers' own `load_ip_adapter` / `set_ip_adapter_scale`."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from flexip.errors import FlexIPInputError
from flexip.models.ip_adapter_plus import CONFIG_NAME, WEIGHTS_NAME, IPAdapterPlus
from flexip.training.cache import CachedFeatureDataset, build_cache_for_config
from flexip.training.trainer import Trainer

IP = {"method": "ip-adapter", "ip_adapter": {"num_tokens": 4, "hidden_dims": 64}}


def _pipeline(trainer):
    from diffusers import StableDiffusionPipeline

    c = trainer.components
    trainer.model.detach_adapter()
    pipe = StableDiffusionPipeline(
        vae=c["vae"],
        text_encoder=c["text_encoder"],
        tokenizer=c["tokenizer"],
        unet=c["unet"],
        scheduler=c["scheduler"],
        image_encoder=c["image_encoder"],
        feature_extractor=c["feature_extractor"],
        safety_checker=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_the_baseline_trains_saves_in_the_official_layout_and_runs_in_diffusers(tmp_path, write_dataset, make_config):
    manifest = write_dataset(tmp_path / "data", images=4, videos=2)
    config = make_config(manifest, tmp_path / "out", model={"base": "tiny-random", **IP}, optim={"max_steps": 3, "lr": 1e-2})
    trainer = Trainer(config)
    frozen = {name: p.clone() for name, p in trainer.components["unet"].named_parameters() if "ip" not in name and "encoder_hid_proj" not in name}
    start = {k: v.clone() for k, v in trainer.adapter.official_state_dict().items()}
    result = trainer.train()
    assert all(torch.isfinite(torch.tensor(result.losses)))
    # the projection and K_ip / V_ip trained; the UNet did not
    trained = trainer.adapter.official_state_dict()
    assert any(not torch.equal(start[k], trained[k]) for k in start if k.startswith("image_proj."))
    assert any(not torch.equal(start[k], trained[k]) for k in start if k.startswith("ip_adapter."))
    unet = dict(trainer.components["unet"].named_parameters())
    assert all(torch.equal(unet[name], value) for name, value in frozen.items())
    # official layout: flat image_proj.* (original resampler names) and ip_adapter.{2k+1}.to_{k,v}_ip.weight
    tensors = load_file(str(result.adapter_dir / WEIGHTS_NAME))
    assert (result.adapter_dir / CONFIG_NAME).is_file()
    assert {"image_proj.latents", "image_proj.proj_in.weight", "image_proj.layers.0.0.to_kv.weight", "image_proj.layers.3.1.3.weight"} <= set(tensors)
    layers = sorted({int(k.split(".")[1]) for k in tensors if k.startswith("ip_adapter.")})
    assert layers == list(range(1, 2 * len(layers), 2)) and len(layers) == len(trainer.adapter.layer_names)
    # diffusers' loader reads it back exactly, and its scale is the dial: 0 = the base model
    pipe = _pipeline(trainer)
    reference = Image.new("RGB", (32, 32), (220, 40, 40))
    generate = lambda **kw: pipe("a blob", num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np", **kw).images
    base = generate()
    pipe.load_ip_adapter(str(result.adapter_dir), subfolder="", weight_name=WEIGHTS_NAME, image_encoder_folder=None)
    loaded = pipe.unet.encoder_hid_proj.image_projection_layers[0].state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in trainer.adapter.image_proj.state_dict().items())
    images = {}
    for scale in (0.0, 1.0):
        pipe.set_ip_adapter_scale(scale)
        images[scale] = generate(ip_adapter_image=reference)
    assert abs(images[0.0] - base).max() < 1e-6
    assert abs(images[1.0] - base).max() > 1e-3


def test_the_baseline_resumes_exactly_and_its_folder_round_trips(tmp_path, write_dataset, make_config, reset_accelerate):
    manifest = write_dataset(tmp_path / "data")
    settings = dict(model={"base": "tiny-random", **IP}, optim={"max_steps": 4, "lr": 1e-2}, runtime={"ema_decay": 0.5})
    straight = Trainer(make_config(manifest, tmp_path / "a", **settings, logging={"checkpoint_every": 2})).train()
    reset_accelerate()

    class Killed(Exception):
        pass

    def kill(step, trainer):
        if step == 3:
            raise Killed

    with pytest.raises(Killed):
        Trainer(make_config(manifest, tmp_path / "b", **settings, logging={"checkpoint_every": 2})).train(on_step_end=kill)
    reset_accelerate()
    trainer = Trainer(make_config(manifest, tmp_path / "b", **settings, logging={"checkpoint_every": 2}), resume="latest")
    assert trainer.step == 2
    resumed = trainer.train()
    assert resumed.losses == straight.losses[2:]
    a, b = load_file(str(straight.adapter_dir / WEIGHTS_NAME)), load_file(str(resumed.adapter_dir / WEIGHTS_NAME))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    back = IPAdapterPlus.from_pretrained(resumed.adapter_dir)
    assert all(torch.equal(back.official_state_dict()[k], a[k]) for k in a)


def test_baseline_settings_are_checked_where_they_enter(tmp_path, write_dataset, make_config, reset_accelerate, caplog):
    manifest = write_dataset(tmp_path / "data", images=2, videos=0)
    with pytest.raises(FlexIPInputError, match="model.method must be one of flexip, ip-adapter"):
        make_config(manifest, tmp_path / "x", model={"method": "ip_adapter"})
    with pytest.raises(FlexIPInputError, match="model.ip_adapter: unknown key"):
        make_config(manifest, tmp_path / "x", model={"method": "ip-adapter", "ip_adapter": {"depth": 2}})
    with pytest.raises(FlexIPInputError, match="applies to model.method: ip-adapter only"):
        make_config(manifest, tmp_path / "x", model={"ip_adapter": {"num_tokens": 4}})
    with pytest.raises(FlexIPInputError, match="multiple of 64"):
        Trainer(make_config(manifest, tmp_path / "x", model={"method": "ip-adapter", "ip_adapter": {"hidden_dims": 48}}, data={"mix": {"image": 1}}))
    cached = make_config(manifest, tmp_path / "y", model=IP, data={"mix": {"image": 1}}, cache={"path": str(tmp_path / "cache")})
    build_cache_for_config(cached, progress=False)
    assert "clip_tokens" in CachedFeatureDataset(tmp_path / "cache").tensor_names  # the baseline trains from a cache too
    assert Trainer(cached).train().step == 4
    reset_accelerate()
    caplog.set_level("WARNING", logger="flexip")
    Trainer(make_config(manifest, tmp_path / "z", model=IP, data={"mix": {"image": 1}}, gate={"image_range": [0.2, 1.0]}))
    assert "ignored: gate" in caplog.text
