"""Training throughput with and without the feature cache: same config, same data, same process.

    .venv/bin/python benchmarks/feature_cache.py [--steps 30] [--batch-size 8] [--threads 1]

Writes a synthetic dataset (PNG images and real mp4 clips, written with PyAV) to a temporary folder,
trains the tiny-random stack for --steps steps encoding every batch on the fly, builds the feature cache
(timed separately), trains the same config again from the cache, and writes the samples/s of both to
the `feature_cache` section of benchmarks/RESULTS.md. The first step of each run is a warm-up and is not
timed; validation, logging and checkpoints are off so that only the training steps are measured.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

from _results import write_section  # noqa: E402


def write_dataset(root: Path, images: int, videos: int, size: int, frames: int) -> Path:
    from flexip.data.video import write_video

    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(images):
        array = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        array[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = rng.integers(0, 255, 3)
        Image.fromarray(array).save(root / f"img{i:03d}.png")
        rows.append({"modality": "image", "image": f"img{i:03d}.png", "caption": f"a blob number {i}"})
    for i in range(videos):
        clip = []
        colour = rng.integers(0, 255, 3)
        for f in range(frames):
            frame = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
            x = (f * size) // (2 * frames)
            frame[size // 4 : size // 2, x : x + size // 4] = colour
            clip.append(frame)
        write_video(clip, root / f"clip{i:03d}.mp4", fps=8)
        rows.append({"modality": "video", "video": f"clip{i:03d}.mp4", "caption": f"a moving box {i}"})
    manifest = root / "manifest.jsonl"
    manifest.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return manifest


def timed_run(config) -> tuple[float, float]:
    """(samples/s over steps 2..N (step 1 is a warm-up), loss of the last step)."""
    from accelerate.state import AcceleratorState, GradientState

    from flexip.training.trainer import Trainer

    stamps: dict[int, float] = {}
    result = Trainer(config).train(on_step_end=lambda step, _: stamps.__setitem__(step, time.perf_counter()))
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    steps = config.optim.max_steps
    return (steps - 1) * config.optim.batch_size / (stamps[steps] - stamps[1]), result.losses[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--videos", type=int, default=32)
    parser.add_argument("--size", type=int, default=128, help="source image / video frame size in pixels")
    parser.add_argument("--frames", type=int, default=24, help="frames per clip")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for the toy models on a busy CPU)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not touch RESULTS.md")
    args = parser.parse_args()

    import torch

    from flexip.training.cache import build_cache_for_config
    from flexip.training.config import TrainConfig

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        manifest = write_dataset(root / "data", args.images, args.videos, args.size, args.frames)

        def config(name: str, cache: str | None) -> TrainConfig:
            return TrainConfig.from_dict(
                {
                    "model": {"base": "tiny-random"},
                    "data": {"manifest": str(manifest), "min_gap": 1, "max_gap": 8},
                    "optim": {"batch_size": args.batch_size, "max_steps": args.steps},
                    "runtime": {"device": "cpu"},
                    "logging": {
                        "output_dir": str(root / name),
                        "tensorboard": False,
                        "progress_bar": False,
                        "validate_every": 0,
                        "checkpoint_every": 10**9,
                        "log_every": 10**9,
                    },
                    "cache": {"path": cache},
                }
            )

        online, online_loss = timed_run(config("online", None))
        started = time.perf_counter()
        report = build_cache_for_config(config("build", str(root / "cache")), progress=False)
        build_seconds = time.perf_counter() - started
        cache_bytes = sum(p.stat().st_size for p in (root / "cache").iterdir())
        cached, cached_loss = timed_run(config("cached", str(root / "cache")))

    ratio = cached / online
    markdown = f"""## Feature cache: training throughput

`benchmarks/feature_cache.py`: the tiny-random stack (toy UNet, VAE, CLIP text/vision and DINOv2 built
from configs, 16 px training resolution), batch {args.batch_size}, {args.steps} steps per run (the first
is a warm-up and not timed), {args.images} PNG images and {args.videos} mp4 clips of {args.frames} frames at
{args.size}×{args.size} px, mix image 0.5 / video 0.5, `num_workers: 0`, {args.threads} torch thread(s), CPU.
Both runs in the same process with the same config; only `cache.path` differs.

| batches | samples/s |
|---|---|
| encoded on the fly (decode image/video, augment, VAE, text encoder, CLIP, DINO) | {online:.1f} |
| from the feature cache | {cached:.1f} |
| **speed-up** | **{ratio:.1f}×** |

Building the cache ({report.records} records × 1 draw, {cache_bytes / 1e6:.1f} MB, float32) took
{build_seconds:.1f} s. The two runs draw the same samples, timesteps, noise and γ, and their losses agree
(on-the-fly {online_loss:.4f}, cached {cached_loss:.4f} at the last step). With these toy models the cache
mostly saves file decoding and augmentation; the UNet forward/backward is the same with or without it.
Real-size encoders (SD 1.5 VAE, ViT-H/14, DINOv2-L) were not measured here. A cache freezes one
augmentation draw per record (`cache.draws: K` stores K draws, cycled by epoch).
"""
    print(markdown)
    if not args.no_write:
        print(f"wrote {write_section('feature_cache', markdown)}")


if __name__ == "__main__":
    main()
