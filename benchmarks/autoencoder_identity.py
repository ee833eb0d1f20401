"""How much identity survives an autoencoder? The ceiling for every image the base model decodes.

    .venv/bin/python benchmarks/autoencoder_identity.py --vae LABEL=FOLDER [--vae ...] [--data runs/miniworld/data]

For each AutoencoderKL folder: encode + decode (latent mean) the 240 true renders of the held-out
identities in background-only scenes, then report PSNR against the renders and the identification
that `flexip miniworld evaluate` reports (the share of images whose own identity scores highest, by
mean cosine to every held-out identity's references; chance = 1 / identities), with the shipped
evaluation encoders, for the renders themselves and for their reconstructions. A generated image
cannot carry more identity than the decoder can draw. Writes the `autoencoder_identity` section of
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

from _results import write_section  # noqa: E402


def to_images(batch: torch.Tensor) -> list[Image.Image]:
    array = ((batch.clamp(-1, 1).permute(0, 2, 3, 1) + 1) * 127.5).round().byte().numpy()
    return [Image.fromarray(a) for a in array]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vae", action="append", required=True, help="LABEL=FOLDER of an AutoencoderKL (repeatable)")
    parser.add_argument("--data", type=Path, default=Path("runs/miniworld/data"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from diffusers import AutoencoderKL

    from flexip.evaluation.backbones import load_clip_embedder, load_dino_embedder
    from flexip.presets import get_preset
    from flexip_miniworld.dataset import load_jsonl
    from flexip_miniworld.evaluate import heldout_rows, identification_accuracy, identification_set

    heldout_rows(args.data, 0, 40)  # renders the held-out files if missing
    heldout = load_jsonl(args.data / "heldout.jsonl")
    references, scenes, subjects = identification_set(args.data, heldout)
    x = torch.from_numpy(np.stack([np.asarray(s) for s in scenes])).permute(0, 3, 1, 2).float() / 127.5 - 1
    encoders = {
        "DINO": load_dino_embedder(str(get_preset("miniworld").folder / "eval" / "dino")),
        "CLIP": load_clip_embedder(str(get_preset("miniworld").folder / "eval" / "clip")),
    }
    reference_sets = {name: [model.embed_images(r) for r in references] for name, model in encoders.items()}

    def identify(images):
        return {name: identification_accuracy(model.embed_images(images), subjects, reference_sets[name]) for name, model in encoders.items()}

    truth = identify(scenes)
    lines = [
        "## Identity through the autoencoder (`benchmarks/autoencoder_identity.py`)",
        "",
        f"{len(scenes)} true renders of {len(heldout)} held-out identities (background-only scenes), encoded and decoded; "
        f"identification with the evaluation encoders, chance {1 / len(heldout):.3f}.",
        "",
        "| images | PSNR (dB) | DINO id. | CLIP id. |",
        "|---|---|---|---|",
        f"| true renders | — | {truth['DINO']:.3f} | {truth['CLIP']:.3f} |",
    ]
    for entry in args.vae:
        label, _, folder = entry.partition("=")
        if not folder:
            parser.error(f"--vae takes LABEL=FOLDER, got {entry!r}")
        vae = AutoencoderKL.from_pretrained(folder).eval()
        with torch.no_grad():
            decoded = torch.cat([vae.decode(vae.encode(chunk).latent_dist.mean).sample for chunk in x.split(120)]).clamp(-1, 1)
        psnr = float(-10 * torch.log10(((decoded - x) / 2).pow(2).mean()))
        found = identify(to_images(decoded))
        print(label, f"PSNR {psnr:.2f}", json.dumps(found))
        lines.append(f"| reconstructed by {label} | {psnr:.2f} | {found['DINO']:.3f} | {found['CLIP']:.3f} |")
    print(write_section("autoencoder_identity", "\n".join(lines)))


if __name__ == "__main__":
    main()
