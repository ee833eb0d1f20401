"""`flexip demo` (what `make demo` runs): a γ sweep on the shipped offline preset, written as one grid PNG."""

from __future__ import annotations

import time
from pathlib import Path

import click

from flexip.cli.options import OUTPUT_FOLDER, SEED_RANGE
from flexip.devices import resolve_device


@click.command(help="Render reference | γ = 0 … 1 for a few subjects and prompts with the offline preset, write a grid PNG, print where it is.")
@click.option("--base", default=None, help="Preset whose demo to run (default: miniworld; tiny-random: random weights, for testing).")
@click.option("--adapter", default=None, help="Adapter folder (presets bring their own).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Denoising steps (default: the preset's).")
@click.option("--seed", type=SEED_RANGE, default=0, show_default=True)
@click.option("--out", "out_dir", type=OUTPUT_FOLDER, default="outputs/demo", show_default=True)
@click.option("--device", default="auto", show_default=True)
def demo(base, adapter, steps, seed, out_dir, device):
    import torch

    from flexip.data.images import save_image
    from flexip.pipelines import FlexIPPipeline
    from flexip.presets import DEFAULT_PRESET, get_preset
    from flexip.visualization import make_grid

    start = time.perf_counter()
    name = base or DEFAULT_PRESET
    setup = get_preset(name).demo()  # a preset's reference images and settings, shipped as data
    pipe = FlexIPPipeline.from_pretrained(name, adapter=adapter).to(resolve_device(device))
    gammas = [0.0, 0.25, 0.5, 0.75, 1.0]
    rows, labels = [], []
    for subject, references in setup.subjects.items():
        embeds = pipe.encode_reference(references)  # encoded once, reused for every prompt and γ
        result = pipe(
            setup.prompts,
            reference_embeds=embeds,
            gamma=gammas,
            num_inference_steps=steps or setup.steps,
            guidance_scale=setup.guidance,
            generator=torch.Generator().manual_seed(seed),
        )
        for p, prompt in enumerate(setup.prompts):
            rows.append([references[0], *result.images[p * len(gammas) : (p + 1) * len(gammas)]])
            labels.append(f"{subject}: {prompt}")
    grid = make_grid(rows, ["reference"] + [f"gamma = {g:.2f}" for g in gammas], labels)
    path = save_image(grid, Path(out_dir) / "demo_grid.png").resolve()
    click.echo(setup.note)
    click.echo(f"{len(setup.subjects)} subjects × {len(setup.prompts)} prompts × {len(gammas)} γ values in {time.perf_counter() - start:.1f} s")
    click.echo(f"grid: {path}")
