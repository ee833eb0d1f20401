"""`flexip eval`: generate over DreamBench, score image folders, rank methods, plot sweeps.

Thin shells over `flexip.evaluation`; docs/evaluation.md describes metrics, defaults and file formats.
"""

from __future__ import annotations

from pathlib import Path

import click

from flexip.atomic import write_text
from flexip.cli.options import VariadicOptionsCommand
from flexip.errors import FlexIPInputError
from flexip.evaluation.defaults import DEFAULT_BASE_MODEL


class FloatList(click.ParamType):
    """'0,0.25,0.5' → (0.0, 0.25, 0.5): IP-Adapter's scales (γ text is read by `flexip.gate.parse_gamma`)."""

    name = "floats"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            return tuple(float(part) for part in str(value).split(",") if part.strip())
        except ValueError:
            self.fail(f"expected comma-separated numbers, got {value!r}", param, ctx)


def _names(value: str | None) -> tuple[str, ...] | None:
    return tuple(part.strip() for part in value.split(",") if part.strip()) if value else None


def benchmark_options(function):
    function = click.option(
        "--download-benchmark",
        is_flag=True,
        help="Fetch the public DreamBench archive into --benchmark (or the cache) if it is not there.",
    )(function)
    return click.option(
        "--benchmark",
        "benchmark",
        type=click.Path(path_type=Path),
        default=None,
        help="DreamBench `dataset` folder (or its parent). Default: ~/.cache/flexip/dreambench.",
    )(function)


