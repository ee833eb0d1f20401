"""Every stage trainer runs a couple of steps on a tiny dataset, writes loadable standard folders, and
resumes from its checkpoint (the step count continues; for the autoencoder, bit-identical weights)."""

from __future__ import annotations

import json

import pytest
import torch



def test_tokenizer_has_one_token_per_grammar_word(tiny_stack):
    from transformers import CLIPTokenizer

    from flexip.miniworld.stack.tokenizer import grammar_words

    work, _ = tiny_stack
    tokenizer = CLIPTokenizer.from_pretrained(work / "tokenizer")
    for word in grammar_words():
        assert len(tokenizer(word, add_special_tokens=False).input_ids) == 1, word
    longest = "a small boxy purple spotted mushroom on the left on pink fabric, sepia"
    assert len(tokenizer(longest).input_ids) == 16  # bos + 14 words/commas + eos, far inside 77


def test_stages_write_standard_folders(tiny_stack, tiny):
    TINY, _ = tiny
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPModel, CLIPTextModel, CLIPVisionModelWithProjection, Dinov2Model

    work, results = tiny_stack
    AutoencoderKL.from_pretrained(work / "autoencoder" / "model")
    CLIPModel.from_pretrained(work / "clip" / "model")
    CLIPTextModel.from_pretrained(work / "clip" / "text_encoder")
    vision = CLIPVisionModelWithProjection.from_pretrained(work / "clip" / "image_encoder")
    assert vision.config.projection_dim == TINY["clip"]["projection_dim"]
    UNet2DConditionModel.from_pretrained(work / "unet" / "model")
    Dinov2Model.from_pretrained(work / "dino" / "model")
    for name, result in results.items():
        assert result["steps"] == 2, name
        assert result["final_loss"] is not None and torch.isfinite(torch.tensor(result["final_loss"])), name
    scheduler = json.loads((work / "unet" / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["prediction_type"] == "v_prediction" and scheduler["rescale_betas_zero_snr"] and scheduler["timestep_spacing"] == "trailing"


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(next(folder.glob("*.safetensors")))


def test_autoencoder_resume_is_exact(tiny_world, tmp_path, tiny):
    TINY, budget = tiny
    from flexip.miniworld.stack.autoencoder import AutoencoderConfig, train_autoencoder

    config = AutoencoderConfig(**TINY["autoencoder"])
    quiet = lambda message: None  # noqa: E731
    straight = train_autoencoder(tiny_world / "data", tmp_path / "straight", config, budget(3), "cpu", False, quiet)
    train_autoencoder(tiny_world / "data", tmp_path / "resumed", config, budget(1), "cpu", False, quiet)
    resumed = train_autoencoder(tiny_world / "data", tmp_path / "resumed", config, budget(3), "cpu", True, quiet)
    assert straight["steps"] == resumed["steps"] == 3
    assert [s for s, _ in resumed["losses"]] == [1, 2, 3]  # the curve continues
    a, b = _weights(tmp_path / "straight" / "model"), _weights(tmp_path / "resumed" / "model")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("stage", ["clip", "dino", "unet"])
def test_stage_resumes_and_continues(tiny_stack, stage, tiny):
    TINY, budget = tiny
    from flexip.miniworld.stack.clip import ClipConfig, train_clip
    from flexip.miniworld.stack.dino import DinoConfig, train_dino
    from flexip.miniworld.stack.unet import UNetConfig, train_unet

    work, results = tiny_stack
    data, quiet = work / "data", (lambda message: None)
    if stage == "clip":
        result = train_clip(data, work / "tokenizer", work / "clip", ClipConfig(**TINY["clip"]), budget(3), "cpu", True, quiet)
    elif stage == "dino":
        result = train_dino(data, work / "dino", DinoConfig(**TINY["dino"]), budget(3), "cpu", True, quiet)
    else:
        result = train_unet(data, work, work / "unet", UNetConfig(**TINY["unet"]), budget(3), "cpu", True, quiet)
    assert result["steps"] == 3  # one more step after the two of the fixture, not three from scratch
    assert result["losses"][:2] == results[stage]["losses"][:2]
