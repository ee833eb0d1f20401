"""The IP-Adapter baseline through diffusers: a scale sweep generated and scored by the same harness."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from flexip.errors import FlexIPInputError
from flexip.evaluation.results import load_result
from flexip.evaluation.runner import GenerationSettings, RunConfig, generate_benchmark, score_run
from flexip.evaluation.scoring import ScoreConfig

tiny_random = pytest.importorskip("flexip.testing")


def ip_adapter_state_dict(unet, image_embed_dim: int, seed: int = 0) -> dict:
    """Random IP-Adapter weights in the original checkpoint format (image_proj + numbered ip_adapter keys)."""
    generator = torch.Generator().manual_seed(seed)
    cross = unet.config.cross_attention_dim
    image_proj = {
        "proj.weight": torch.randn(4 * cross, image_embed_dim, generator=generator) * 0.2,
        "proj.bias": torch.zeros(4 * cross),
        "norm.weight": torch.ones(cross),
        "norm.bias": torch.zeros(cross),
    }
    ip_layers, key = {}, 1
    for name in unet.attn_processors:  # same order and numbering as the released checkpoints
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = unet.config.block_out_channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(unet.config.block_out_channels))[int(name[len("up_blocks.")])]
        else:
            hidden = unet.config.block_out_channels[int(name[len("down_blocks.")])]
        ip_layers[f"{key}.to_k_ip.weight"] = torch.randn(hidden, cross, generator=generator) * 0.2
        ip_layers[f"{key}.to_v_ip.weight"] = torch.randn(hidden, cross, generator=generator) * 0.2
        key += 2
    return {"image_proj": image_proj, "ip_adapter": ip_layers}


@pytest.fixture(scope="module")
def ip_adapter_pipe():
    from diffusers import StableDiffusionPipeline

    encoders = tiny_random.tiny_reference_encoders(seed=0)
    pipe = StableDiffusionPipeline(
        **tiny_random.tiny_base_components(seed=0),
        safety_checker=None,
        requires_safety_checker=False,
        feature_extractor=encoders["feature_extractor"],
        image_encoder=encoders["image_encoder"],
    )
    pipe.load_ip_adapter(
        ip_adapter_state_dict(pipe.unet, encoders["image_encoder"].config.projection_dim),
        subfolder="",
        weight_name="",
        image_encoder_folder=None,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_scale_sweep_uses_one_seed_and_restores_the_pipeline(ip_adapter_pipe, tiny_bench):
    from flexip.evaluation.baselines import IPAdapterMethod

    method = IPAdapterMethod(ip_adapter_pipe, {"weights": "random"})
    reference = method.encode_reference([Image.open(tiny_bench.subject("dog").images[0]).convert("RGB")])
    settings = GenerationSettings(num_inference_steps=2, guidance_scale=2.0)
    before = method._scales()
    images = method.generate("a dog in the snow", reference, [0.0, 0.5, 1.0], 7, settings)
    assert len(images) == 3 and len({image.tobytes() for image in images}) == 3
    assert method._scales() == before  # the shared pipeline is left as it was
    again = method.generate("a dog in the snow", reference, [1.0], 7, settings)
    assert again[0].tobytes() == images[2].tobytes()  # same seed, same noise
    assert list(reference.embeds) == [True]  # reference encoded once per guidance mode


def test_scale_sweep_generated_and_scored_like_flexip(tmp_path, ip_adapter_pipe, tiny_bench, backbones):
    from flexip.evaluation.baselines import IPAdapterMethod

    method = IPAdapterMethod(ip_adapter_pipe)
    config = RunConfig(
        values=(0.0, 1.0),
        images_per_prompt=1,
        subjects=("can",),
        prompts_per_subject=1,
        generation=GenerationSettings(num_inference_steps=2, guidance_scale=2.0),
    )
    summary = generate_benchmark(method, tiny_bench, tmp_path, config, progress=False)
    assert summary.generated == 2 and (tmp_path / "images" / "scale-1" / "can" / "00" / "0.png").is_file()
    written = score_run(tmp_path, tiny_bench, backbones, ScoreConfig(metrics=("CLIP-T", "CLIP-I")), method.name, method.control, config.values)
    result = load_result(written[0])
    assert result.label == "IP-Adapter (scale=0)" and result.config["generation"]["control"] == "scale"


def test_pipeline_without_ip_adapter_is_rejected():
    from flexip.evaluation.baselines import IPAdapterMethod

    with pytest.raises(FlexIPInputError, match="IP-Adapter"):
        IPAdapterMethod(object())
