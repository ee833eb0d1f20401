"""Toy-size diffusers pipelines of every kind FlexIP attaches to, built from configs (random weights, offline):
SD1.5-shaped and SDXL-shaped text-to-image, img2img, inpainting and ControlNet, AnimateDiff with a tiny motion
adapter; plus a tiny LoRA in peft's state-dict format and tiny IP-Adapter checkpoints in the official layout.

Images are 16 px (8×8 latents: the tiny VAE downsamples by 2). The SD1.5-shaped UNet is `tiny_base_components`'
(cross-attention 32); the SDXL-shaped one reads 64-wide text (two 32-wide encoders concatenated) and SDXL's
pooled text + time ids ("text_time" added embedding).
"""

from __future__ import annotations

from pathlib import Path

import torch

from flexip.testing import TINY_UNET, tiny_base_components, tiny_text_config, tiny_tokenizer

SDXL_CROSS_DIM = 64
SD_KINDS = ("text2img", "img2img", "inpaint", "controlnet")


def tiny_sdxl_components(seed: int = 0, sample_size: int = 8, in_channels: int = 4) -> dict:
    """vae, text_encoder, text_encoder_2, tokenizer, tokenizer_2, unet, scheduler of a toy SDXL-shaped model."""
    from diffusers import EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    base = tiny_base_components(seed)  # its VAE; the text encoders and UNet are SDXL's own below
    torch.manual_seed(seed + 10)
    unet = UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=in_channels,
        cross_attention_dim=SDXL_CROSS_DIM,
        **TINY_UNET,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + 32,  # six time ids × 8 + the pooled text (32)
    )
    tokenizer = tiny_tokenizer()
    text_encoder = CLIPTextModel(tiny_text_config(tokenizer))
    text_encoder_2 = CLIPTextModelWithProjection(tiny_text_config(tokenizer, projection_dim=32))
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1, timestep_spacing="leading")
    return {
        "vae": base["vae"],
        "text_encoder": text_encoder.eval(),
        "text_encoder_2": text_encoder_2.eval(),
        "tokenizer": tokenizer,
        "tokenizer_2": tiny_tokenizer(),
        "unet": unet.eval(),
        "scheduler": scheduler,
    }


def tiny_controlnet(unet, seed: int = 0):
    """A ControlNet made from `unet` (diffusers' `from_unet`) whose zero-initialised convolutions (the conditioning
    embedding's last one, the residual outputs) get small random weights, so that its conditioning image acts."""
    from diffusers import ControlNetModel

    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32))
    generator = torch.Generator().manual_seed(seed + 20)
    with torch.no_grad():
        zero_initialised = [controlnet.controlnet_cond_embedding.conv_out, *controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]
        for module in zero_initialised:
            module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * 0.3)
    return controlnet.eval()


