"""Every stage trainer runs a couple of steps on a tiny dataset, writes loadable standard folders, and
resumes from its checkpoint (the step count continues; for the autoencoder, bit-identical weights)."""

from __future__ import annotations

import json

import pytest
import torch


def test_tokenizer_has_one_token_per_grammar_word(tiny_stack):
    from transformers import CLIPTokenizer

    from flexip_miniworld.stack.tokenizer import grammar_words

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
    from flexip_miniworld.stack.autoencoder import AutoencoderConfig, train_autoencoder

    config = AutoencoderConfig(**TINY["autoencoder"])
    quiet = lambda message: None  # noqa: E731
    straight = train_autoencoder(tiny_world / "data", tmp_path / "straight", config, budget(3), "cpu", False, quiet)
    train_autoencoder(tiny_world / "data", tmp_path / "resumed", config, budget(1), "cpu", False, quiet)
    resumed = train_autoencoder(tiny_world / "data", tmp_path / "resumed", config, budget(3), "cpu", True, quiet)
    assert straight["steps"] == resumed["steps"] == 3
    assert [s for s, _ in resumed["losses"]] == [1, 2, 3]  # the curve continues
    a, b = _weights(tmp_path / "straight" / "model"), _weights(tmp_path / "resumed" / "model")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_fresh_start_replaces_an_earlier_runs_checkpoints(tiny_world, tmp_path, tiny):
    from flexip.training import checkpointing as ckpt
    from flexip_miniworld.stack.autoencoder import AutoencoderConfig, train_autoencoder

    TINY, budget = tiny
    config, quiet = AutoencoderConfig(**TINY["autoencoder"]), (lambda message: None)
    train_autoencoder(tiny_world / "data", tmp_path / "stage", config, budget(3), "cpu", False, quiet)
    train_autoencoder(tiny_world / "data", tmp_path / "stage", config, budget(1), "cpu", False, quiet)  # started over
    assert [step for step, _ in ckpt.list_checkpoints(tmp_path / "stage")] == [1]
    resumed = train_autoencoder(tiny_world / "data", tmp_path / "stage", config, budget(2), "cpu", True, quiet)
    assert [s for s, _ in resumed["losses"]] == [1, 2]  # continued the new run, not the old step-3 one


@pytest.mark.parametrize("stage", ["clip", "dino", "unet"])
def test_stage_resumes_and_continues(tiny_stack, stage, tiny):
    TINY, budget = tiny
    from flexip_miniworld.stack.clip import ClipConfig, train_clip
    from flexip_miniworld.stack.dino import DinoConfig, train_dino
    from flexip_miniworld.stack.unet import UNetConfig, train_unet

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


def test_decoder_stage_keeps_the_latent_space_and_resumes_exactly(tiny_stack, tmp_path, tiny):
    """Only the decoder moves: encoder, quant conv and scaling factor stay bit-identical, so the UNet
    trained on the autoencoder's latents stays valid; a resumed run ends where a straight one does."""
    from diffusers import AutoencoderKL

    from flexip_miniworld.stack.autoencoder import DecoderConfig, train_decoder

    _, budget = tiny
    work, _ = tiny_stack
    quiet = lambda message: None  # noqa: E731
    config = DecoderConfig(batch_size=4, warmup=1, lr=1e-2)
    straight = train_decoder(work / "data", work, tmp_path / "straight", config, budget(3), "cpu", False, quiet)
    train_decoder(work / "data", work, tmp_path / "resumed", config, budget(1), "cpu", False, quiet)
    resumed = train_decoder(work / "data", work, tmp_path / "resumed", config, budget(3), "cpu", True, quiet)
    assert straight["steps"] == resumed["steps"] == 3 and [s for s, _ in resumed["losses"]] == [1, 2, 3]
    a, b = _weights(tmp_path / "straight" / "model"), _weights(tmp_path / "resumed" / "model")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    before = _weights(work / "autoencoder" / "model")
    frozen = [k for k in before if k.startswith(("encoder.", "quant_conv."))]
    moved = [k for k in before if k.startswith(("decoder.", "post_quant_conv."))]
    assert frozen and all(torch.equal(before[k], a[k]) for k in frozen)
    assert any(not torch.equal(before[k], a[k]) for k in moved)
    original = AutoencoderKL.from_pretrained(work / "autoencoder" / "model").config.scaling_factor
    assert AutoencoderKL.from_pretrained(tmp_path / "straight" / "model").config.scaling_factor == original


