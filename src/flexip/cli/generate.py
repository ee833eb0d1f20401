"""`flexip generate`: reference image(s) + prompt(s) → images, and a labelled grid for a γ sweep."""

from __future__ import annotations

import re
from pathlib import Path

import click

from flexip.cli.options import NON_NEGATIVE, OUTPUT_FOLDER, SEED_RANGE, VariadicOptionsCommand
from flexip.devices import resolve_device
from flexip.gate import DEFAULT_GAMMA, GateSettings, parse_gamma


def _slug(text: str, length: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:length] or "prompt"


@click.command(
    cls=VariadicOptionsCommand,
    variadic=("--reference", "--gamma", "--prompt"),
    help="Generate images of the subject in REFERENCE following PROMPT. Several --gamma values render a sweep "
    "in one batched pass (same noise for every γ) and write a labelled grid.\n\n"
    "Example: flexip generate --reference dog.jpg --prompt 'a dog in the snow' --gamma 0.2 0.5 0.8",
)
@click.option("--reference", "references", multiple=True, metavar="IMG [IMG...]", help="Reference image(s) of ONE subject (several are averaged).")
@click.option("--prompt", "prompts", multiple=True, metavar="TEXT [TEXT...]", required=True, help="Prompt(s); quote each one.")
@click.option(
    "--gamma",
    "gammas",
    multiple=True,
    metavar="G [G...]",
    help=f"Preservation γ in [0, 1] (1 = keep identity, 0 = follow the text); several numbers (0 0.5 1 or 0,0.5,1) = "
    f"a sweep. Also START:END (a schedule over the steps) or down=0.3,mid=0.5,up=0.8 (per block). Default {DEFAULT_GAMMA}.",
)
@click.option(
    "--adapter-scale", type=NON_NEGATIVE, default=1.0, show_default=True, help="Global strength s of both adapter branches (0 = base model)."
)
@click.option("--w-pres", type=NON_NEGATIVE, default=None, help="Preservation weight, set independently (with --w-pers, instead of --gamma).")
@click.option("--w-pers", type=NON_NEGATIVE, default=None, help="Personalization weight, set independently (with --w-pres).")
@click.option("--negative-prompt", default=None, help="Negative prompt for classifier-free guidance.")
@click.option("--steps", type=click.IntRange(min=1), default=30, show_default=True, help="Denoising steps.")
@click.option("--guidance", type=NON_NEGATIVE, default=7.5, show_default=True, help="Classifier-free guidance scale.")
@click.option("--images-per-prompt", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--seed", type=SEED_RANGE, default=0, show_default=True)
@click.option(
    "--base",
    default=None,
    help="Base model: a diffusers SD1.5-family checkpoint (folder or hub id) or a preset name. Default: the shipped preset.",
)
@click.option("--adapter", default=None, help="FlexIP adapter folder or hub id (presets bring their own).")
@click.option("--multi-reference", type=click.Choice(["mean", "concat"]), default="mean", show_default=True, help="How several references combine.")
@click.option(
    "--fit",
    type=click.Choice(["center_crop", "pad"]),
    default="center_crop",
    show_default=True,
    help="Non-square references: crop the centre or pad to square.",
)
@click.option("--out", "out_dir", type=OUTPUT_FOLDER, default="outputs", show_default=True, help="Output folder.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, mps ...")
@click.option("--allow-pickle", is_flag=True, help="Allow a pickle (.bin) adapter checkpoint (loaded with weights_only=True).")
def generate(
    references,
    prompts,
    gammas,
    adapter_scale,
    w_pres,
    w_pers,
    negative_prompt,
    steps,
    guidance,
    images_per_prompt,
    seed,
    base,
    adapter,
    multi_reference,
    fit,
    out_dir,
    device,
    allow_pickle,
):
    import torch

    from flexip.data.images import load_image, save_image
    from flexip.errors import FlexIPInputError
    from flexip.pipelines import FlexIPPipeline
    from flexip.presets import DEFAULT_PRESET, photo_note
    from flexip.visualization import make_grid

    # every argument is checked before any model loads: numbers, seed and --out by their option types, the gate
    # (γ, or both branch weights, and the scale) and every reference image here
    if gammas and (w_pres is not None or w_pers is not None):
        raise FlexIPInputError("use either --gamma or --w-pres/--w-pers, not both")
    gate = GateSettings(gamma=parse_gamma(gammas) if gammas else None, adapter_scale=adapter_scale, w_pres=w_pres, w_pers=w_pers)
    if not references and not gate.is_off:
        raise FlexIPInputError("give at least one --reference image (or --adapter-scale 0 for the base model alone)")
    reference_images = [load_image(path, fit=fit) for path in references]
    device = resolve_device(device)
    pipe = FlexIPPipeline.from_pretrained(base or DEFAULT_PRESET, adapter=adapter, allow_pickle=allow_pickle).to(device)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    result = pipe(
        list(prompts),
        reference_images=reference_images or None,
        gamma=gate.gamma,
        adapter_scale=gate.adapter_scale,
        w_pres=gate.w_pres,
        w_pers=gate.w_pers,
        negative_prompt=negative_prompt,
        num_inference_steps=steps,
        guidance_scale=guidance,
        generator=generator,
        num_images_per_prompt=images_per_prompt,
        multi_reference=multi_reference,
    )
    out = Path(out_dir)
    written, index = [], 0
    rows, row_labels = [], []
    per_prompt = len(result.images) // len(prompts)
    for p, prompt in enumerate(prompts):
        for k in range(images_per_prompt):
            row_labels.append(prompt if images_per_prompt == 1 else f"{prompt} #{k + 1}")
            rows.append([reference_images[0] if reference_images else None])
        for i in range(per_prompt):
            image, value = result.images[index], result.gammas[index]
            index += 1
            label = f"g{value:.2f}" if value is not None else (_slug(",".join(gammas), 30) if gammas else f"wp{w_pres}-wq{w_pers}")
            written.append(save_image(image, out / f"{p:02d}_{_slug(prompt)}_{label}_{i % images_per_prompt}.png"))
            rows[p * images_per_prompt + i % images_per_prompt].append(image)
    if per_prompt > images_per_prompt or len(prompts) > 1:  # a sweep (several columns) or several prompts
        labels = ["reference"] + [f"gamma = {g:.2f}" if g is not None else "" for g in result.gammas[:per_prompt:images_per_prompt]]
        written.append(save_image(make_grid(rows, labels, row_labels), out / "grid.png"))
    click.echo(f"wrote {len(written)} files to {out.resolve()}")
    for path in written:
        click.echo(f"  {path}")
    if note := photo_note(base or DEFAULT_PRESET, reference_images):  # a photo on a miniature preset: the studio's note, once
        click.echo(f"note: {note}", err=True)
