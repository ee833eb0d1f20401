"""How much identity do the miniworld DINO encoders see across scenes? Calibration of encoder folders.

    .venv/bin/python benchmarks/encoder_identity.py --dino LABEL=FOLDER [--dino ...] [--data runs/miniworld/data]

For each DINOv2 folder, with the held-out identities of --data (never trained on): the mean cosine of
real-vs-real pairs (one identity, two background scenes) and real-vs-other pairs (two identities), and
identification (the share of true renders in background-only scenes whose own identity scores highest,
by mean cosine to each held-out identity's plain-backdrop references; chance = 1 / identities) — the numbers
`flexip miniworld evaluate` reports, from the same functions. Writes the `encoder_identity` section
of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from _results import write_section  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dino", action="append", required=True, help="LABEL=FOLDER of a Dinov2Model (repeatable)")
    parser.add_argument("--clip", default=None, help="a CLIPModel folder for the CLIP side (default: the shipped eval CLIP)")
    parser.add_argument("--data", type=Path, default=Path("runs/miniworld/data"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    from flexip.evaluation.backbones import load_clip_embedder, load_dino_embedder
    from flexip.presets import get_preset
    from flexip_miniworld.evaluate import calibration, heldout_rows

    heldout_rows(args.data, 0, 40)  # renders the held-out files if missing
    clip = load_clip_embedder(args.clip or str(get_preset("miniworld").folder / "eval" / "clip"))
    identities = sum(1 for line in (args.data / "heldout.jsonl").read_text().splitlines() if line.strip())
    lines = [
        "## Identity across scenes, per DINO encoder (`benchmarks/encoder_identity.py`)",
        "",
        f"Held-out identities of `{args.data}` ({identities}); identification chance {1 / identities:.3f}.",
        "",
        "| encoder | real-vs-real | real-vs-other | identification |",
        "|---|---|---|---|",
    ]
    for entry in args.dino:
        label, _, folder = entry.partition("=")
        if not folder:
            parser.error(f"--dino takes LABEL=FOLDER, got {entry!r}")
        result = calibration(args.data, clip, load_dino_embedder(folder))
        row = (result["real-vs-real"]["DINO-I"], result["real-vs-other"]["DINO-I"], result["identification"]["DINO-I"])
        print(label, json.dumps(row))
        lines.append(f"| {label} | {row[0]:.3f} | {row[1]:.3f} | {row[2]:.3f} |")
    print(write_section("encoder_identity", "\n".join(lines)))


if __name__ == "__main__":
    main()
