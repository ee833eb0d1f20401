"""`flexip miniworld`: the procedural world the miniature stack is trained and evaluated on.

flexip miniworld make-data data/miniworld --images 20000 --videos 1000 --multiview 500
flexip miniworld preview docs/img/miniworld_world.png --rows 12
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import click

from flexip.atomic import atomic_path
from flexip.errors import FlexIPInputError


@click.group("miniworld")
def miniworld_group() -> None:
    """The miniworld: procedural subjects and captioned scenes (images, videos, multi-view captures)."""


@miniworld_group.command("make-data")
@click.argument("out_dir")
@click.option("--images", default=20000, show_default=True, help="Captioned training images.")
@click.option("--videos", default=1000, show_default=True, help="Training video clips (mp4).")
@click.option("--multiview", default=500, show_default=True, help="Training multi-view captures.")
@click.option("--size", default=32, show_default=True, help="Image side in pixels (even).")
@click.option("--seed", default=0, show_default=True, help="World seed: identities, scenes, everything.")
@click.option("--identities", default=500, show_default=True, help="Training identities.")
@click.option("--heldout", default=60, show_default=True, help="Held-out identities (never in the manifest).")
@click.option("--frames", default=24, show_default=True, help="Frames per video clip.")
@click.option("--views", default=8, show_default=True, help="Views per multi-view capture.")
@click.option("--fps", default=8, show_default=True, help="Frame rate written into the mp4 files.")
@click.option("--codec", default="libx264", show_default=True, help="Video codec: libx264 or mpeg4.")
@click.option("--supersample", default=4, show_default=True, help="Render at this many times the size, then LANCZOS.")
@click.option("--workers", default=None, type=int, help="Worker processes [default: up to 2 CPU cores].")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def make_data(out_dir, images, videos, multiview, size, seed, identities, heldout, frames, views, fps, codec, supersample, workers, quiet):
    """Write a miniworld dataset to OUT_DIR: manifest.jsonl (training rows), heldout.jsonl (held-out
    identities with references and test prompts), pairs.jsonl (calibration pairs), identities.jsonl
    and world.json. Re-running completes an interrupted run; higher counts extend the dataset."""
    from flexip_miniworld.dataset import WorldConfig, make_dataset

    config = WorldConfig(
        seed=seed,
        size=size,
        supersample=supersample,
        identities=identities,
        heldout=heldout,
        frames=frames,
        views=views,
        fps=fps,
        codec=codec,
    )
    if workers is None:
        workers = max(1, min(2, os.cpu_count() or 1))
    start = time.perf_counter()
    summary = make_dataset(out_dir, config, images=images, videos=videos, multiview=multiview, workers=workers, progress=not quiet)
    seconds = time.perf_counter() - start
    done = summary["rendered_now"]
    click.echo(
        f"wrote {Path(out_dir) / 'manifest.jsonl'}: {images} images, {videos} videos, {multiview} multi-view captures; "
        f"{heldout} held-out identities in heldout.jsonl; rendered {done['frames']} frames in {seconds:.1f} s"
    )
    click.echo(json.dumps(summary["counts"]))


@miniworld_group.command("preview")
@click.argument("out_png")
@click.option("--rows", default=12, show_default=True, help="Identities to show (one row each).")
@click.option("--split", default="train", show_default=True, help="train or heldout.")
@click.option("--size", default=32, show_default=True, help="Render size in pixels.")
@click.option("--zoom", default=4, show_default=True, help="Nearest-neighbour enlargement of each render.")
@click.option("--seed", default=0, show_default=True, help="World seed.")
def preview(out_png, rows, split, size, zoom, seed):
    """Write a contact sheet OUT_PNG: identities × scenes (every background, layout, property, style)."""
    from flexip_miniworld.identity import make_identity
    from flexip_miniworld.render import contact_sheet, default_sheet_columns

    if not 1 <= rows <= 200:
        raise FlexIPInputError(f"--rows must be in [1, 200], got {rows}")
    if not 8 <= size <= 256:
        raise FlexIPInputError(f"--size must be in [8, 256], got {size}")
    if not 1 <= zoom <= 16:
        raise FlexIPInputError(f"--zoom must be in [1, 16], got {zoom}")
    if not str(out_png).lower().endswith(".png"):
        raise FlexIPInputError(f"the contact sheet is a PNG file; OUT_PNG must end in .png, got {out_png}")
    identities = [make_identity(split, i, seed) for i in range(rows)]
    sheet = contact_sheet(identities, default_sheet_columns(), size=size, zoom=zoom)
    path = Path(out_png)
    with atomic_path(path) as temporary:
        sheet.save(temporary, format="PNG", optimize=True)
    click.echo(f"wrote {path} ({sheet.width}×{sheet.height})")


@miniworld_group.command("build")
@click.argument("workdir", default="runs/miniworld")
@click.option(
    "--stages",
    default="all",
    show_default=True,
    help="Comma-separated stages (data, tokenizer, autoencoder, decoder, clip, unet, unet_grow, dino, eval_clip, eval_dino, adapter, ship) or 'all'.",
)
@click.option("--resume", is_flag=True, help="Skip finished stages; continue an interrupted stage from its checkpoint.")
@click.option("--extend", is_flag=True, help="Continue the selected, finished stages from their checkpoints up to the (larger) --budget-scale.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--budget-scale", default=1.0, show_default=True, help="Multiply every stage's time and step budget.")
@click.option(
    "--preset-dir",
    default=None,
    help="Where `ship` writes the preset [default: WORKDIR/preset]. To replace the one flexip ships, give src/flexip/presets/miniworld of a checkout.",
)
@click.option("--images", default=20000, show_default=True, help="Data stage: captioned training images.")
@click.option("--videos", default=600, show_default=True, help="Data stage: video clips.")
@click.option("--multiview", default=300, show_default=True, help="Data stage: multi-view captures.")
@click.option("--identities", default=400, show_default=True, help="Data stage: training identities.")
@click.option("--heldout", default=40, show_default=True, help="Data stage: held-out identities.")
def build(workdir, stages, resume, extend, device, budget_scale, preset_dir, images, videos, multiview, identities, heldout):
    """Train the miniature FlexIP stack from scratch in WORKDIR (datasets, checkpoints, logs) and ship
    it as the `miniworld` preset; WORKDIR/manifest.json records every stage."""
    from flexip_miniworld.stack.build import STAGES, BuildSettings, DataSettings
    from flexip_miniworld.stack.build import build as run_build

    selected = STAGES if stages == "all" else tuple(s.strip() for s in stages.split(",") if s.strip())
    settings = BuildSettings(
        workdir=Path(workdir),
        stages=selected,
        resume=resume,
        extend=extend,
        device=device,
        budget_scale=budget_scale,
        data=DataSettings(images=images, videos=videos, multiview=multiview, identities=identities, heldout=heldout),
        preset_dir=Path(preset_dir) if preset_dir else None,
    )
    manifest = run_build(settings)
    for name, record in manifest["stages"].items():
        click.echo(f"{name:12s} steps {record.get('steps', '-')!s:>6}  {record.get('seconds', 0):7.1f} s  final loss {record.get('final_loss')}")


@miniworld_group.command("evaluate")
@click.option("--preset", "preset_dir", default=None, help="Preset folder [default: the shipped presets/miniworld].")
@click.option(
    "--data",
    "data_dir",
    default="runs/miniworld/data",
    show_default=True,
    help="Miniworld data with heldout.jsonl and pairs.jsonl (rendered here if missing).",
)
@click.option("--out", "out_dir", default="runs/miniworld/evaluation", show_default=True, help="Where evaluation.json / .md and the sample grid go.")
@click.option("--subjects", default=20, show_default=True, help="Held-out identities (N of them, from --first on).")
@click.option(
    "--first",
    default=0,
    show_default=True,
    help="Index of the first held-out identity: 0 for the report's numbers, 20 for the validation range used to choose between training runs.",
)
@click.option("--prompts", default=8, show_default=True, help="Test prompts per identity (≤ 12).")
@click.option("--steps", default=20, show_default=True, help="Denoising steps.")
@click.option("--guidance", default=3.0, show_default=True, help="Classifier-free guidance scale.")
@click.option(
    "--scale",
    default=1.0,
    show_default=True,
    help="Adapter scale of the γ sweep (the report uses 1; other values map the (γ, scale) control surface).",
)
@click.option(
    "--method", default="flexip", show_default=True, type=click.Choice(["flexip", "ip-adapter"]), help="What is measured; its dial is swept."
)
@click.option(
    "--adapter",
    "adapter_dir",
    default=None,
    help="The adapter folder: a FlexIP adapter [default: the preset's], or for --method ip-adapter the folder `flexip train model.method=ip-adapter` wrote.",
)
@click.option(
    "--values",
    default=None,
    help="Dial values, comma-separated (must include 0, 0.25, 0.5, 0.75, 1) [default: 0, 0.1, …, 1 and 0.25, 0.75].",
)
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True)
def evaluate(preset_dir, data_dir, out_dir, subjects, first, prompts, steps, guidance, scale, method, adapter_dir, values, seed, device):
    """CLIP-T / CLIP-I / DINO-I of a method on the miniworld's held-out identities along its dial (FlexIP's γ or
    IP-Adapter's scale) and for the base model without reference, with the independent evaluation encoders,
    plus real-vs-real / real-vs-other calibration and the dial's statistics (ρ, step share, control range).
    Writes evaluation.json and evaluation.md to --out."""
    from flexip.presets import get_preset
    from flexip_miniworld.dials import DIAL_VALUES
    from flexip_miniworld.evaluate import evaluate as run_evaluation

    if not 1 <= prompts <= 12:
        raise FlexIPInputError(f"--prompts must be in [1, 12], got {prompts}")
    try:
        dial_values = DIAL_VALUES if values is None else tuple(float(v) for v in values.split(",") if v.strip())
    except ValueError:
        raise FlexIPInputError(f"--values is comma-separated numbers in [0, 1], got {values!r}") from None
    if not all(0.0 <= v <= 1.0 for v in dial_values):
        raise FlexIPInputError(f"--values must lie in [0, 1], got {values!r}")
    if adapter_dir is not None and not Path(adapter_dir).is_dir():
        raise FlexIPInputError(f"--adapter {adapter_dir} is not a folder")
    result = run_evaluation(
        Path(preset_dir) if preset_dir else get_preset("miniworld").folder,
        Path(data_dir),
        Path(out_dir),
        subjects,
        prompts,
        steps,
        guidance,
        seed,
        device,
        first=first,
        scale=scale,
        method=method,
        adapter_dir=Path(adapter_dir) if adapter_dir else None,
        dial_values=dial_values,
    )
    click.echo((Path(out_dir) / "evaluation.md").read_text())
    click.echo(f"{result['seconds']:.0f} s; {Path(out_dir) / 'evaluation.json'}")


@miniworld_group.command("compare")
@click.argument("evaluations", nargs=-1, required=True)
@click.option(
    "--label",
    "labels",
    multiple=True,
    help="A name per evaluation, in order; evaluations with the same label are seeds of one method [default: the folder names].",
)
@click.option("--plot", "plot_path", default=None, help="Write the identity-vs-text frontier plot (PNG) here.")
@click.option("--out", "out_path", default=None, help="Also write the tables (markdown) to this file.")
def compare(evaluations, labels, plot_path, out_path):
    """Several `flexip miniworld evaluate` results side by side (each EVALUATION is an --out folder or its
    evaluation.json): the dial's curves, the first CLIP-T step with its interval, targets met; with the 11-value
    sweep, per method (label) the frontier area, ρ, step share, control range over seeds and mRank, and per run
    what each end of the dial keeps."""
    from flexip.atomic import write_text
    from flexip_miniworld.compare import compare_results, load_result

    if labels and len(labels) != len(evaluations):
        raise FlexIPInputError(f"got {len(labels)} --label for {len(evaluations)} evaluations; give one per evaluation or none")
    if plot_path is not None and not str(plot_path).lower().endswith(".png"):
        raise FlexIPInputError(f"--plot writes a PNG; give a path ending in .png, got {plot_path}")
    folders = [Path(e) if Path(e).is_dir() else Path(e).parent for e in evaluations]
    names = list(labels) or [f"{folder.parent.name}/{folder.name}" for folder in folders]
    results = [load_result(e) for e in evaluations]
    text = compare_results(list(zip(names, results)), Path(plot_path) if plot_path else None)
    if out_path:
        write_text(out_path, text + "\n")
    click.echo(text)


@miniworld_group.command("evidence")
@click.argument("workdir", default="runs/evidence")
@click.option("--arms", default="flexip,ip-adapter-image", show_default=True, help="Comma-separated arms (see flexip_miniworld.evidence.ARMS).")
@click.option(
    "--seeds",
    default="52",
    show_default=True,
    help="Comma-separated training seeds (the preset's adapter is a seed-51 run; its manifest's adapter_recipe names which).",
)
@click.option("--preset", "preset_dir", default=None, help="The preset whose base and encoders the arms train on [default: the shipped miniworld].")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@click.option(
    "--shipped", is_flag=True, help="Evaluate the preset's own adapter as the run it was shipped from (the manifest's adapter_recipe; no training)."
)
@click.option(
    "--only",
    type=click.Choice(["train", "evaluate"]),
    default=None,
    help="Only train (e.g. to evaluate in another process), or only evaluate runs already trained [default: both, run by run].",
)
@click.option(
    "--collect",
    "collect_dir",
    default=None,
    help="Afterwards copy every finished run's evaluations, loss curve and adapter here (e.g. docs/results/evidence).",
)
@click.option("--split", "split", type=click.Choice(["validation", "report"]), default=None, help="Evaluate on this range only [default: both].")
@click.option(
    "--restore",
    "restore_dir",
    default=None,
    help="First bring the runs collected here (e.g. docs/results/evidence) back into WORKDIR/arms, so a fresh checkout evaluates or adds seeds without retraining them.",
)
def evidence(workdir, arms, seeds, preset_dir, device, shipped, only, collect_dir, split, restore_dir):
    """Train and evaluate issue 14's arms (FlexIP, the IP-Adapter baseline, ablations) one after another in
    WORKDIR/arms/ARM-sSEED, each resumable, each evaluated on the validation and the report identities."""
    from flexip.presets import get_preset
    from flexip_miniworld.evidence import collect, evaluate_arm, parse_arms, prepare_workdir, restore, train_arm
    from flexip_miniworld.evidence_ship import evaluate_shipped

    chosen = parse_arms(arms)
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise FlexIPInputError(f"--seeds is comma-separated integers, got {seeds!r}") from None
    preset = Path(preset_dir) if preset_dir else get_preset("miniworld").folder
    work = Path(workdir)
    if restore_dir:
        if not Path(restore_dir).is_dir():
            raise FlexIPInputError(f"--restore expects a folder of collected runs (like docs/results/evidence), got {restore_dir!r}")
        restore(Path(restore_dir), work)
    prepare_workdir(work, preset)
    if shipped:
        evaluate_shipped(work, preset, device)
    for arm in chosen:
        for seed in seed_list:
            run = work / "arms" / f"{arm}-s{seed}"
            if only == "evaluate" and not (run / "done.json").is_file():
                raise FlexIPInputError(f"{run} has not finished training; run without --only evaluate first")
            adapter = run / "adapter" if only == "evaluate" else train_arm(work, arm, seed, device)
            if only != "train":
                evaluate_arm(work, preset, arm, seed, adapter, device, splits=(split,) if split else ("validation", "report"))
    if collect_dir:
        collect(work, Path(collect_dir))
    click.echo(f"done: {', '.join(chosen)} × seeds {', '.join(map(str, seed_list))} in {work / 'arms'}")


@miniworld_group.command("evidence-tables")
@click.argument("records", default="docs/results/evidence")
@click.option("--plots", "plots_dir", default="docs/img", show_default=True, help="Write each comparison's frontier plot here.")
@click.option(
    "--report",
    "report_path",
    default=None,
    help="Also rewrite this markdown file's marked tables (<!-- begin:evidence-NAME --> … <!-- end:evidence-NAME -->; NAME: runs, frontier, ablations, recipes).",
)
def evidence_tables(records, plots_dir, report_path):
    """Rebuild the evidence report's comparisons from RECORDS (FlexIP against both IP-Adapter arms, the ablations,
    the recipe candidates on validation), every seed of each arm included: markdown tables beside the records and
    one frontier plot per comparison and identity range."""
    from flexip_miniworld.evidence_tables import write_comparisons

    if report_path is not None and not Path(report_path).is_file():
        raise FlexIPInputError(f"--report {report_path} not found: give the markdown file whose marked tables to rewrite")
    Path(plots_dir).mkdir(parents=True, exist_ok=True)
    written = write_comparisons(Path(records), Path(plots_dir), Path(report_path) if report_path else None)
    click.echo(f"wrote {len(written)} files")


@miniworld_group.command("sweep-grid")
@click.argument("out_png")
@click.option("--ip-adapter", "ip_adapter", required=True, help="The IP-Adapter folder (flexip train model.method=ip-adapter).")
@click.option("--adapter", "adapter_dir", default=None, help="A FlexIP adapter folder [default: the preset's].")
@click.option("--preset", "preset_dir", default=None, help="Preset folder [default: the shipped miniworld].")
@click.option("--data", "data_dir", default="runs/evidence/data", show_default=True, help="Miniworld data with heldout.jsonl.")
@click.option("--subjects", default="0,3", show_default=True, help="Held-out identities (comma-separated).")
def sweep_grid_command(out_png, ip_adapter, adapter_dir, preset_dir, data_dir, subjects):
    """FlexIP's γ sweep beside IP-Adapter's scale sweep (0, 0.25, 0.5, 0.75, 1) on the same held-out subjects,
    prompts and noise as the evaluation: one PNG."""
    from flexip.presets import get_preset
    from flexip_miniworld.evidence import sweep_grid

    if not str(out_png).lower().endswith(".png"):
        raise FlexIPInputError(f"OUT_PNG must end in .png, got {out_png}")
    try:
        chosen = tuple(int(s) for s in subjects.split(",") if s.strip())
    except ValueError:
        raise FlexIPInputError(f"--subjects is comma-separated integers, got {subjects!r}") from None
    preset = Path(preset_dir) if preset_dir else get_preset("miniworld").folder
    path = sweep_grid(preset, Path(data_dir), Path(adapter_dir) if adapter_dir else None, Path(ip_adapter), Path(out_png), subjects=chosen)
    click.echo(f"wrote {path}")
