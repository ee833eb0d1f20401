"""Helpers of the studio's tests: run `flexip studio` / `flexip study serve` in a subprocess on a free port of
127.0.0.1 and wait until it answers; a random IP-Adapter for the miniworld base (the Compare tab)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from flexip.presets import get_preset

MINIWORLD = get_preset("miniworld")
#: renders in the tests use few steps; the benchmark measures the preset's default
TEST_STEPS = 4


@dataclass
class Server:
    process: subprocess.Popen
    url: str
    cwd: Path
    out: Path
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(arguments: list[str], cwd: Path, out: Path, name: str, timeout: float = 240) -> Server:
    """Run `flexip ARGUMENTS --port P --out OUT` in `cwd` and wait until it answers."""
    port = free_port()
    log = cwd / f"{name}.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    with open(log, "a") as stream:
        process = subprocess.Popen(
            [sys.executable, "-m", "flexip.cli.main", *arguments, "--port", str(port), "--out", str(out)],
            cwd=cwd,
            env=env,
            stdout=stream,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, f"http://127.0.0.1:{port}/", cwd, out, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with code {process.returncode}:\n{server.log_text()[-4000:]}")
        try:
            with urllib.request.urlopen(server.url + "gradio_api/info", timeout=5) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    stop_server(server)
    pytest.fail(f"the server did not answer within {timeout} s:\n{server.log_text()[-4000:]}")


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def write_ip_adapter(folder: Path, seed: int = 0) -> Path:
    """A random IP-Adapter for the miniworld base in diffusers' checkpoint format: image_proj.* (4 tokens of the UNet's
    cross-attention width from the CLIP projection) and ip_adapter.<n>.to_k_ip / to_v_ip of every cross-attention layer,
    numbered 1, 3, 5 … in the UNet's processor order; its CLIP image encoder (the preset's) in image_encoder/ beside it."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file

    unet = UNet2DConditionModel.from_config(json.loads((MINIWORLD.folder / "base/unet/config.json").read_text()))
    clip_dim = json.loads((MINIWORLD.folder / "image_encoder/config.json").read_text())["projection_dim"]
    width = unet.config.cross_attention_dim
    generator = torch.Generator().manual_seed(seed)
    tensors = {
        "image_proj.proj.weight": torch.randn(4 * width, clip_dim, generator=generator) * 0.3,
        "image_proj.proj.bias": torch.zeros(4 * width),
        "image_proj.norm.weight": torch.ones(width),
        "image_proj.norm.bias": torch.zeros(width),
    }
    number = 1
    for name, module in unet.named_modules():
        if name.endswith("attn2"):  # cross-attention layers, in the order of unet.attn_processors
            tensors[f"ip_adapter.{number}.to_k_ip.weight"] = torch.randn(module.inner_dim, width, generator=generator) * 0.3
            tensors[f"ip_adapter.{number}.to_v_ip.weight"] = torch.randn(module.inner_dim, width, generator=generator) * 0.3
            number += 2
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(MINIWORLD.folder / "image_encoder", folder / "image_encoder", dirs_exist_ok=True)
    path = folder / "ip-adapter_miniworld.safetensors"
    save_file(tensors, str(path))
    return path