def test_grown_unet_starts_as_the_trained_one_and_trains_its_new_attention(tiny_stack, tmp_path, tiny):
    from diffusers import UNet2DConditionModel

    from flexip_miniworld.stack.unet import GROWN_BLOCKS, UNetConfig, grow_unet, train_unet

    TINY, budget = tiny
    work, _ = tiny_stack
    trained = UNet2DConditionModel.from_pretrained(work / "unet" / "model").eval()
    grown = grow_unet(work / "unet" / "model").eval()
    assert "down_blocks.0.attentions.0.proj_out.weight" in grown.state_dict()
    assert "down_blocks.0.attentions.0.proj_out.weight" not in trained.state_dict()
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(2, trained.config.in_channels, 8, 8, generator=generator)
    text = torch.randn(2, 5, trained.config.cross_attention_dim, generator=generator)
    with torch.no_grad():
        expected = trained(sample, torch.tensor([10, 700]), encoder_hidden_states=text).sample
        actual = grown(sample, torch.tensor([10, 700]), encoder_hidden_states=text).sample
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)
    channels = trained.config.block_out_channels[0]
    assert grown.down_blocks[0].attentions[0].transformer_blocks[0].attn1.heads == max(1, channels // 32)  # new level: 32-channel heads
    assert (
        grown.down_blocks[1].attentions[0].transformer_blocks[0].attn1.heads == trained.down_blocks[1].attentions[0].transformer_blocks[0].attn1.heads
    )
    config = UNetConfig(**{**TINY["unet"], "down_blocks": GROWN_BLOCKS, "lr": 1e-2})
    result = train_unet(
        work / "data", work, tmp_path / "unet_grow", config, budget(2), "cpu", False, lambda m: None, grow_from=work / "unet" / "model"
    )
    assert result["steps"] == 2
    trained_grown = UNet2DConditionModel.from_pretrained(tmp_path / "unet_grow" / "model")
    assert trained_grown.config.down_block_types == list(GROWN_BLOCKS)
    assert trained_grown.down_blocks[0].attentions[0].proj_out.weight.abs().sum() > 0


def test_growing_rejects_a_model_that_is_not_a_subset(tiny_stack, tmp_path):
    from flexip_miniworld.stack.unet import grow_unet

    work, _ = tiny_stack
    with pytest.raises(ValueError, match="not a growth"):
        grow_unet(work / "unet" / "model", ("DownBlock2D",) * 3)


def test_derived_stages_refuse_a_retrained_parent(tmp_path):
    from safetensors.torch import save_file

    from flexip.errors import FlexIPInputError
    from flexip_miniworld.stack.common import bind_parent, derived_output

    parent, stage = tmp_path / "unet" / "model", tmp_path / "unet_grow"
    parent.mkdir(parents=True)
    save_file({"w": torch.zeros(2)}, str(parent / "weights.safetensors"))
    assert derived_output(stage, parent) is False  # not run yet
    bind_parent(stage, parent)
    (stage / "model").mkdir()
    assert derived_output(stage, parent) is True
    save_file({"w": torch.ones(2)}, str(parent / "weights.safetensors"))  # the parent was retrained
    with pytest.raises(FlexIPInputError, match="derived from other"):
        derived_output(stage, parent)
    with pytest.raises(FlexIPInputError, match="trained from other"):
        bind_parent(stage, parent)


KILLED_STAGE = """
import sys, time, torch
torch.set_num_threads(1)
from flexip_miniworld.stack.autoencoder import AutoencoderConfig, train_autoencoder
from flexip_miniworld.stack.loop import Budget

def log(message):
    print(message, flush=True)
    if "step 3 " in message:  # after step 3, before its checkpoint: the parent kills us here
        time.sleep(60)

config = AutoencoderConfig(**eval(sys.argv[3]))
train_autoencoder(sys.argv[1], sys.argv[2], config, Budget(max_steps=5, checkpoint_steps=1, log_every=1), "cpu", True, log)
"""


def test_autoencoder_stage_resumes_bit_identically_after_a_real_sigkill(tiny_world, tmp_path, tiny):
    """A stage killed by SIGKILL in another process (step 3 done, its checkpoint not yet written) resumes from
    the step-2 checkpoint and ends with the very weights of a straight run."""
    import os
    import signal
    import subprocess
    import sys

    from flexip.training import checkpointing as ckpt
    from flexip_miniworld.stack.autoencoder import AutoencoderConfig, train_autoencoder

    TINY, budget = tiny
    quiet = lambda message: None  # noqa: E731
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_STAGE, str(tiny_world / "data"), str(tmp_path / "killed"), repr(TINY["autoencoder"])],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    for line in child.stdout:
        if "step 3 " in line:
            break
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert [step for step, _ in ckpt.list_checkpoints(tmp_path / "killed")] == [1, 2]
    resumed = train_autoencoder(tiny_world / "data", tmp_path / "killed", AutoencoderConfig(**TINY["autoencoder"]), budget(5), "cpu", True, quiet)
    straight = train_autoencoder(tiny_world / "data", tmp_path / "straight", AutoencoderConfig(**TINY["autoencoder"]), budget(5), "cpu", False, quiet)
    assert resumed["steps"] == straight["steps"] == 5 and [s for s, _ in resumed["losses"]] == [1, 2, 3, 4, 5]
    a, b = _weights(tmp_path / "straight" / "model"), _weights(tmp_path / "killed" / "model")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert all(ckpt.checkpoint_problem(path) is None for _, path in ckpt.list_checkpoints(tmp_path / "killed"))
