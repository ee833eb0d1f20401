"""Which prompts pay for the adapter, and at which γ? Evaluation CLIP-T per test prompt.

    .venv/bin/python benchmarks/clip_t_by_prompt.py [--preset DIR] [--data runs/miniworld/data] [--subjects 12]

For the first `--subjects` held-out identities and *all* 12 of their test prompts (six background
changes, then colour, pattern + background, shape, style + background, layout, combined), the
evaluation CLIP's CLIP-T (`flexip.evaluation.metrics.clip_t`) of the base model without reference, of
FlexIP at γ ∈ {0, 0.5, 1} and of the true render, with the same settings as `flexip miniworld
evaluate` (20 DDIM steps, guidance 3, one noise per identity shared by every condition). Prompt k is
the k-th test prompt of every identity (the row shows identity 0's wording). Writes the
`clip_t_by_prompt` section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from _results import write_section  # noqa: E402

GAMMAS = (0.0, 0.5, 1.0)


@torch.no_grad()
def measure(preset: Path, data: Path, subjects: int) -> tuple[list[str], dict[str, list[list[float]]]]:
    from flexip.evaluation import metrics as M
    from flexip.evaluation.backbones import load_clip_embedder
    from flexip_miniworld.dataset import load_jsonl
    from flexip_miniworld.dials import FlexIPDial
    from flexip_miniworld.evaluate import render_conditions

    dial = FlexIPDial(preset, None, "cpu")
    clip = load_clip_embedder(str(preset / "eval" / "clip"))
    rows = load_jsonl(data / "heldout.jsonl")[:subjects]
    columns = {"base": "base", **{f"gamma={g}": f"γ = {g}" for g in GAMMAS}, "real render": "true render"}
    scores = {c: [[] for _ in rows[0]["prompts"]] for c in columns.values()}
    for j, row in enumerate(rows):
        # the same generation as `flexip miniworld evaluate` (identity j's noise: seed j), on all 12 prompts
        _, texts, images = render_conditions(dial, data, row, list(range(len(row["prompts"]))), GAMMAS, 20, 3.0, j)
        text_embeds = clip.embed_texts(texts)
        for condition, column in columns.items():
            for k, value in enumerate(M.clip_t(clip.embed_images(images[condition]), text_embeds).tolist()):
                scores[column][k].append(value)
        print(f"{j + 1}/{len(rows)} identities", flush=True)
    return rows[0]["prompts"], scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", type=Path, default=None, help="preset folder (default: the shipped miniworld preset)")
    parser.add_argument("--data", type=Path, default=Path("runs/miniworld/data"), help="miniworld data with heldout.jsonl")
    parser.add_argument("--subjects", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not (args.data / "heldout.jsonl").exists():
        parser.error(f"{args.data}/heldout.jsonl not found: `flexip miniworld make-data {args.data}` writes it")
    from flexip.paths import portable_path
    from flexip.presets import get_preset

    preset = args.preset or get_preset("miniworld").folder
    prompts, scores = measure(Path(preset), args.data, args.subjects)
    columns = list(scores)
    lines = [
        "## Evaluation CLIP-T per test prompt (`benchmarks/clip_t_by_prompt.py`)",
        "",
        f"Preset `{portable_path(preset)}`; the first {args.subjects} held-out identities × all 12 test prompts, 20 DDIM steps, guidance 3, "
        "one noise per identity shared by every column. Prompt k is every identity's k-th test prompt (identity 0's wording shown).",
        "",
        "| k | prompt (identity 0) | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    for k, prompt in enumerate(prompts):
        lines.append(f"| {k} | {prompt} | " + " | ".join(f"{mean(scores[c][k]):.3f}" for c in columns) + " |")
    lines.append("| | **all** | " + " | ".join(f"**{mean([v for row in scores[c] for v in row]):.3f}**" for c in columns) + " |")
    print("\n".join(lines))
    print(write_section("clip_t_by_prompt", "\n".join(lines)))


if __name__ == "__main__":
    main()
