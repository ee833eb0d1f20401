"""Toy-size FlexIP components built from configs, for tests and benchmarks (like diffusers' testing utils).

Random weights, so images are noise-like; they exercise every code path offline in seconds. The same
stack, saved once with `save_tiny_preset`, is the `tiny-random` preset (`flexip.presets`), so that
`--base tiny-random` loads it as data through the ordinary loading path. The tokenizer is a byte-level
CLIP tokenizer with no merges, shipped in `tiny_tokenizer/` (514 tokens).

    python -m flexip.testing src/flexip/presets/tiny-random     # rewrite the preset folder
"""

from __future__ import annotations

from pathlib import Path

import torch

TOKENIZER_DIR = Path(__file__).parent / "tiny_tokenizer"
CROSS_DIM = 32


def tiny_tokenizer():
    from transformers import CLIPTokenizer

    return CLIPTokenizer(
        str(TOKENIZER_DIR / "vocab.json"),
        str(TOKENIZER_DIR / "merges.txt"),
        model_max_length=77,
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )


#: The toy UNet of the tiny stacks (SD and SDXL), less its input size, channels and cross-attention width.
TINY_UNET = dict(
    out_channels=4, layers_per_block=1, block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D",) * 2,
    up_block_types=("CrossAttnUpBlock2D",) * 2, attention_head_dim=8, norm_num_groups=8,
)  # fmt: skip


def tiny_text_config(tokenizer, hidden_size: int = 32, **extra):
    """The toy CLIP text-encoder config of the tiny stacks, for `tokenizer`."""
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, **extra,
    )  # fmt: skip


def tiny_base_components(seed: int = 0, sample_size: int = 8, cross_attention_dim: int = CROSS_DIM, in_channels: int = 4) -> dict:
    """vae, text_encoder, tokenizer, unet, scheduler of a toy SD1.5-shaped model (16 px images, 8×8 latents).
    `in_channels=9`: the UNet of an inpainting model (latents, mask, masked-image latents)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(sample_size=sample_size, in_channels=in_channels, cross_attention_dim=cross_attention_dim, **TINY_UNET)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        norm_num_groups=8,
        sample_size=16,
    )
    tokenizer = tiny_tokenizer()
    text_encoder = CLIPTextModel(tiny_text_config(tokenizer, cross_attention_dim))
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1
    )
    return {"vae": vae.eval(), "text_encoder": text_encoder.eval(), "tokenizer": tokenizer, "unet": unet.eval(), "scheduler": scheduler}


def tiny_reference_encoders(seed: int = 0) -> dict:
    """image_encoder (CLIP vision, 24-d embeds), feature_extractor, dino_encoder (16 patches × 32), dino_processor."""
    from transformers import (
        BitImageProcessorPil,
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
        Dinov2Config,
        Dinov2Model,
    )

    torch.manual_seed(seed + 1)
    image_encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
            projection_dim=24,
        )
    )
    dino_encoder = Dinov2Model(
        Dinov2Config(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
        )
    )
    feature_extractor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    dino_processor = BitImageProcessorPil(
        size={"shortest_edge": 32},
        crop_size={"height": 32, "width": 32},
        do_convert_rgb=True,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    )
    return {
        "image_encoder": image_encoder.eval(),
        "feature_extractor": feature_extractor,
        "dino_encoder": dino_encoder.eval(),
        "dino_processor": dino_processor,
    }


#: The published Stable Diffusion 1.5 UNet configuration (real size, for random-weight size and speed checks).
SD15_UNET_CONFIG = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768, attention_head_dim=8,
)  # fmt: skip

TINY_ADAPTER_CONFIG = dict(
    num_global_tokens=2,
    num_queries=4,
    preservation_depth=1,
    preservation_width=32,
    preservation_heads=4,
    num_visual_tokens=2,
    personalization_depth=1,
    personalization_heads=4,
    image_encoder="tiny-random:image_encoder",
    dino_encoder="tiny-random:dino",
)


def tiny_adapter(unet, seed: int = 0, randomize_outputs: bool = True, **config):
    """A tiny adapter for `unet` (`config`: more FlexIPAdapter options). With `randomize_outputs`, the
    zero-initialized output projections of the personalization adapter get small random values so that its
    branch is not the identity (tests)."""
    from flexip.models.adapter import FlexIPAdapter

    torch.manual_seed(seed + 2)
    adapter = FlexIPAdapter.from_unet(unet, clip_embed_dim=24, dino_hidden_dim=32, **TINY_ADAPTER_CONFIG, **config)
    if randomize_outputs:
        with torch.no_grad():
            for name, parameter in adapter.personalization.named_parameters():
                if "to_out" in name or "fc_out" in name:
                    parameter.normal_(0, 0.2)
    return adapter.eval()


def tiny_pipeline(seed: int = 0, adapter=None):
    from flexip.pipelines.pipeline_flexip import FlexIPPipeline

    base = tiny_base_components(seed)
    pipe = FlexIPPipeline(**base, **tiny_reference_encoders(seed), adapter=adapter or tiny_adapter(base["unet"], seed))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_preset(folder, seed: int = 0) -> Path:
    """Write the tiny random stack as a preset folder (base/, image_encoder/, dino/, adapter/, demo, manifest)."""
    import json

    from diffusers import StableDiffusionPipeline

    from flexip.atomic import write_text

    folder = Path(folder)
    base = tiny_base_components(seed)
    encoders = tiny_reference_encoders(seed)
    StableDiffusionPipeline(**base, safety_checker=None, feature_extractor=None, requires_safety_checker=False).save_pretrained(folder / "base")
    encoders["image_encoder"].save_pretrained(folder / "image_encoder")
    encoders["feature_extractor"].save_pretrained(folder / "image_encoder")
    encoders["dino_encoder"].save_pretrained(folder / "dino")
    encoders["dino_processor"].save_pretrained(folder / "dino")
    tiny_adapter(base["unet"], seed).save_pretrained(folder / "adapter")
    references = {}
    for name, images in demo_subjects().items():
        references[name] = [f"demo/{name}.png"]
        (folder / "demo").mkdir(exist_ok=True)
        images[0].save(folder / "demo" / f"{name}.png")
    demo = {
        "subjects": references,
        "prompts": ["a blob in the snow", "a red blob on the beach"],
        "steps": 4,
        "guidance": 5.0,
        "note": "preset tiny-random: RANDOM weights, so the images are noise; this only shows the code path runs.",
    }
    write_text(folder / "demo.json", json.dumps(demo, indent=2) + "\n")
    manifest = {
        "name": "tiny-random",
        "description": "Toy-size random components built from configs (flexip.testing.save_tiny_preset); "
        "images are noise. For exercising code paths offline.",
        "seed": seed,
        "adapter_defaults": {k: v for k, v in TINY_ADAPTER_CONFIG.items()},
    }
    write_text(folder / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return folder


def demo_subjects() -> dict:
    """Two simple drawn subjects (a striped disc, a dotted square) for the random-weights demo."""
    from PIL import Image, ImageDraw

    subjects = {}
    for name, (shape, colour, accent) in {
        "disc": ("ellipse", (220, 60, 40), (250, 210, 40)),
        "square": ("rectangle", (40, 90, 200), (240, 240, 240)),
    }.items():
        image = Image.new("RGB", (64, 64), (235, 235, 225))
        draw = ImageDraw.Draw(image)
        getattr(draw, shape)((12, 12, 52, 52), fill=colour)
        for offset in range(16, 50, 8):
            draw.line((offset, 14, offset, 50), fill=accent, width=2)
        subjects[name] = [image]
    return subjects
