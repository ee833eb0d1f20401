"""FlexIP Studio in real time: from a γ change to the new image delivered, beside the bare pipeline call.

    .venv/bin/python benchmarks/studio_latency.py [--rounds 30] [--warmup 3] [--steps N] [--threads 2 1]

For each torch thread count, starts `flexip studio --threads N` (the miniworld preset, its default steps and
guidance unless --steps) on a free port of 127.0.0.1, uploads a held-out subject through gradio_client, and then,
round by round:

- studio: `client.predict(gamma=g, api_name="/render")`, timed from the call to the new PNG on this side (request,
  queue, render, PNG encoding, download): what a person waits for after moving the dial (the browser adds its own
  paint, not measured);
- bare: the same render in this process, `pipe(prompt, reference_embeds=embeds, gamma=g, ...)` with embeddings
  encoded once and reused, the cost the studio cannot avoid, in inference mode as the studio renders;
- bare, no_grad: the same call as the pipeline's own default runs it (`torch.no_grad`, as `flexip generate`), the
  cost of autograd's bookkeeping that inference mode skips;
- browser (where Debian's Chromium and chromedriver are installed): the page in headless Chromium, the γ slider set
  as a move sets it, timed in the page from the slider's input event to the new image loaded. gradio_client waits
  for the server's messages by polling every 50 ms (gradio_client/utils.py); the page reacts to them as they come, so
  this is the nearer figure for a person at the dial.

After the rounds, the cost of Gradio's own polling: the bare call in a worker thread, as the server runs it, beside
an asyncio loop that wakes every 1 ms (Gradio's queue default) and every 10 ms (`flexip.app.server.QUEUE_POLL`),
alternating.

Each round uses a new γ (nothing is cached but the reference's encoding) and runs the three one after the other, so
that they share the machine's load at that moment. The server also reports its own pipeline time per render, which
splits the studio's figure into the pipeline and the rest. Writes the `studio_latency` section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _results import write_section  # noqa: E402

from flexip.testing.browser import headless_chromium, missing_chromium  # noqa: E402

TARGET_SECONDS = 0.6
GRADIO_POLL = 0.001  # seconds between the wakes of Gradio's queue loop, its default (gradio/queueing.py)
PAUSE = 0.5  # seconds between the two measurements of a round


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_studio(folder: Path, threads: int) -> tuple[subprocess.Popen, str, float]:
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    log = open(folder / f"studio-{threads}.log", "w")  # kept open for the server's lifetime
    process = subprocess.Popen(
        [sys.executable, "-m", "flexip.cli.main", "studio", "--port", str(port), "--out", str(folder / "outputs"), "--threads", str(threads)],
        cwd=folder,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    started = time.perf_counter()
    while time.perf_counter() - started < 300:
        if process.poll() is not None:
            raise SystemExit(f"the studio exited: {(folder / f'studio-{threads}.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "gradio_api/info", timeout=5):
                return process, url, time.perf_counter() - started
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the studio did not start within 300 s")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


@dataclass
class Measured:
    threads: int
    startup: float
    studio: list[float]
    server: list[float]
    bare: list[float]
    no_grad: list[float] = field(default_factory=list)
    browser: list[float] = field(default_factory=list)  # empty where no Chromium is installed
    unet: float = 0.0  # the median time of the denoiser alone: `steps` UNet calls on the guided batch of 2
    polling: dict[float, float] = field(default_factory=dict)  # loop interval (s) → median render beside it


def unet_floor(pipe, prompt: str, steps: int, repeats: int = 7) -> float:
    """What no render at these settings can go below: `steps` forward passes of the bare UNet (adapter detached) on
    the batch of 2 that classifier-free guidance runs, on random latents of the preset's size."""
    import torch

    unet = pipe.unet
    size = unet.config.sample_size
    with torch.inference_mode():
        ids = pipe.tokenizer([prompt, ""], padding="max_length", max_length=pipe.tokenizer.model_max_length, return_tensors="pt").input_ids
        text = pipe.text_encoder(ids)[0]
        latents = torch.randn(2, unet.config.in_channels, size, size, generator=torch.Generator().manual_seed(0))
        times = []
        for _ in range(repeats + 1):  # the first is a warm-up
            start = time.perf_counter()
            for step in range(steps):
                unet(latents, 999 - step * (1000 // steps), encoder_hidden_states=text)
            times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


#: In the page: set the γ slider as a move sets it, and answer the milliseconds until the new image has loaded.
MOVE_AND_WAIT = """
const done = arguments[arguments.length - 1];
const slider = document.querySelector('#flexip-gamma input[type=range]');
const result = document.querySelector('#flexip-result');
const before = result.querySelector('img') && result.querySelector('img').src;
let start = 0;
const watch = new MutationObserver(() => {
  const image = result.querySelector('img');
  if (!image || image.src === before) return;
  watch.disconnect();
  const loaded = () => done(performance.now() - start);
  if (image.complete && image.naturalWidth) loaded(); else image.addEventListener('load', loaded, {once: true});
});
watch.observe(result, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
const set = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set;
start = performance.now();
set.call(slider, String(arguments[0]));
slider.dispatchEvent(new Event('input', {bubbles: true}));
slider.dispatchEvent(new Event('change', {bubbles: true}));
"""


def open_browser(url: str, folder: Path):
    """Headless Chromium on the studio's page, its first image rendered; None where no Chromium is installed."""
    if missing_chromium():
        return None
    from selenium.webdriver.common.by import By

    driver = headless_chromium(folder / "chromium-profile")
    driver.set_script_timeout(120)
    driver.get(url)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if driver.find_elements(By.CSS_SELECTOR, "#flexip-result img") and "Rendered in" in driver.find_element(By.ID, "flexip-status").text:
            return driver
        time.sleep(0.2)
    driver.quit()
    raise SystemExit("the studio's page did not show its first image within 120 s")


def polling_cost(render, rounds: int = 10) -> dict[float, float]:
    """The median time of `render()` in a worker thread (as the server runs it) beside an asyncio loop that wakes every
    1 ms (Gradio's default) or every `QUEUE_POLL` (the studio's), alternating, `rounds` renders each."""
    import asyncio
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from flexip.app.server import QUEUE_POLL

    interval, stop = {"s": GRADIO_POLL}, threading.Event()

    async def loop():
        while not stop.is_set():
            await asyncio.sleep(interval["s"])

    waker = threading.Thread(target=asyncio.run, args=(loop(),), daemon=True)
    waker.start()
    times: dict[float, list[float]] = {GRADIO_POLL: [], QUEUE_POLL: []}
    try:
        with ThreadPoolExecutor(1) as worker:
            for index in range(2 * rounds):
                interval["s"] = (GRADIO_POLL, QUEUE_POLL)[index % 2]
                time.sleep(PAUSE)
                times[interval["s"]].append(worker.submit(render).result())
    finally:
        stop.set()
        waker.join(timeout=5)
    return {key: statistics.median(values) for key, values in times.items()}


def measure(threads: int, rounds: int, warmup: int, steps: int, folder: Path) -> Measured:
    """One studio with `threads` torch threads, and the bare pipeline in this process with as many."""
    import torch
    from gradio_client import Client, handle_file

    from flexip import FlexIPPipeline
    from flexip.presets import get_preset

    preset = get_preset("miniworld")
    demo = preset.demo()
    reference = preset.folder / "demo" / "heldout-00002-bird.png"
    torch.set_num_threads(threads)
    process, url, startup = start_studio(folder, threads)
    browser = None
    try:
        client = Client(url, verbose=False, download_files=str(folder / f"downloads-{threads}"))
        client.predict(files=[handle_file(str(reference))], api_name="/use_uploads")  # encoded once, here
        pipe = FlexIPPipeline.from_pretrained("miniworld")
        embeds = pipe.encode_reference([reference])
        prompt = demo.prompts[0]
        settings = {"prompt": prompt, "steps": steps, "guidance": demo.guidance, "seed": 0}
        result = Measured(threads, startup, [], [], [])

        def bare_call(gamma: float) -> float:
            """The render without the studio, timed: the reference's embeddings reused, the seed fixed."""
            start = time.perf_counter()
            generator = torch.Generator().manual_seed(0)
            pipe(prompt, reference_embeds=embeds, gamma=gamma, num_inference_steps=steps, guidance_scale=demo.guidance, generator=generator)
            return time.perf_counter() - start

        browser = open_browser(url, folder)
        gammas = [round(0.02 + 0.96 * ((index * 0.381966) % 1.0), 2) for index in range(warmup + rounds)]  # a new γ every round
        for index, gamma in enumerate(gammas):
            in_page = browser.execute_async_script(MOVE_AND_WAIT, gamma) / 1000 if browser is not None else None
            time.sleep(PAUSE)
            start = time.perf_counter()
            image, status, _ = client.predict(gamma=gamma, api_name="/render", **settings)
            through_studio = time.perf_counter() - start
            assert Path(image).is_file()
            on_server = float(re.search(r"Rendered in ([0-9.]+) s", status).group(1))
            time.sleep(PAUSE)  # the server's idle threads spin for a moment after a render: let them stop first
            bare = {}
            modes = (("inference", torch.inference_mode), ("no_grad", torch.no_grad))
            for mode, context in modes if index % 2 == 0 else modes[::-1]:  # alternating, so that neither is always first
                with context():
                    bare[mode] = bare_call(gamma)
                time.sleep(PAUSE)
            if index >= warmup:
                result.studio.append(through_studio)
                result.server.append(on_server)
                result.bare.append(bare["inference"])
                result.no_grad.append(bare["no_grad"])
                if in_page is not None:
                    result.browser.append(in_page)
            page = f"browser {in_page:.3f} s, " if in_page is not None else ""
            print(
                f"{threads} thread(s), γ = {gamma:.2f}: {page}studio {through_studio:.3f} s (pipeline on the server {on_server:.3f} s), "
                f"bare {bare['inference']:.3f} s, bare with no_grad {bare['no_grad']:.3f} s"
            )
        result.unet = unet_floor(pipe, prompt, steps)

        def render() -> float:
            with torch.inference_mode():  # as the studio renders
                return bare_call(0.5)

        result.polling = polling_cost(render)
        return result
    finally:
        if browser is not None:
            browser.quit()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default: the preset's own)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch threads, one studio per value (flexip studio --threads)")
    args = parser.parse_args()

    from flexip.app.server import QUEUE_POLL
    from flexip.presets import get_preset

    demo = get_preset("miniworld").demo()
    steps = args.steps or demo.steps
    folder = Path(tempfile.mkdtemp(prefix="studio-latency-"))
    results = [measure(threads, args.rounds, args.warmup, steps, folder) for threads in args.threads]
    load = os.getloadavg()

    rows, polling = [], []
    for result in results:
        studio, server, bare, no_grad = (statistics.median(v) for v in (result.studio, result.server, result.bare, result.no_grad))
        page = f"**{statistics.median(result.browser):.3f}** ({percentile(result.browser, 0.9):.3f})" if result.browser else "— (no Chromium)"
        gradio_poll, studio_poll = result.polling[GRADIO_POLL], result.polling[QUEUE_POLL]
        polling.append(
            f"{result.threads} thread(s): {gradio_poll:.3f} s beside the {GRADIO_POLL * 1000:g} ms loop, {studio_poll:.3f} s beside the {QUEUE_POLL * 1000:g} ms one ({gradio_poll / studio_poll:.2f}×)"
        )
        rows.append(
            f"| {result.threads} | {page} | **{studio:.3f}** ({percentile(result.studio, 0.9):.3f}) | {server:.3f} ({percentile(result.server, 0.9):.3f}) "
            f"| {bare:.3f} ({percentile(result.bare, 0.9):.3f}) | {no_grad:.3f} ({bare / no_grad:.2f}×) | {result.unet:.3f} "
            f"| {studio / bare:.2f}× ({studio - bare:+.3f} s) | {result.startup:.1f} |"
        )
    best = min(statistics.median(result.studio) for result in results)
    verdict = "meets" if best <= TARGET_SECONDS else "misses"
    pages = [statistics.median(result.browser) for result in results if result.browser]
    page_verdict = f"; in the browser, {'meets' if min(pages) <= TARGET_SECONDS else 'misses'} it" if pages else ""
    markdown = f"""## FlexIP Studio: γ change → new image (`benchmarks/studio_latency.py`)

The miniworld preset at its default {steps} steps (guidance {demo.guidance:g}, 32 × 32 px, CPU), {args.rounds} rounds after
{args.warmup} warm-up rounds, a new γ each round. *Studio*: `gradio_client` `predict(gamma=…, api_name="/render")` from the call
to the PNG downloaded (request, queue, render, PNG, download: what a person waits for after moving the dial, less the
browser's paint). *Server pipeline*: the studio's own timing of its pipeline call. *Bare*: the same render in one process,
`pipe(prompt, reference_embeds=embeds, gamma=…)`, the reference encoded once, in inference mode as the studio renders;
*bare, no_grad*: the same call under `torch.no_grad` (the pipeline's own default, as `flexip generate` runs it), and
bare's time as a fraction of it. Studio and the two bare calls (in alternating order) run one after the other in each round ({PAUSE} s apart), with the same number of torch threads (`flexip studio --threads`), so they share the
machine's load at that moment; the load average (1, 5, 15 min) at the end was {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f} on {os.cpu_count()} CPUs.

| torch threads | browser: median (90th pct.), s | studio: median (90th pct.), s | server pipeline, s | bare pipeline, s | bare, no_grad, s (bare / it) | UNet alone, s | studio / bare | studio start, s |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

*UNet alone*: {steps} forward passes of the bare UNet on the guided batch of 2, the part of any render at these
settings that nothing in the studio or the adapter can remove.

*Browser*: headless Chromium on the page, from the slider's input event to the new image loaded (the paint
after it not included). gradio_client polls for the server's messages every 50 ms, the page does not.

Gradio's own polling: the bare call in a worker thread beside an asyncio loop waking every {GRADIO_POLL * 1000:g} ms (Gradio's queue
default) and every {QUEUE_POLL * 1000:g} ms (what the studio sets, `flexip.app.server.calm_queue`), medians of 10 alternating
renders each: {"; ".join(polling)}.

Target: a median of {TARGET_SECONDS} s through the studio; the best configuration here {verdict} it through gradio_client{page_verdict}. The bare call runs in
this script's main thread, the studio's in one of the server's worker threads; on a loaded machine two torch threads
in a main thread can be many times slower than one (they wait on each other at every small operation), so compare
the rows with that in mind.
"""
    print(markdown)
    print("written to", write_section("studio_latency", markdown).name)


if __name__ == "__main__":
    main()
