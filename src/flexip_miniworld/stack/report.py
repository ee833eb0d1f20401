"""Figures of docs/miniworld.md from a build's WORKDIR: loss curves, autoencoder reconstructions and
base-model samples.

    python -m flexip_miniworld.stack.report runs/miniworld docs/img
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from PIL import Image

from flexip.atomic import atomic_path
from flexip_miniworld.dataset import load_jsonl

CURVES = ("autoencoder", "decoder", "clip", "unet", "unet_grow", "dino", "eval_clip", "eval_dino", "adapter")


def plot_losses(manifest: dict, out_png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [s for s in CURVES if manifest["stages"].get(s, {}).get("losses")]
    figure, axes = plt.subplots(1, len(stages), figsize=(2.6 * len(stages), 2.4))
    for axis, stage in zip(axes, stages):
        record = manifest["stages"][stage]
        steps, losses = zip(*record["losses"])
        axis.plot(steps, losses, lw=1)
        axis.set_title(f"{stage}\n{record['steps']} steps, {record['seconds'] / 60:.1f} min", fontsize=8)
        axis.set_xlabel("step", fontsize=7)
        axis.tick_params(labelsize=6)
        if stage in ("autoencoder", "decoder", "unet", "unet_grow", "adapter"):
            axis.set_yscale("log")
    figure.tight_layout()
    with atomic_path(out_png) as temporary:
        figure.savefig(temporary, dpi=110)
    plt.close(figure)
    return out_png


@torch.no_grad()
def reconstructions(work: Path, out_png: Path, count: int = 12) -> Path:
    """Held-out target renders (top), their reconstructions by the first autoencoder and, once the
    `decoder` stage has run, by the same encoder with the fine-tuned decoder (the shipped one)."""
    import numpy as np
    from diffusers import AutoencoderKL

    from flexip.visualization import make_grid

    data = Path(work) / "data"
    rows = load_jsonl(data / "heldout.jsonl")
    images = [Image.open(data / row["targets"][k]).convert("RGB") for row in rows[: count // 2] for k in (0, 6)]
    x = torch.from_numpy(np.stack([np.asarray(i) for i in images])).permute(0, 3, 1, 2).float() / 127.5 - 1
    rows, labels = [images], ["held-out render"]
    for stage, label in (("autoencoder", "autoencoder"), ("decoder", "fine-tuned decoder")):
        if not (Path(work) / stage / "model").is_dir():
            continue
        vae = AutoencoderKL.from_pretrained(Path(work) / stage / "model").eval()
        y = vae.decode(vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)
        rows.append([Image.fromarray(((v.permute(1, 2, 0).numpy() + 1) * 127.5).round().astype("uint8")) for v in y])
        labels.append(label)
    with atomic_path(out_png) as temporary:
        make_grid(rows, None, labels, cell=64).save(temporary)
    return out_png


@torch.no_grad()
def base_samples(work: Path, out_png: Path, steps: int = 20, guidance: float = 3.0) -> Path:
    """The base text-to-image model alone: one row per prompt, 6 samples (one generator, seed 0)."""
    from diffusers import StableDiffusionPipeline

    from flexip.visualization import make_grid

    pipe = StableDiffusionPipeline.from_pretrained(Path(work) / "base", safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    prompts = [
        "a blob in the snow",
        "a bot on the beach",
        "a red bird on the grass",
        "a fish underwater",
        "a spotted bug in the desert",
        "a mushroom in the forest, grayscale",
    ]
    rows = []
    for prompt in prompts:
        rows.append(pipe([prompt] * 6, num_inference_steps=steps, guidance_scale=guidance, generator=torch.Generator().manual_seed(0)).images)
    with atomic_path(out_png) as temporary:
        make_grid(rows, [f"sample {i + 1}" for i in range(6)], prompts, cell=64).save(temporary)
    return out_png


def main(work: str, out_dir: str) -> None:
    work_path, out = Path(work), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((work_path / "manifest.json").read_text())
    print(plot_losses(manifest, out / "miniworld_losses.png"))
    print(reconstructions(work_path, out / "miniworld_autoencoder.png"))
    print(base_samples(work_path, out / "miniworld_base_samples.png"))


if __name__ == "__main__":
    main(*sys.argv[1:3])
