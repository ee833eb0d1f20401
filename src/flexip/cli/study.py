"""`flexip study`: the paper's user study, run locally (create a study, serve it, print and export its results)."""

from __future__ import annotations

from pathlib import Path

import click

from flexip.errors import FlexIPInputError


class MethodFolder(click.ParamType):
    """NAME=IMAGES_DIR → (name, folder)."""

    name = "NAME=IMAGES"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        name, separator, folder = str(value).partition("=")
        if not separator or not name.strip() or not folder.strip():
            self.fail(f"expected NAME=IMAGES_DIR (e.g. FlexIP=runs/flexip/images/gamma-0.50), got {value!r}", param, ctx)
        return name.strip(), Path(folder.strip())


@click.group("study", help="The blind user study of the paper (Flex and ID-Pres vote shares): create, serve, results, export.")
def study_group() -> None:
    pass


@study_group.command(
    "create",
    help="Build a study file from the image folders of several methods, each in the layout IMAGES/<subject>/<prompt>/*.png. "
    "Prompt folders are the prompts themselves (with --references) or DreamBench prompt indices (with --benchmark).\n\n"
    "Example: flexip study create study.sqlite --method FlexIP=out/flexip --method IP-Adapter=out/ipa --references refs/",
)
@click.argument("study_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--method", "methods", type=MethodFolder(), multiple=True, required=True, help="NAME=IMAGES_DIR, once per method (2 to 12).")
@click.option("--references", type=click.Path(file_okay=False, path_type=Path), default=None, help="Folder of <subject>/*.png reference photos.")
@click.option("--benchmark", type=click.Path(file_okay=False, path_type=Path), default=None, help="A DreamBench copy (prompt indices, its photos).")
@click.option("--reference-index", type=int, default=0, show_default=True, help="With --benchmark: which photo of each subject is the reference.")
@click.option("--per-cell", type=int, default=1, show_default=True, help="Images per (subject, prompt) cell (the k-th image of every method).")
@click.option("--max-tasks", type=int, default=None, help="Keep a random subset of this many tasks.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the --max-tasks subset.")
def create(study_file, methods, references, benchmark, reference_index, per_cell, max_tasks, seed):
    from flexip.app.study.create import create_study

    names = [name for name, _ in methods]
    if len(set(names)) != len(names):
        raise FlexIPInputError(f"method names must differ, got {names}")
    store = create_study(
        study_file,
        dict(methods),
        references=references,
        benchmark=benchmark,
        reference_index=reference_index,
        per_cell=per_cell,
        max_tasks=max_tasks,
        seed=seed,
    )
    tasks = len(store.task_ids())
    click.echo(f"wrote {study_file}: {tasks} tasks × 2 questions (Flex, ID-Pres) = {2 * tasks} questions per evaluator, methods {', '.join(names)}")
    click.echo(f"serve it: flexip study serve {study_file}   (or flexip studio --study {study_file})")


@study_group.command("results", help="Print each method's vote shares with 95 % Wilson intervals, for both questions.")
@click.argument("study_file", type=click.Path(dir_okay=False, path_type=Path))
def results(study_file):
    from flexip.app.study.export import shares
    from flexip.app.study.results import format_table
    from flexip.app.study.store import StudyStore

    store = StudyStore(study_file)
    click.echo(format_table(shares(store), len(store.evaluators())))


@study_group.command("export", help="Write <study>_results.csv (shares, intervals) and <study>_votes.csv (every vote) into --out.")
@click.argument("study_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=".", show_default=True)
def export(study_file, out_dir):
    from flexip.app.study.export import export as write_csv
    from flexip.app.study.store import StudyStore

    for path in write_csv(StudyStore(study_file), out_dir):
        click.echo(f"wrote {path}")


@study_group.command("serve", help="Open the study alone in the browser (no model is loaded), for evaluators.")
@click.argument("study_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on. Anything but 127.0.0.1 lets other machines in.")
@click.option("--port", type=click.IntRange(1, 65535), default=7861, show_default=True)
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default="outputs/study", show_default=True, help="The app's outputs."
)
def serve(study_file, host, port, out_dir):
    from flexip.cli.studio import require_gradio
    from flexip.cli.studio import serve as serve_blocks

    require_gradio()
    from flexip.app.server import exposure_warning, prepare

    out = prepare(out_dir)
    from flexip.app.study.page import study_app
    from flexip.app.study.store import StudyStore

    store = StudyStore(study_file)
    warning = exposure_warning(host)
    if warning:
        click.echo(f"warning: {warning}", err=True)
    serve_blocks(study_app(store, out), host, port, out, blocked=(study_file,), what="FlexIP study")
