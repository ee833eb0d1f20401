"""Metric formulas on known vectors, and through tiny random backbones loaded by the real loading code."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flexip.errors import FlexIPInputError
from flexip.evaluation import metrics as M
from flexip.evaluation.backbones import (
    AestheticHead,
    BackboneConfig,
    Backbones,
    _projected,
    load_aesthetic_head,
)

from .conftest import SHARED_AESTHETIC_HEAD, random_image


def test_formulas_on_known_vectors():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    b = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    assert torch.allclose(M.clip_t(a, b), torch.tensor([1.0, 2**-0.5]))
    references = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert torch.allclose(M.clip_i(a, references), torch.tensor([0.5, 0.5]))  # mean over the reference set
    assert torch.allclose(M.dino_i(a, a[:1]), torch.tensor([1.0, 0.0]))
    good, bad = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    iqa = M.clip_iqa(a, good, bad)
    assert iqa[0] == pytest.approx(torch.softmax(torch.tensor([100.0, 0.0]), 0)[0].item())
    assert torch.allclose(M.clip_iqa(a, good, good), torch.full((2,), 0.5))


def test_formulas_reject_bad_shapes():
    with pytest.raises(FlexIPInputError, match="same shape"):
        M.clip_t(torch.zeros(2, 3), torch.zeros(3, 3))
    with pytest.raises(FlexIPInputError, match="2-D"):
        M.clip_i(torch.zeros(3), torch.zeros(1, 3))
    with pytest.raises(FlexIPInputError, match="widths"):
        M.dino_i(torch.zeros(1, 3), torch.zeros(1, 4))
    with pytest.raises(FlexIPInputError, match="unknown metric"):
        M.validate_metrics(["CLIP-T", "FID"])
    assert M.validate_metrics("aesthetic,clip-t") == ("CLIP-T", "Aesthetic")


def test_projected_embedding_from_tensor_or_output_object():
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    vector = torch.ones(2, 4)
    assert _projected(vector, "image_embeds") is vector
    assert _projected(BaseModelOutputWithPooling(pooler_output=vector), "image_embeds") is vector


def test_identical_images_have_cosine_one(backbones):
    images = [random_image(1), random_image(2)]
    for embedder, metric in ((backbones.clip, M.clip_i), (backbones.dino, M.dino_i)):
        embeds = embedder.embed_images(images)
        assert embeds.shape[0] == 2
        assert torch.allclose(metric(embeds, embeds[:1])[0], torch.tensor(1.0), atol=1e-5)
        assert torch.allclose(M.paired_cosine(embeds, embeddings_again := embedder.embed_images(images)), torch.ones(2), atol=1e-5)
        assert torch.equal(embeds, embeddings_again)  # deterministic (eval mode)


def test_clip_iqa_range_and_identical_anchors(backbones):
    embeds = backbones.clip_iqa.embed_images([random_image(seed) for seed in range(3)])
    good, bad = backbones.clip_iqa.embed_texts(list(M.IQA_ANCHORS))
    scores = M.clip_iqa(embeds, good, bad)
    assert scores.shape == (3,) and bool(((scores >= 0) & (scores <= 1)).all())
    same_good, same_bad = backbones.clip_iqa.embed_texts(["Good photo.", "Good photo."])
    assert torch.allclose(M.clip_iqa(embeds, same_good, same_bad), torch.full((3,), 0.5))


def test_images_reach_processors_as_uint8(backbones):
    image = random_image(5)
    as_float = np.asarray(image).astype(np.float32) / 255.0  # a float array in [0, 1] is converted once
    assert torch.allclose(backbones.clip.embed_images([image]), backbones.clip.embed_images([as_float]), atol=1e-6)
    with pytest.raises(FlexIPInputError, match="not torch tensors"):
        backbones.clip.embed_images([torch.rand(3, 32, 32)])


def test_backbones_share_models_and_record_ids(backbones, backbone_config):
    assert backbones.clip is backbones.clip_iqa  # same id: loaded once
    assert type(backbones.aesthetic_clip.model).__name__ == "CLIPVisionModelWithProjection"
    image = [random_image(9)]
    # the vision-only load keeps the checkpoint's projection: same embedding as the full CLIPModel
    assert torch.allclose(backbones.aesthetic_clip.embed_images(image), backbones.clip.embed_images(image), atol=1e-5)
    described = backbones.describe()
    assert described["per_metric"]["DINO-I"] == backbone_config.dino
    assert described["per_metric"]["Aesthetic"]["image_encoder"] == backbone_config.aesthetic_clip
    assert len(described["aesthetic_head_sha256"]) == 64


def test_only_needed_backbones_are_loaded(backbone_config):
    loaded = Backbones.load(backbone_config, metrics=["DINO-I"])
    assert loaded.dino is not None and loaded.clip is None and loaded.aesthetic_head is None


def test_real_aesthetic_head_is_deterministic():
    if not SHARED_AESTHETIC_HEAD.is_file():
        pytest.skip(f"no aesthetic head at {SHARED_AESTHETIC_HEAD}")
    from flexip.evaluation.defaults import AESTHETIC_HEAD_SHA256
    from flexip.hashing import file_sha256

    assert file_sha256(SHARED_AESTHETIC_HEAD) == AESTHETIC_HEAD_SHA256
    head, path = load_aesthetic_head(SHARED_AESTHETIC_HEAD)
    assert not head.training and path == SHARED_AESTHETIC_HEAD
    embeds = torch.randn(4, 768, generator=torch.Generator().manual_seed(0))
    first, second = M.aesthetic(embeds, head), M.aesthetic(embeds * 3.0, head)  # input is L2-normalized
    assert first.shape == (4,) and torch.allclose(first, second, atol=1e-5)
    assert torch.equal(first, M.aesthetic(embeds, head))
    assert bool(torch.isfinite(first).all()) and float(first.abs().max()) < 20


def test_aesthetic_head_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("FLEXIP_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FlexIPInputError, match="downloads are disabled"):
        load_aesthetic_head(None)
    with pytest.raises(FlexIPInputError, match="allow its download"):
        load_aesthetic_head(None, download=False)
    bad = tmp_path / "bad.pth"
    torch.save({"weight": torch.zeros(1)}, bad)
    with pytest.raises(FlexIPInputError, match="not a LAION aesthetic head"):
        load_aesthetic_head(bad)
    with pytest.raises(FlexIPInputError, match="batch_size"):
        BackboneConfig(batch_size=0)
    assert AestheticHead()(torch.zeros(2, 768)).shape == (2, 1)


def test_aesthetic_head_is_fetched_into_the_cache_once(tmp_path, monkeypatch, aesthetic_head_path):
    import shutil

    from flexip.evaluation import fetch
    from flexip.evaluation.defaults import AESTHETIC_HEAD_URL

    calls = []

    def fake_download(url, destination, what, sha256=None):  # stands in for the network
        calls.append(url)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(aesthetic_head_path, destination)
        return destination

    monkeypatch.setenv("FLEXIP_CACHE", str(tmp_path))
    monkeypatch.setattr(fetch, "download", fake_download)
    head, path = load_aesthetic_head(None)
    assert path == tmp_path / "laion-aesthetic-v2" / "sac+logos+ava1-l14-linearMSE.pth" and calls == [AESTHETIC_HEAD_URL]
    load_aesthetic_head(None)
    assert len(calls) == 1
