"""The feature cache: built once, equal to on-the-fly features, trainable, refused when it does not fit."""

from __future__ import annotations

import json

import pytest
import torch

from flexip.errors import FlexIPInputError
from flexip.training.cache import CachedFeatureDataset, build_cache_for_config
from flexip.training.trainer import Trainer


def test_cache_matches_online_features_and_trains(tmp_path, write_dataset, make_config, reset_accelerate):
    manifest = write_dataset(tmp_path / "data", images=2, videos=2, corrupt=True, short_video=True)
    config = make_config(manifest, tmp_path / "out", optim={"max_steps": 3}, cache={"path": str(tmp_path / "cache"), "draws": 2, "shard_size": 3})
    report = build_cache_for_config(config, progress=False)
    assert (report.records, report.entries) == (4, 8)  # the corrupt image and the 1-frame clip are left out
    assert report.skipped == {"corrupt_image": 2, "video_too_short": 2}  # counted once per draw
    index = json.loads((tmp_path / "cache" / "index.json").read_text())
    assert index["modalities"] == "iivv" and len(index["shards"]) == 3 and not (tmp_path / "cache.tmp").exists()

    trainer = Trainer(config)  # trains from the cache
    cached = CachedFeatureDataset(tmp_path / "cache")
    # draw k of a record is the on-the-fly sample of epoch k: same features (the cache stores float32 here)
    for slot, record in ((0, 0), (3, 3)):
        for epoch in (0, 1, 2):
            entry = cached[(slot, epoch)]
            online = trainer.encoder(_as_batch(trainer.dataset[(record, epoch % 2)]))
            for name, tensor in online.tensors().items():
                assert torch.allclose(entry[name], tensor[0], atol=1e-5), (name, slot, epoch)
    assert not torch.equal(cached[(0, 0)]["clip_embeds"], cached[(0, 1)]["clip_embeds"])  # two augmentation draws
    batch = next(trainer.stream)
    assert "latents" in batch and batch["latents"].shape == (4, 4, 8, 8)
    trainer.stream.load_state_dict({"epoch": 0, "position": 0})
    result = trainer.train()
    assert result.step == 3 and all(torch.isfinite(torch.tensor(result.losses)))
    reset_accelerate()

    other = make_config(manifest, tmp_path / "out2", data={"resolution": 32}, cache={"path": str(tmp_path / "cache")})
    with pytest.raises(FlexIPInputError, match="resolution: cache 16, config 32"):
        Trainer(other)
    reset_accelerate()
    missing = make_config(manifest, tmp_path / "out3", cache={"path": str(tmp_path / "nowhere")})
    with pytest.raises(FlexIPInputError, match="no feature cache"):
        Trainer(missing)


def _as_batch(sample: dict) -> dict:
    return {key: [sample[key]] for key in ("reference", "target", "caption", "modality", "target_mask")}