def tiny_pipeline_of_kind(family: str, kind: str, seed: int = 0):
    """A diffusers pipeline of `family` ("sd" or "sdxl") and `kind` (text2img, img2img, inpaint, controlnet),
    progress bars off. SD1.5 inpainting uses a 9-channel UNet, as the SD1.5 inpainting checkpoints do."""
    import diffusers

    if family == "sd":
        components = tiny_base_components(seed)
        if kind == "inpaint":
            components["unet"] = tiny_base_components(seed, in_channels=9)["unet"]
        components.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        prefix = "StableDiffusion"
    elif family == "sdxl":
        components = tiny_sdxl_components(seed)
        prefix = "StableDiffusionXL"
    else:
        raise ValueError(f"family is 'sd' or 'sdxl', got {family!r}")
    names = {"text2img": "Pipeline", "img2img": "Img2ImgPipeline", "inpaint": "InpaintPipeline", "controlnet": "ControlNetPipeline"}
    if kind == "controlnet":
        components["controlnet"] = tiny_controlnet(components["unet"], seed)
    pipe = getattr(diffusers, prefix + names[kind])(**components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_animatediff_pipeline(seed: int = 0):
    """AnimateDiffPipeline on the SD1.5-shaped tiny model with a tiny `MotionAdapter` (random motion modules)."""
    from diffusers import AnimateDiffPipeline, MotionAdapter

    components = tiny_base_components(seed)
    torch.manual_seed(seed + 30)
    motion_adapter = MotionAdapter(
        block_out_channels=(32, 64),
        motion_layers_per_block=1,
        motion_num_attention_heads=4,
        motion_norm_num_groups=8,
        motion_max_seq_length=8,
    )
    pipe = AnimateDiffPipeline(**components, motion_adapter=motion_adapter, feature_extractor=None, image_encoder=None)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_lora_state_dict(unet, seed: int = 0, rank: int = 2) -> dict[str, torch.Tensor]:
    """A LoRA for every attention projection of `unet` in peft's state-dict format with diffusers' "unet."
    prefix (`pipe.load_lora_weights(state_dict)` reads it); both factors random, so it changes the output."""
    import copy

    from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model

    host = inject_adapter_in_model(
        LoraConfig(r=rank, lora_alpha=rank, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False),
        copy.deepcopy(unet),
    )
    generator = torch.Generator().manual_seed(seed + 40)
    state = {}
    for key, value in get_peft_model_state_dict(host).items():
        state[f"unet.{key}"] = torch.randn(value.shape, generator=generator) * 0.2
    return state


def tiny_ip_adapter_checkpoint(unet, path, kind: str = "base", clip_dim: int = 24, seed: int = 0, num_tokens: int = 4) -> Path:
    """Write a random IP-Adapter checkpoint for `unet` in the official safetensors layout: `image_proj.*` (base:
    Linear + LayerNorm from `clip_dim`-d embeds; plus: a 4-block resampler over `clip_dim`-wide hidden states) and
    `ip_adapter.{2k+1}.to_{k,v}_ip.weight` for the k-th cross-attention layer."""
    from safetensors.torch import save_file

    from flexip.models.adapter import cross_attention_layers

    generator = torch.Generator().manual_seed(seed + 50)
    rand = lambda *shape, scale=0.2: torch.randn(*shape, generator=generator) * scale
    layers = cross_attention_layers(unet)
    cross = next(iter(layers.values()))[1]
    tensors = {}
    if kind == "base":
        tensors.update({"image_proj.proj.weight": rand(num_tokens * cross, clip_dim), "image_proj.proj.bias": rand(num_tokens * cross)})
        tensors.update({"image_proj.norm.weight": 1 + rand(cross), "image_proj.norm.bias": rand(cross)})
    elif kind == "plus":
        width, inner = 32, 64  # one 64-d head (diffusers reads heads = to_q rows / 64)
        tensors.update({"image_proj.latents": rand(1, num_tokens, width, scale=1.0), "image_proj.proj_in.weight": rand(width, clip_dim)})
        tensors.update(
            {"image_proj.proj_in.bias": rand(width), "image_proj.proj_out.weight": rand(cross, width), "image_proj.proj_out.bias": rand(cross)}
        )
        tensors.update({"image_proj.norm_out.weight": 1 + rand(cross), "image_proj.norm_out.bias": rand(cross)})
        for block in range(4):
            prefix = f"image_proj.layers.{block}"
            for norm in ("0.norm1", "0.norm2", "1.0"):
                tensors.update({f"{prefix}.{norm}.weight": 1 + rand(width), f"{prefix}.{norm}.bias": rand(width)})
            tensors.update({f"{prefix}.0.to_q.weight": rand(inner, width), f"{prefix}.0.to_kv.weight": rand(2 * inner, width)})
            tensors.update({f"{prefix}.0.to_out.weight": rand(width, inner)})
            tensors.update({f"{prefix}.1.1.weight": rand(4 * width, width), f"{prefix}.1.3.weight": rand(width, 4 * width)})
    else:
        raise ValueError(f"kind is 'base' or 'plus', got {kind!r}")
    for index, (hidden, width) in enumerate(layers.values()):
        tensors[f"ip_adapter.{2 * index + 1}.to_k_ip.weight"] = rand(hidden, width)
        tensors[f"ip_adapter.{2 * index + 1}.to_v_ip.weight"] = rand(hidden, width)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
    return path
