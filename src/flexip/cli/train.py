"""`flexip train`: train a FlexIP adapter from a YAML config (a thin shell over flexip.training)."""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager

import click


@click.command(
    context_settings={"ignore_unknown_options": False},
    help="""Train a FlexIP adapter. Settings come from --config (YAML, see docs/training.md and
configs/train_tiny.yaml); KEY=VALUE arguments override single settings, in YAML syntax.

\b
Examples:
  flexip train --config configs/train_tiny.yaml
  flexip train --config c.yaml optim.lr=1e-4 optim.max_steps=5000 data.manifest=data/manifest.jsonl
  flexip train --config c.yaml --resume latest       # continue the newest checkpoint of logging.output_dir
  flexip train --config c.yaml cache.path=cache/f --build-cache     # precompute features, then train with cache.path set
  accelerate launch -m flexip.cli.main train --config c.yaml        # several GPUs / nodes

Checkpoints go to OUTPUT_DIR/checkpoints/step-NNNNNN/ (the adapter/ inside loads directly:
FlexIPPipeline.from_pretrained(base, adapter=".../adapter")); the final adapter to OUTPUT_DIR/adapter.""",
)
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML config. Optional with --resume CHECKPOINT (its config.yaml is used).",
)
@click.option(
    "--resume",
    default=None,
    metavar="latest|CHECKPOINT",
    help="'latest': continue the newest checkpoint of logging.output_dir (or start if there is none); or a checkpoint folder.",
)
@click.option("--build-cache", is_flag=True, help="Build the feature cache at cache.path from this config, then exit.")
@click.option("--print-config", is_flag=True, help="Print the validated config (defaults filled in) and exit.")
def train(overrides, config_path, resume, build_cache, print_config):
    from pathlib import Path

    from flexip.errors import FlexIPInputError
    from flexip.training.config import load_config

    if config_path is None and resume not in (None, "latest"):
        config_path = str(Path(resume) / "config.yaml")
        if not Path(config_path).is_file():
            raise FlexIPInputError(f"{resume} has no config.yaml; give --config")
    if config_path is None:
        raise FlexIPInputError("give --config CONFIG.yaml (see configs/train_tiny.yaml and docs/training.md)")
    config = load_config(config_path, overrides)
    if print_config:
        click.echo(config.to_yaml(), nl=False)
        return
    _check_before_work(config, build_cache)
    with _console_logging():
        if build_cache:
            from flexip.training.cache import build_cache_for_config

            report = build_cache_for_config(config)
            click.echo(f"cached {report.records} records ({report.entries} entries) in {report.seconds:.1f} s → {report.path}")
            if report.skipped:
                click.echo("left out: " + " ".join(f"{k}={v}" for k, v in sorted(report.skipped.items())))
            return
        from flexip.training.trainer import Trainer

        trainer = Trainer(config, resume=resume)
        result = trainer.train()
    if trainer.accelerator.is_main_process:
        click.echo(f"trained to step {result.step}; adapter: {result.adapter_dir}; last checkpoint: {result.checkpoint}")


def _check_before_work(config, build_cache: bool) -> None:
    """What the config alone cannot know, checked before any data or model loads: the folder this run writes
    (the feature cache, or logging.output_dir) can be made and written, and the seed fits a torch generator."""
    from flexip.cli.options import SEED_RANGE, output_folder_problem
    from flexip.errors import FlexIPInputError

    key, folder = ("cache.path", config.cache.path) if build_cache else ("logging.output_dir", config.logging.output_dir)
    problem = output_folder_problem(folder) if folder is not None else None  # no cache.path: build_cache_for_config says so
    if problem is not None:
        raise FlexIPInputError(f"{key}: {problem}")
    seed = config.runtime.seed
    if not SEED_RANGE.min <= seed <= SEED_RANGE.max:
        raise FlexIPInputError(f"runtime.seed must be an integer in [0, 2**64 - 1], got {seed}")


class _ConsoleHandler(logging.Handler):
    """Log lines on the current stderr, above the progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm.auto import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


@contextmanager
def _console_logging():
    """INFO lines of the flexip loggers on stderr, once (not also through handlers that libraries such as
    absl put on the root logger). The trainer logs on the main process only; data-skip warnings come
    from every process."""
    package = logging.getLogger("flexip")
    handler = _ConsoleHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    saved = package.level, package.propagate
    package.addHandler(handler)
    package.setLevel(logging.INFO)
    package.propagate = False
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(saved[0])
        package.propagate = saved[1]
