"""Training throughput at SD1.5 size, with and without the feature cache, and peak memory.

Random weights with the published sizes: the SD1.5 UNet and VAE, a CLIP ViT-L-size text encoder (the toy
514-token vocabulary), a ViT-H/14-size CLIP vision encoder (1280 wide, 32 layers, 1024-d embeds) and a
DINOv2-L-size encoder (1024 wide, 24 layers); the SPEC-size adapter (89 M parameters). The stack is saved to
a temporary folder and trained by `flexip train`'s Trainer at 512 px on synthetic PNG images and mp4 clips:
once encoding every batch on the fly, then from the feature cache (built in between, timed separately).
The first step of each run is a warm-up and is not timed; validation, logging and checkpoints are off.
Peak memory is the process's resident high-water mark during each run (Linux VmHWM, reset before it).

    python benchmarks/training_size.py [--steps 4] [--batch-size 1] [--threads 1]
    python benchmarks/training_size.py --tiny       # the tiny stack at 16 px: checks the script, writes nothing
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _results import write_section  # noqa: E402
from feature_cache import timed_run, write_dataset  # noqa: E402  (the same data and measurement as the cache benchmark)


def save_stack(folder: Path, tiny: bool) -> dict:
    """Write base/, image_encoder/, dino/ under `folder`; return the model section of the config."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import (
        BitImageProcessorPil,
        CLIPImageProcessorPil,
        CLIPTextConfig,
        CLIPTextModel,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
        Dinov2Config,
        Dinov2Model,
    )

    from flexip.testing import SD15_UNET_CONFIG, TINY_ADAPTER_CONFIG, tiny_base_components, tiny_reference_encoders, tiny_tokenizer

    if tiny:
        base, encoders = tiny_base_components(seed=0), tiny_reference_encoders(seed=0)
        adapter = {key: value for key, value in TINY_ADAPTER_CONFIG.items() if key not in ("image_encoder", "dino_encoder")}
    else:
        torch.manual_seed(0)
        tokenizer = tiny_tokenizer()
        base = {
            "unet": UNet2DConditionModel(**SD15_UNET_CONFIG),
            "vae": AutoencoderKL(
                block_out_channels=(128, 256, 512, 512),
                down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4,
                layers_per_block=2,
                latent_channels=4,
                sample_size=512,
            ),
            "text_encoder": CLIPTextModel(
                CLIPTextConfig(
                    vocab_size=len(tokenizer),
                    hidden_size=768,
                    intermediate_size=3072,
                    num_hidden_layers=12,
                    num_attention_heads=12,
                    max_position_embeddings=77,
                    bos_token_id=tokenizer.bos_token_id,
                    eos_token_id=tokenizer.eos_token_id,
                    pad_token_id=tokenizer.pad_token_id,
                )
            ),
            "tokenizer": tokenizer,
            "scheduler": DDIMScheduler(
                beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1
            ),
        }
        vision = CLIPVisionConfig(
            hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16, image_size=224, patch_size=14, projection_dim=1024
        )
        dino = Dinov2Config(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, image_size=518, patch_size=14)
        encoders = {
            "image_encoder": CLIPVisionModelWithProjection(vision),
            "feature_extractor": CLIPImageProcessorPil(),
            "dino_encoder": Dinov2Model(dino),
            "dino_processor": BitImageProcessorPil(
                size={"shortest_edge": 256},
                crop_size={"height": 224, "width": 224},
                image_mean=[0.485, 0.456, 0.406],
                image_std=[0.229, 0.224, 0.225],
            ),
        }
        adapter = {}
    StableDiffusionPipeline(**base, safety_checker=None, feature_extractor=None, requires_safety_checker=False).save_pretrained(folder / "base")
    for name, model, processor in (("image_encoder", "image_encoder", "feature_extractor"), ("dino", "dino_encoder", "dino_processor")):
        encoders[model].save_pretrained(folder / name)
        encoders[processor].save_pretrained(folder / name)
    return {"base": str(folder / "base"), "image_encoder": str(folder / "image_encoder"), "dino_encoder": str(folder / "dino"), "adapter": adapter}


def peak_memory(run):
    """(result of run(), peak resident MiB during it) from /proc (Linux; NaN elsewhere)."""
    status = Path("/proc/self/status")
    if not status.exists():
        return run(), float("nan")
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark
    result = run()
    peak = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM"))
    return result, int(peak.split()[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tiny", action="store_true", help="the tiny stack at 16 px (checks the script; RESULTS.md is not written)")
    args = parser.parse_args()
    import torch

    from flexip.training.cache import build_cache_for_config
    from flexip.training.config import TrainConfig

    torch.set_num_threads(args.threads)
    resolution = 16 if args.tiny else 512
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        model = save_stack(root / "stack", args.tiny)
        manifest = write_dataset(root / "data", images=8, videos=4, size=resolution, frames=8)
        raw = {
            "model": model,
            "data": {"manifest": str(manifest), "resolution": resolution, "max_gap": 4},
            "optim": {"batch_size": args.batch_size, "max_steps": args.steps, "lr": 1e-5},
            "runtime": {"device": "cpu", "seed": 0},
            "logging": {
                "output_dir": str(root / "fly"),
                "tensorboard": False,
                "progress_bar": False,
                "validate_every": 0,
                "checkpoint_every": 10**6,
                "log_every": 10**6,
            },
        }
        (fly, fly_loss), fly_peak = peak_memory(lambda: timed_run(TrainConfig.from_dict(raw)))
        raw["cache"] = {"path": str(root / "cache"), "batch_size": 4}
        started = time.perf_counter()
        build_cache_for_config(TrainConfig.from_dict(raw), progress=False)
        build_seconds = time.perf_counter() - started
        raw["logging"]["output_dir"] = str(root / "cached")
        (cached, cached_loss), cached_peak = peak_memory(lambda: timed_run(TrainConfig.from_dict(raw)))
    markdown = f"""## Training at SD1.5 size, with and without the feature cache (`benchmarks/training_size.py`)

Random weights, published sizes: SD1.5 UNet (860 M) and VAE (84 M), a CLIP ViT-L-size text encoder, a ViT-H/14-size CLIP
vision encoder (632 M) and a DINOv2-L-size encoder (304 M); the SPEC-size adapter (89 M, the only trained part).
{resolution} px, batch {args.batch_size}, {args.steps} steps per run (the first is a warm-up), fp32, CPU, {args.threads} torch thread(s);
8 PNG images and 4 mp4 clips of 8 frames at {resolution} px. Both runs in one process, the same config but `cache.path`.
Target: cached ≥ 2× on the fly.

| batches | samples/s | s per sample | peak resident memory (MiB) |
|---|---|---|---|
| encoded on the fly (decode, augment, VAE encoder, text encoder, CLIP ViT-H, DINOv2-L) | {fly:.4f} | {1 / fly:.1f} | {fly_peak:.0f} |
| from the feature cache | {cached:.4f} | {1 / cached:.1f} | {cached_peak:.0f} |
| **speed-up** | **{cached / fly:.2f}×** | | |

Building the cache (12 records × 1 draw) took {build_seconds:.0f} s. Last-step losses: on the fly {fly_loss:.4f}, cached {cached_loss:.4f}
(the same draws). The cache removes the frozen encoders' forward passes (the VAE encoder at 512 px is the largest);
the UNet's forward and backward, which both runs pay, dominate a training step on a CPU."""
    print(markdown)
    if not args.tiny:
        write_section("training_size", markdown)


if __name__ == "__main__":
    main()
