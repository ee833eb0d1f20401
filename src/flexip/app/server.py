"""How the studio is served, in one place: the safety rules of the app.

- it listens on 127.0.0.1 unless told otherwise (and then says who can reach it); never `share=True`;
- uploads are refused above `MAX_UPLOAD_BYTES` by the server itself, before they are stored (the handlers then
  check type and pixels with flexip's own image reader);
- a bounded queue: at most `QUEUE_SIZE` waiting events, and events that use a model share one concurrency
  group of size 1 (one generation at a time per model);
- errors: `show_error=False`, so an unexpected exception shows a short error and never a traceback; a
  `FlexIPError` (bad input) is shown with its message;
- files: Gradio's cache (every image the page shows) lives under the app's own outputs folder, and the
  outputs folder is the only allowed path, so no request reaches any other file;
- offline: no analytics, no web fonts (the theme uses the system's fonts).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from flexip.app.references import MAX_UPLOAD_BYTES

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
QUEUE_SIZE = 16
CACHE_FOLDER = "cache"


def prepare(out_dir: str | os.PathLike) -> Path:
    """Call before gradio builds anything: its cache goes under `out_dir`, analytics off. Returns `out_dir`, made."""
    out = Path(out_dir).resolve()
    (out / CACHE_FOLDER).mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(out / CACHE_FOLDER)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    return out


def exposure_warning(host: str) -> str | None:
    """What to tell the person who asked for a host other than this machine's loopback address."""
    if host in LOCAL_HOSTS:
        return None
    return (
        f"listening on {host}: anyone who can reach this machine on that address can use the studio and its model "
        "(there is no login). Leave out --host to stay on 127.0.0.1."
    )


def user_errors(function):
    """A page handler whose bad input (a `FlexIPError`) shows its message in the page, never a traceback."""
    from flexip.errors import FlexIPError

    @functools.wraps(function)  # keeps the signature: the API names the parameters after it
    def handler(*args, **kwargs):
        import gradio as gr

        try:
            return function(*args, **kwargs)
        except FlexIPError as error:
            raise gr.Error(str(error), print_exception=False) from None

    return handler


def theme():
    import gradio as gr

    return gr.themes.Soft(font=["system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"], font_mono=["ui-monospace", "Menlo", "monospace"])


#: How often Gradio's queue looks for new events (s) and for progress to send, instead of its 1 ms and 10 ms.
QUEUE_POLL, PROGRESS_POLL = 0.01, 0.05


def calm_queue(blocks) -> None:
    """Slow the polling of Gradio's queue loops. Gradio 6 wakes its event loop every 1 ms to look for events, also
    while a render runs, and each wake takes the GIL from the render's thread, which on this small UNet is mostly
    Python between small torch calls (benchmarks/studio_latency.py measures a render beside a loop polling at 1 ms
    and at 10 ms). Polling at 10 ms adds at most 10 ms before a render starts. Gradio has no public setting for
    this, so the attributes are set where they exist (a Gradio without them keeps its own timing; the studio's
    rules test fails then)."""
    queue = getattr(blocks, "_queue", None)
    if queue is None or not all(hasattr(queue, name) for name in ("sleep_when_free", "progress_update_sleep_when_free")):
        return
    queue.sleep_when_free, queue.progress_update_sleep_when_free = QUEUE_POLL, PROGRESS_POLL


def launch(blocks, host: str, port: int, out_dir: str | os.PathLike, css: str = "", blocked: tuple[str, ...] = (), block: bool = True) -> str:
    """Serve `blocks` under the rules above; returns the local URL (and blocks the thread unless `block=False`)."""
    blocks.queue(max_size=QUEUE_SIZE, default_concurrency_limit=1)
    calm_queue(blocks)
    _, url, _ = blocks.launch(
        server_name=host,
        server_port=port,
        share=False,
        show_error=False,
        max_file_size=MAX_UPLOAD_BYTES,
        allowed_paths=[str(Path(out_dir).resolve())],
        blocked_paths=[str(Path(path).resolve()) for path in blocked],
        ssr_mode=False,
        quiet=True,
        inbrowser=False,
        prevent_thread_lock=True,
        footer_links=["api"],
        theme=theme(),
        css=css,
    )
    if block:
        blocks.block_thread()
    return url
