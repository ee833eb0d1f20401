"""How much identity reaches each FlexIP branch? Identification by what the branches read.

    .venv/bin/python benchmarks/branch_inputs.py [--preset DIR] [--data runs/evidence/data]

The personalization branch reads only CLIP's global image embedding c_cls (SPEC §2: 4 visual tokens from it);
the preservation branch reads c_cls and the DINO patch tokens F_dino. If c_cls hardly tells the identities apart,
no training of the personalization branch can make γ = 0 keep the subject ("both ends", issue 14), and the lever is
what that branch reads. For the held-out identities of --data (never trained on): identification of the true
renders in background-only scenes among every identity's plain-backdrop references (the evaluation's protocol,
`flexip_miniworld.evaluate.identification_accuracy`; chance 1 / identities), with each input embedded by the
preset's own reference encoder (`FlexIPPipeline.reference_encoder`, the pipeline's centre crop): c_cls, the mean of
F_dino's patch tokens, and for scale the evaluation DINO's CLS token. Writes the `branch_inputs` section of
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from _results import write_section  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="miniworld", help="preset name or folder [default: miniworld]")
    parser.add_argument("--data", type=Path, default=Path("runs/evidence/data"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    from flexip.evaluation.backbones import load_dino_embedder
    from flexip.pipelines import FlexIPPipeline
    from flexip.presets import get_preset, is_preset
    from flexip_miniworld.evaluate import heldout_rows, identification_accuracy, identification_set
    from flexip_miniworld.files import load_jsonl

    heldout_rows(args.data, 0, 40)  # renders the held-out files if missing
    heldout = load_jsonl(args.data / "heldout.jsonl")
    references, scenes, subjects = identification_set(args.data, heldout)
    pipe = FlexIPPipeline.from_pretrained(args.preset)
    encoder = pipe.reference_encoder("mean", "center_crop")
    folder = get_preset(args.preset).folder if is_preset(args.preset) else Path(args.preset)

    def embedded(images):
        each = encoder.encode_each(images)
        return {
            "c_cls (personalization, preservation's global tokens)": each.clip_embeds,
            "F_dino, mean of patch tokens (preservation)": each.dino_tokens.mean(dim=1),
        }

    scene_embeds = embedded(scenes)
    reference_embeds = [embedded(r) for r in references]
    evaluation_dino = load_dino_embedder(str(folder / "eval" / "dino"))
    rows = {name: identification_accuracy(scene_embeds[name], subjects, [r[name] for r in reference_embeds]) for name in scene_embeds}
    rows["evaluation DINO, CLS (the metric, for scale)"] = identification_accuracy(
        evaluation_dino.embed_images(scenes), subjects, [evaluation_dino.embed_images(r) for r in references]
    )
    chance = 1.0 / len(heldout)
    lines = [
        "## Identity in what each branch reads (`benchmarks/branch_inputs.py`)",
        "",
        f"Preset `{args.preset}`; {len(scenes)} true renders of the {len(heldout)} held-out identities of `{args.data}` in "
        f"background-only scenes, identified among every identity's plain-backdrop references (chance {chance:.3f}), each "
        "input embedded by the preset's own reference encoder.",
        "",
        "| input | identification | × chance |",
        "|---|---|---|",
        *(f"| {name} | {value:.3f} | {value / chance:.1f} |" for name, value in rows.items()),
    ]
    for name, value in rows.items():
        print(f"{name}: {value:.3f}")
    print(write_section("branch_inputs", "\n".join(lines)))


if __name__ == "__main__":
    main()