def scoring_options(function):
    from flexip.evaluation import defaults as B

    options = [
        click.option("--metrics", default="CLIP-T,CLIP-I,DINO-I,CLIP-IQA,Aesthetic", show_default=True, help="Metrics to compute (comma-separated)."),
        click.option(
            "--compare-to",
            type=click.Choice(["all", "reference"]),
            default="all",
            show_default=True,
            help="CLIP-I / DINO-I against all photos of the subject (DreamBench) or only the reference.",
        ),
        click.option("--clip-model", default=B.DEFAULT_CLIP, show_default=True, help="CLIP for CLIP-T and CLIP-I."),
        click.option("--dino-model", default=B.DEFAULT_DINO, show_default=True, help="DINO ViT for DINO-I."),
        click.option("--iqa-model", default=B.DEFAULT_CLIP_IQA, show_default=True, help="CLIP for CLIP-IQA."),
        click.option(
            "--aesthetic-model",
            default=B.DEFAULT_AESTHETIC_CLIP,
            show_default=True,
            help="CLIP image encoder under the aesthetic head (must be ViT-L/14 for the LAION head).",
        ),
        click.option(
            "--aesthetic-head",
            type=click.Path(path_type=Path),
            default=None,
            help="LAION aesthetic v2 head (.pth). Default: the cache copy, downloaded if missing.",
        ),
        click.option("--no-download", is_flag=True, help="Never download the aesthetic head."),
        click.option("--batch-size", type=int, default=32, show_default=True, help="Images per backbone batch."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _load_bench(benchmark: Path | None, download: bool):
    from flexip.evaluation.dreambench import resolve_dreambench

    return resolve_dreambench(benchmark, download=download)


def _backbones(metrics, clip_model, dino_model, iqa_model, aesthetic_model, aesthetic_head, no_download, batch_size, device):
    from flexip.evaluation.backbones import BackboneConfig, Backbones

    config = BackboneConfig(
        clip=clip_model,
        dino=dino_model,
        clip_iqa=iqa_model,
        aesthetic_clip=aesthetic_model,
        aesthetic_head=str(aesthetic_head) if aesthetic_head else None,
        device=device,
        batch_size=batch_size,
    )
    return Backbones.load(config, metrics=metrics, download=not no_download)


def _print_ranking(result_paths: list[Path], out_dir: Path) -> None:
    from flexip.evaluation import ranking

    table = ranking.load_rank_table(result_paths)
    ranked = ranking.rank_methods(table)
    markdown = ranking.to_markdown(ranked)
    write_text(out_dir / "ranking.md", markdown)
    ranking.to_csv(ranked, out_dir / "ranking.csv")
    click.echo(markdown, nl=False)


@click.group("eval", context_settings={"help_option_names": ["-h", "--help"]})
def eval_group() -> None:
    """Evaluate as in the paper: CLIP-T, CLIP-I, DINO-I, CLIP-IQA, Aesthetic, mRank, γ sweeps."""


@eval_group.command(
    "run",
    cls=VariadicOptionsCommand,
    variadic=("--gamma", "--scale"),
    short_help="Generate over DreamBench (γ or scale sweep), then score.",
)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True, help="Output folder (resumable).")
@click.option("--method", type=click.Choice(["flexip", "ip-adapter"]), default="flexip", show_default=True)
@click.option("--base-model", default=DEFAULT_BASE_MODEL, show_default=True)
@click.option("--adapter", default=None, help="FlexIP adapter folder or hub id (method flexip).")
@click.option(
    "--gamma",
    multiple=True,
    metavar="G [G...]",
    help="γ value(s) to sweep, as for `flexip generate`: 0,0.5,1 or 0 0.5 1 (plain numbers; default 0.5).",
)
@click.option("--scale", type=FloatList(), multiple=True, metavar="S [S...]", help="IP-Adapter scale value(s): 0.5,1 or 0.5 1 (default 1.0).")
@click.option("--ip-adapter", default="h94/IP-Adapter", show_default=True)
@click.option("--ip-adapter-subfolder", default="models", show_default=True)
@click.option("--ip-adapter-weights", default="ip-adapter_sd15.bin", show_default=True)
@click.option("--images-per-prompt", type=int, default=4, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Image k of each prompt uses seed + k.")
@click.option("--reference-index", type=int, default=0, show_default=True, help="Which photo of each subject (sorted) is the reference.")
@click.option("--subjects", default=None, help="Comma-separated subset of subjects (default: all 30).")
@click.option("--prompts-per-subject", type=int, default=None, help="Only the first K prompts (default: all 25).")
@click.option("--steps", type=int, default=30, show_default=True)
@click.option("--guidance-scale", type=float, default=7.5, show_default=True)
@click.option("--negative-prompt", default=None)
@click.option("--height", type=int, default=None)
@click.option("--width", type=int, default=None)
@click.option("--device", default=None, help="Default: cuda, then mps, then cpu.")
@click.option(
    "--dtype",
    type=click.Choice(["float32", "float16", "bfloat16"]),
    default=None,
    help="Pipeline dtype (default: float16 on CUDA, else float32).",
)
@click.option("--no-score", is_flag=True, help="Only generate.")
@benchmark_options
@scoring_options
def run_command(
    out_dir,
    method,
    base_model,
    adapter,
    gamma,
    scale,
    ip_adapter,
    ip_adapter_subfolder,
    ip_adapter_weights,
    images_per_prompt,
    seed,
    reference_index,
    subjects,
    prompts_per_subject,
    steps,
    guidance_scale,
    negative_prompt,
    height,
    width,
    device,
    dtype,
    no_score,
    benchmark,
    download_benchmark,
    metrics,
    compare_to,
    clip_model,
    dino_model,
    iqa_model,
    aesthetic_model,
    aesthetic_head,
    no_download,
    batch_size,
):
    """Generate with FlexIP (γ sweep) or IP-Adapter (scale sweep) over DreamBench, then score.

    Images already in OUT are kept (the run resumes). Writes OUT/images/, OUT/results/*.json and
    OUT/ranking.md|csv.
    """
    from flexip.evaluation.runner import GenerationSettings, RunConfig, generate_benchmark, score_run
    from flexip.evaluation.scoring import ScoreConfig

    if method == "flexip":
        if scale:
            raise FlexIPInputError("--scale is IP-Adapter's dial; FlexIP is swept with --gamma")
        from flexip.gate import DEFAULT_GAMMA, sweep_values
        from flexip.presets import is_preset

        values = sweep_values(gamma) if gamma else (DEFAULT_GAMMA,)  # the one γ parser; checked here, once
        if not adapter and not is_preset(base_model):
            raise FlexIPInputError("--adapter (a FlexIP adapter folder or hub id) is required for --method flexip")
    else:
        if gamma:
            raise FlexIPInputError("--gamma is FlexIP's dial; IP-Adapter is swept with --scale")
        values = tuple(value for values in scale for value in values) or (1.0,)
        if any(value < 0 for value in values):
            raise FlexIPInputError(f"IP-Adapter scales must be ≥ 0, got {list(values)}")
    bench = _load_bench(benchmark, download_benchmark)
    config = RunConfig(
        values=values,
        images_per_prompt=images_per_prompt,
        seed=seed,
        reference_index=reference_index,
        subjects=_names(subjects),
        prompts_per_subject=prompts_per_subject,
        generation=GenerationSettings(steps, guidance_scale, negative_prompt, height, width),
    )
    score_config = ScoreConfig(metrics=_names(metrics), compare_to=compare_to, reference_index=reference_index)
    if method == "flexip":
        from flexip.evaluation.runner import FlexIPMethod

        subject_method = FlexIPMethod.from_pretrained(base_model, adapter, device=device, dtype=dtype)
    else:
        from flexip.evaluation.baselines import IPAdapterMethod

        subject_method = IPAdapterMethod.from_pretrained(base_model, ip_adapter, ip_adapter_subfolder, ip_adapter_weights, device=device, dtype=dtype)
    summary = generate_benchmark(subject_method, bench, out_dir, config)
    click.echo(f"generated {summary.generated} images, kept {summary.skipped} already there, in {summary.images_root}")
    if no_score:
        return
    del subject_method  # free the generator's memory before loading the scoring backbones
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    backbones = _backbones(score_config.metrics, clip_model, dino_model, iqa_model, aesthetic_model, aesthetic_head, no_download, batch_size, device)
    written = score_run(
        out_dir,
        bench,
        backbones,
        score_config,
        {"flexip": "FlexIP", "ip-adapter": "IP-Adapter"}[method],
        "gamma" if method == "flexip" else "scale",
        config.values,
    )
    click.echo(f"results: {', '.join(str(path) for path in written)}")
    _print_ranking(written, out_dir)


@eval_group.command("score", short_help="Score a folder of images of any method.")
@click.argument("images", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--method", required=True, help="Name of the method that made the images (used in tables and plots).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True, help="Folder for result files.")
@click.option("--control", default=None, help="Setting of a single-folder method, e.g. gamma=0.5 or scale=0.6.")
@click.option(
    "--reference-index",
    type=int,
    default=0,
    show_default=True,
    help="Which photo of each subject (sorted) the method was given (for --compare-to reference).",
)
@click.option("--device", default=None, help="Device for the backbones (default: cuda, then mps, then cpu).")
@benchmark_options
@scoring_options
def score_command(
    images,
    method,
    out_dir,
    control,
    reference_index,
    device,
    benchmark,
    download_benchmark,
    metrics,
    compare_to,
    clip_model,
    dino_model,
    iqa_model,
    aesthetic_model,
    aesthetic_head,
    no_download,
    batch_size,
):
    """Score existing images of any method laid out as IMAGES/<subject>/<prompt index>/<image>
    (or IMAGES/<control>-<value>/<subject>/... for a sweep). Writes one result file per setting to OUT,
    plus OUT/ranking.md|csv.
    """
    from flexip.evaluation.results import result_filename, save_result
    from flexip.evaluation.scoring import ScoreConfig, find_settings, parse_control_folder, score_setting

    bench = _load_bench(benchmark, download_benchmark)
    score_config = ScoreConfig(metrics=_names(metrics), compare_to=compare_to, reference_index=reference_index)
    settings = find_settings(images, bench)
    if control is not None:
        parsed = parse_control_folder(control.replace("=", "-", 1))
        if parsed is None:
            raise FlexIPInputError(f"--control must look like NAME=VALUE (e.g. gamma=0.5), got {control!r}")
        if len(settings) > 1 or settings[0].control is not None:
            raise FlexIPInputError("--control labels a single-setting folder; this folder is already a sweep")
        settings[0].control = parsed
    backbones = _backbones(score_config.metrics, clip_model, dino_model, iqa_model, aesthetic_model, aesthetic_head, no_download, batch_size, device)
    written = []
    for setting in settings:
        result = score_setting(setting, bench, backbones, score_config, method)
        written.append(save_result(result, out_dir / result_filename(method, result.control)))
    click.echo(f"results: {', '.join(str(path) for path in written)}")
    _print_ranking(written, out_dir)


@eval_group.command("rank", short_help="Per-metric ranks and mRank, as markdown and CSV.")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True))
@click.option("--markdown", "markdown_path", type=click.Path(path_type=Path), default=None, help="Also write the table here.")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), default=None, help="Also write ranks as CSV here.")
@click.option("--sort", "sort", is_flag=True, help="Order rows by mRank (best first) instead of input order.")
def rank_command(inputs, markdown_path, csv_path, sort):
    """Rank methods (per-metric ranks, ties averaged; mRank = mean rank) from result files, folders of
    them, or CSV files with columns method,CLIP-T,CLIP-I,DINO-I,CLIP-IQA,Aesthetic.
    """
    from flexip.evaluation import ranking
    from flexip.evaluation.metrics import METRICS

    table = ranking.load_rank_table(inputs)
    ranked = ranking.rank_methods(table)
    if sort:
        ranked = ranking.sort_by_mrank(ranked)
    markdown = ranking.to_markdown(ranked)
    click.echo(markdown, nl=False)
    used = ranking.ranked_metrics(ranked)
    if len(used) < len(METRICS):
        click.echo(f"note: mRank averages {len(used)} metrics ({', '.join(used)}), not all {len(METRICS)}", err=True)
    if markdown_path:
        write_text(markdown_path, markdown)
    if csv_path:
        ranking.to_csv(ranked, csv_path)


@eval_group.command("report", short_help="Plots and sweep statistics (monotonicity, largest jump).")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True, help="Folder for plots and tables.")
def report_command(inputs, out_dir):
    """Plot identity vs text fidelity per method (the paper's Fig. 2) and, for sweeps, every metric
    against γ / scale with monotonicity (Spearman ρ) and largest-jump statistics.
    """
    from flexip.evaluation.report import statistics_markdown, sweep_statistics, write_report
    from flexip.evaluation.results import find_result_files, load_result

    results = [load_result(path) for path in find_result_files(inputs)]
    written = write_report(results, out_dir)
    statistics = sweep_statistics(results)
    if statistics:
        click.echo(statistics_markdown(statistics), nl=False)
    for name, path in written.items():
        click.echo(f"{name}: {path}")
