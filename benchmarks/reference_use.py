"""Does a preset's adapter use its reference? Denoising loss with the right, a wrong, and no reference.

    .venv/bin/python benchmarks/reference_use.py [--preset DIR ...] [--data runs/miniworld/data] [--samples 48]

On `--samples` image rows of the training manifest, the base model's own loss (v-prediction MSE,
`flexip.training.objective`) at t ∈ {100, 300, 500, 700, 900} × 4 noises, the same noises for every
condition:

    matched   adapter at γ = 1 with each sample's own image as reference (unmasked)
    shuffled  adapter at γ = 1 with another sample's image
    same id.  adapter at γ = 1 with *another* image of the sample's subject, masked to a plain 210-grey
              backdrop (needs data/manifest_masked.jsonl): identity only, in the form adapters
              trained with masks and `data.subject_references` see
    other id. the same for another sample's subject
    base      adapter removed (the frozen base model)

matched < base means the adapter carries information from the reference into the denoiser;
shuffled > base means the UNet follows the reference even where it contradicts the caption;
same id. < other id. means what it carries is the subject's identity.
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

    from flexip.loading import load_components
    from flexip.models.adapter import FlexIPAdapter
    from flexip.training.features import FeatureEncoder
    from flexip.training.model import FlexIPTrainingModel
    from flexip.training.objective import add_noise, noise_schedule, per_sample_mse, prediction_target
    from flexip_miniworld.dataset import load_jsonl

    components = load_components(str(preset / "base"), str(preset / "image_encoder"), str(preset / "dino"))
    everything = [row for row in load_jsonl(data / "manifest_masked.jsonl") if row.get("modality") == "image"]
    rows = everything[::97][:samples]
    images = [Image.open(data / row["image"]).convert("RGB") for row in rows]
    encoder = FeatureEncoder(components, images[0].size[0])
    latents, text = encoder.encode_targets(images), encoder.encode_text([row["caption"] for row in rows])
    clip_embeds, dino_tokens = encoder.encode_references(images)
    same_clip, same_dino = encoder.encode_references([same_subject_reference(data, row, everything) for row in rows])
    alphas_cumprod, prediction_type = noise_schedule(components["scheduler"].config)
    model = FlexIPTrainingModel(components["unet"], FlexIPAdapter.from_pretrained(str(preset / "adapter")).eval()).eval()
    other = torch.roll(torch.arange(len(rows)), 1)
    ones = torch.ones(len(rows))
    generator = torch.Generator().manual_seed(0)
    losses = {"matched": [], "shuffled": [], "same id.": [], "other id.": [], "base": []}
    for _ in range(noises):
        for value in TIMESTEPS:
            t = torch.full((len(rows),), value)
            noise = torch.randn(latents.shape, generator=generator)
            noisy, target = (
                add_noise(alphas_cumprod, latents, noise, t),
                prediction_target(prediction_type, alphas_cumprod, latents, noise, t),
            )
            losses["matched"].append(per_sample_mse(model(noisy, t, text, clip_embeds, dino_tokens, ones), target).mean())
            losses["shuffled"].append(per_sample_mse(model(noisy, t, text, clip_embeds[other], dino_tokens[other], ones), target).mean())
            losses["same id."].append(per_sample_mse(model(noisy, t, text, same_clip, same_dino, ones), target).mean())
            losses["other id."].append(per_sample_mse(model(noisy, t, text, same_clip[other], same_dino[other], ones), target).mean())
            model.detach_adapter()
            losses["base"].append(per_sample_mse(components["unet"](noisy, t, encoder_hidden_states=text).sample, target).mean())
            model.attach_adapter()
    return {name: float(torch.stack(values).mean()) for name, values in losses.items()}


def same_subject_reference(data: Path, row: dict, rows: list[dict]):
    """The next image row of `row`'s subject (wrapping around), its subject on a plain 210-grey backdrop."""
    import random
    from dataclasses import replace

    from PIL import Image

    from flexip.data.augment import NO_AUGMENT, augment_reference

    mine = [other for other in rows if other["subject"] == row["subject"]]
    partner = mine[(mine.index(row) + 1) % len(mine)]
    plain = replace(NO_AUGMENT, background=(210, 210, 210))
    return augment_reference(Image.open(data / partner["image"]).convert("RGB"), random.Random(0), plain, Image.open(data / partner["mask"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", action="append", help="[LABEL=]preset folder, repeatable (default: the shipped miniworld preset)")
    parser.add_argument("--data", type=Path, default=Path("runs/miniworld/data"), help="the miniworld dataset the preset was trained on")
    parser.add_argument("--samples", type=int, default=48)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not (args.data / "manifest_masked.jsonl").exists():
        parser.error(
            f"{args.data}/manifest_masked.jsonl not found: build the data and the masks first "
            f"(`flexip miniworld build {args.data.parent} --stages data`, then the adapter stage writes them)"
        )
    from flexip.presets import get_preset

    presets = [entry.partition("=")[::2] if "=" in entry else (entry, entry) for entry in args.preset or [str(get_preset("miniworld").folder)]]
    lines = [
        "## Does the adapter use its reference? (`benchmarks/reference_use.py`)",
        "",
        f"Mean v-prediction loss on {args.samples} training image samples, t ∈ {list(TIMESTEPS)} × 4 noises, the same noises "
        "in every column. *matched*: the target itself as reference; *shuffled*: another sample's image; *same id.*: another "
        "image of the sample's subject, masked to a plain backdrop; *other id.*: the same for another sample's subject. "
        "matched < base: the adapter brings the reference into the denoiser; same id. < other id.: what it brings is identity.",
        "",
        "| preset | matched | shuffled | same id. | other id. | base (no adapter) | matched / base | same id. / base | other id. / base |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, folder in presets:
        result = measure(Path(folder), args.data, args.samples)
        print(label, result)
        values = " | ".join(f"{result[k]:.4f}" for k in ("matched", "shuffled", "same id.", "other id.", "base"))
        ratios = " | ".join(f"{result[k] / result['base']:.3f}" for k in ("matched", "same id.", "other id."))
        lines.append(f"| {label} | {values} | {ratios} |")
    print(write_section("reference_use", "\n".join(lines)))


if __name__ == "__main__":
    main()
