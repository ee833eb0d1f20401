"""`flexip studio`: the local web app (FlexIP Studio) on the shipped miniworld preset or real SD1.5 weights."""

from __future__ import annotations

from pathlib import Path

import click

from flexip.errors import FlexIPInputError


def require_gradio() -> None:
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise FlexIPInputError("the studio needs gradio: pip install 'flexip[studio]'") from None


def torch_threads(requested: int | None, base: str | None) -> int | None:
    """`--threads`, else 1 on a shipped preset, else None (torch's own choice). The presets are miniature models: on a
    CPU, torch's threads spend each small operation waiting on each other, and the studio's worker thread suffers
    most (benchmarks/studio_latency.py measures both)."""
    from flexip.presets import DEFAULT_PRESET, is_preset

    if requested is not None:
        return requested
    return 1 if is_preset(base or DEFAULT_PRESET) else None


def serve(blocks, host: str, port: int, out, css: str = "", blocked=(), what: str = "FlexIP Studio") -> None:
    """Launch under the app's serving rules (flexip.app.server), say where, and block until interrupted."""
    from flexip.app.server import launch

    try:
        url = launch(blocks, host, port, out, css=css, blocked=blocked, block=False)
    except OSError as error:
        raise FlexIPInputError(f"cannot listen on {host}:{port} ({error}); choose another --port") from None
    click.echo(f"{what}: {url}  (Ctrl+C stops it)", err=False)
    try:
        blocks.block_thread()
    except KeyboardInterrupt:
        blocks.close()


@click.command(
    help="Open FlexIP Studio in the browser: the live γ dial, a sweep strip, the γ × scale control surface, IP-Adapter side by side "
    "(--ip-adapter) and the user study (--study). Offline, on the shipped miniworld preset unless --base is given.\n\n"
    "Example: flexip studio   (then open http://127.0.0.1:7860)"
)
@click.option(
    "--base", default=None, help="Base model: a diffusers SD1.5-family checkpoint (folder or hub id) or a preset. Default: the miniworld preset."
)
@click.option("--adapter", default=None, help="FlexIP adapter folder or hub id (presets bring their own).")
@click.option(
    "--ip-adapter",
    "ip_adapter",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="IP-Adapter weights (diffusers' format, image encoder in image_encoder/ beside them) on the same base: fills the Compare tab. Default: the baseline the preset ships (miniworld: ip_adapter/), if any.",
)
@click.option(
    "--study", type=click.Path(dir_okay=False, path_type=Path), default=None, help="A study file from `flexip study create`: fills the Study tab."
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on. Anything but 127.0.0.1 lets other machines in.")
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True)
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default="outputs/studio", show_default=True, help="The app's outputs."
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, mps ...")
@click.option(
    "--threads",
    type=click.IntRange(1, None),
    default=None,
    help="CPU threads for torch. Default: 1 on the shipped presets (miniature models: more threads only wait on each other), "
    "torch's own choice on other bases.",
)
def studio(base, adapter, ip_adapter, study, host, port, out_dir, device, threads):
    require_gradio()
    threads = torch_threads(threads, base)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    from flexip.app.server import exposure_warning, prepare

    out = prepare(out_dir)  # before gradio builds anything: its cache goes under the outputs
    from flexip.app.compare import Baseline
    from flexip.app.session import Session
    from flexip.app.studio import CSS, build_studio
    from flexip.app.study.store import StudyStore
    from flexip.presets import get_preset, is_preset

    store = StudyStore(study) if study is not None else None
    session = Session.load(base, adapter, device, out)
    if ip_adapter is None and is_preset(session.base):
        ip_adapter = get_preset(session.base).ip_adapter_file  # the baseline the preset ships, if any
    baseline = Baseline.load(session.base, ip_adapter, device) if ip_adapter is not None else None
    warning = exposure_warning(host)
    if warning:
        click.echo(f"warning: {warning}", err=True)
    serve(build_studio(session, baseline, store), host, port, out, css=CSS, blocked=(study,) if study is not None else ())
