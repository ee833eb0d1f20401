"""Does a preset's adapter use its reference? Denoising loss with the right, a wrong, and no reference.

    .venv/bin/python benchmarks/reference_use.py [--preset DIR ...] [--data runs/miniworld/data] [--samples 48]

On `--samples` image rows of the training manifest (reference = the target image itself, so a perfect
adapter could lower the loss a lot), the base model's own loss (v-prediction MSE, `flexip.training.
objective`) at t ∈ {100, 300, 500, 700, 900} × 4 noises, the same noises for every condition:

    matched   adapter at γ = 1 with each sample's own image as reference
    shuffled  adapter at γ = 1 with another sample's image
    base      adapter removed (the frozen base model)

matched < base means the adapter carries information from the reference into the denoiser;
shuffled > base means the UNet follows the reference even where it contradicts the caption.
Writes the `reference_use` section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from _results import write_section  # noqa: E402

TIMESTEPS = (100, 300, 500, 700, 900)


@torch.no_grad()
def measure(preset: Path, data: Path, samples: int, noises: int = 4) -> dict:
    from PIL import Image

    from flexip.miniworld.dataset import load_jsonl
    from flexip.models.adapter import FlexIPAdapter
    from flexip.presets import load_components
    from flexip.training.features import FeatureEncoder
    from flexip.training.model import FlexIPTrainingModel
    from flexip.training.objective import add_noise, noise_schedule, per_sample_mse, prediction_target

    components = load_components(str(preset / "base"), str(preset / "image_encoder"), str(preset / "dino"))
    rows = load_jsonl(data / "manifest.jsonl")
    rows = [row for row in rows if row.get("modality") == "image"][::97][:samples]
    images = [Image.open(data / row["image"]).convert("RGB") for row in rows]
    encoder = FeatureEncoder(components, images[0].size[0])
    latents, text = encoder.encode_targets(images), encoder.encode_text([row["caption"] for row in rows])
    clip_embeds, dino_tokens = encoder.encode_references(images)
    alphas_cumprod, prediction_type = noise_schedule(components["scheduler"].config)
    model = FlexIPTrainingModel(components["unet"], FlexIPAdapter.from_pretrained(str(preset / "adapter")).eval()).eval()
    other = torch.roll(torch.arange(len(rows)), 1)
    ones = torch.ones(len(rows))
    generator = torch.Generator().manual_seed(0)
    losses = {"matched": [], "shuffled": [], "base": []}
    for _ in range(noises):
        for value in TIMESTEPS:
            t = torch.full((len(rows),), value)
            noise = torch.randn(latents.shape, generator=generator)
            noisy, target = add_noise(alphas_cumprod, latents, noise, t), prediction_target(prediction_type, alphas_cumprod, latents, noise, t)
            losses["matched"].append(per_sample_mse(model(noisy, t, text, clip_embeds, dino_tokens, ones), target).mean())
            losses["shuffled"].append(per_sample_mse(model(noisy, t, text, clip_embeds[other], dino_tokens[other], ones), target).mean())
            model.detach_adapter()
            losses["base"].append(per_sample_mse(components["unet"](noisy, t, encoder_hidden_states=text).sample, target).mean())
            model.attach_adapter()
    return {name: float(torch.stack(values).mean()) for name, values in losses.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", action="append", help="[LABEL=]preset folder, repeatable (default: the shipped miniworld preset)")
    parser.add_argument("--data", type=Path, default=Path("runs/miniworld/data"), help="the miniworld dataset the preset was trained on")
    parser.add_argument("--samples", type=int, default=48)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not (args.data / "manifest.jsonl").exists():
        parser.error(f"{args.data}/manifest.jsonl not found: build the data first (`flexip miniworld make-data {args.data}`)")
    from flexip.presets import miniworld_dir

    presets = [entry.partition("=")[::2] if "=" in entry else (entry, entry) for entry in args.preset or [str(miniworld_dir())]]
    lines = ["## Does the adapter use its reference? (`benchmarks/reference_use.py`)", "",
             f"Mean v-prediction loss on {args.samples} training image samples (reference = target), t ∈ {list(TIMESTEPS)} × 4 noises, "
             "the same noises in every column. matched < base: the adapter brings the reference into the denoiser.", "",
             "| preset | matched | shuffled | base (no adapter) | matched / base |", "|---|---|---|---|---|"]
    for label, folder in presets:
        result = measure(Path(folder), args.data, args.samples)
        print(label, result)
        lines.append(f"| {label} | {result['matched']:.4f} | {result['shuffled']:.4f} | {result['base']:.4f} | {result['matched'] / result['base']:.3f} |")
    print(write_section("reference_use", "\n".join(lines)))


if __name__ == "__main__":
    main()
