"""What does the γ curve look like before any training? The miniworld evaluation of a fresh adapter.

    .venv/bin/python benchmarks/untrained_adapter.py [--preset DIR] [--data runs/miniworld/data] [--subjects 20]

Builds two untrained adapters on the preset's base UNet, one per `model.personalization_init`
(`copy`: V'_pers copied from the text V, SPEC §1; `zero`: the personalization branch silent), and runs
`flexip miniworld evaluate` (same subjects, prompts, noise, steps and guidance) on each and on the
preset's trained adapter. Writes CLIP-T and DINO identification against γ to the `untrained_adapter`
section of benchmarks/RESULTS.md. With `copy`, C_pers = T at initialisation, so γ = 0 runs the text
cross-attention twice: whatever that costs is in the curve before training.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from _results import write_section  # noqa: E402

GAMMA_KEYS = ("gamma=0.0", "gamma=0.25", "gamma=0.5", "gamma=0.75", "gamma=1.0")


def fresh_preset(preset: Path, folder: Path, init: str, seed: int = 0) -> Path:
    """`folder` with links to the preset's parts and the adapter `flexip train` would start from: the
    preset adapter's sizes and encoders, `model.personalization_init = init`, built by `build_adapter`."""
    from flexip.loading import load_components
    from flexip.models.adapter import FlexIPAdapter
    from flexip.training.components import build_adapter
    from flexip.training.config import ADAPTER_OVERRIDES, ModelConfig

    folder.mkdir(parents=True)
    for part in preset.iterdir():
        if part.name != "adapter":
            (folder / part.name).symlink_to(part.resolve())
    trained = FlexIPAdapter.from_pretrained(str(preset / "adapter")).config
    model = ModelConfig(
        base=str(preset / "base"),
        image_encoder=trained.image_encoder,
        dino_encoder=trained.dino_encoder,
        adapter={key: trained[key] for key in ADAPTER_OVERRIDES},
        personalization_init=init,
    )
    components = load_components(str(preset / "base"), str(preset / "image_encoder"), str(preset / "dino"))
    build_adapter(model, components, seed).save_pretrained(str(folder / "adapter"))
    return folder


def trained_label(preset: Path) -> str:
    """Names the trained adapter by what its preset's manifest records (its row stays true after a new ship)."""
    import json

    record = json.loads((Path(preset) / "manifest.json").read_text()).get("stages", {}).get("adapter", {})
    return f"trained preset (adapter seed {record.get('seed', '?')}, {record.get('steps', '?')} steps)"


def main() -> None:
    from flexip.paths import portable_path
    from flexip.presets import get_preset
    from flexip_miniworld.evaluate import evaluate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", type=Path, default=None, help="preset folder (default: the shipped miniworld preset)")
    parser.add_argument("--data", type=Path, default=Path("runs/miniworld/data"), help="miniworld data with heldout.jsonl")
    parser.add_argument("--subjects", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    preset = args.preset or get_preset("miniworld").folder
    rows = {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        trained = trained_label(preset)
        for label, init in (("untrained, copy (SPEC §1)", "copy"), ("untrained, zero", "zero"), (trained, None)):
            folder = preset if init is None else fresh_preset(preset, scratch / init, init)
            result = evaluate(folder, args.data, scratch / f"out_{init}", subjects=args.subjects, log=lambda message: None)
            rows[label] = result["scores"]
            print(label, [round(result["scores"][k]["CLIP-T"], 4) for k in GAMMA_KEYS], flush=True)
    base = next(iter(rows.values()))["base"]
    lines = [
        "## A fresh adapter's γ curve (`benchmarks/untrained_adapter.py`)",
        "",
        f"Preset `{portable_path(preset)}`; `flexip miniworld evaluate` ({args.subjects} held-out identities × 8 prompts, 20 DDIM "
        "steps, guidance 3) on two untrained adapters (`model.personalization_init` copy / zero) and the trained one. "
        f"Base model without reference: CLIP-T {base['CLIP-T']:.4f}, DINO id. {base['DINO-I identification']:.3f}.",
        "",
        "| adapter | CLIP-T γ = 0 | 0.25 | 0.5 | 0.75 | 1 | DINO id. γ = 0 | 1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, scores in rows.items():
        clip_t = " | ".join(f"{scores[k]['CLIP-T']:.4f}" for k in GAMMA_KEYS)
        lines.append(
            f"| {label} | {clip_t} | {scores['gamma=0.0']['DINO-I identification']:.3f} | {scores['gamma=1.0']['DINO-I identification']:.3f} |"
        )
    print(write_section("untrained_adapter", "\n".join(lines)))


if __name__ == "__main__":
    main()
