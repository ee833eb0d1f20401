"""The prepared GPU check: one command, under 8 minutes on one CUDA device, that times FlexIP where it runs.

    python benchmarks/device_check.py                      # on a CUDA machine: writes the device_check section of RESULTS.md
    python benchmarks/device_check.py --out $OUT           # ... and device_check.md into $OUT
    python benchmarks/device_check.py --tiny --device cpu  # tiny configs on the CPU: checks the script (tests do this)

For SD1.5 (512 px) and SDXL (1024 px) UNets with random weights (published configs), in fp16 and bf16:
one denoising step (batch 2: guidance) of the base UNet, FlexIP (γ = 0.5, both branches) and diffusers'
IP-Adapter (base layout, scale 1), interleaved, median of --rounds, with the peak device memory of each;
one training step (forward + backward + AdamW on the adapter, UNet frozen, bf16 autocast) per family with its
peak memory; and FlexIPPipeline with model CPU offload against the same pipeline without it (the adapter must
follow the UNet onto the device).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

FAMILIES = ("sd15", "sdxl")
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}  # fp32: for the CPU check of the script


def unet_config(family: str, tiny: bool) -> dict:
    from flexip.testing import SD15_UNET_CONFIG

    if not tiny:
        if family == "sd15":
            return dict(SD15_UNET_CONFIG)
        from sdxl_step import SDXL_UNET_CONFIG

        return dict(SDXL_UNET_CONFIG)
    config = dict(
        sample_size=8,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        attention_head_dim=8,
        norm_num_groups=8,
        cross_attention_dim=32,
    )
    if family == "sdxl":
        config.update(
            cross_attention_dim=64,
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=80,
        )
    return config


class Stack:
    """One UNet of a family with FlexIP's adapter and diffusers' IP-Adapter, switched between variants."""

    def __init__(self, family: str, tiny: bool, device: torch.device, dtype: torch.dtype):
        from diffusers import UNet2DConditionModel
        from sdxl_step import random_ip_adapter_sdxl

        from flexip.models import FlexIPAdapter

        self.family, self.device, self.dtype = family, device, dtype
        config = unet_config(family, tiny)
        with torch.device(device):
            torch.manual_seed(0)
            self.unet = UNet2DConditionModel(**config).to(dtype).eval()
            self.clip_dim = 24 if tiny else (1024 if family == "sd15" else 1280)
            self.adapter = FlexIPAdapter.from_unet(self.unet, clip_embed_dim=self.clip_dim, dino_hidden_dim=32 if tiny else 1024).to(dtype).eval()
        self.base_processors = dict(self.unet.attn_processors)
        state = random_ip_adapter_sdxl(self.unet, self.clip_dim, torch.Generator().manual_seed(1))  # the base layout fits both families
        self.unet._load_ip_adapter_weights([state])
        self.ip_processors, self.ip_projection = dict(self.unet.attn_processors), self.unet.encoder_hid_proj
        self.unet.to(device=device, dtype=dtype)
        latent = config["sample_size"] if tiny else (64 if family == "sd15" else 128)
        generator = torch.Generator().manual_seed(2)
        rand = lambda *shape: torch.randn(*shape, generator=generator).to(device=device, dtype=dtype)
        self.sample, self.text = rand(2, 4, latent, latent), rand(2, 77, config["cross_attention_dim"])
        self.added = None
        if family == "sdxl":
            pooled = config["projection_class_embeddings_input_dim"] - 6 * config["addition_time_embed_dim"]
            size = float(latent * 8)
            self.added = {"text_embeds": rand(2, pooled), "time_ids": torch.tensor([[size, size, 0, 0, size, size]] * 2, device=device, dtype=dtype)}
        self.image_embeds = rand(2, 1, self.clip_dim)
        self.dino = rand(2, 16 if tiny else 256, 32 if tiny else 1024)
        self.injection = None

    def use(self, variant: str) -> None:
        from flexip.gate import GateSettings
        from flexip.models import FlexIPConditioning, inject_adapter, remove_adapter

        if self.injection is not None:
            remove_adapter(self.injection)
            self.injection = None
        self.unet.encoder_hid_proj = self.ip_projection if variant == "IP-Adapter" else None
        self.unet.set_attn_processor(dict(self.ip_processors if variant == "IP-Adapter" else self.base_processors))
        if variant == "FlexIP":
            with torch.no_grad():
                pres, pers = self.adapter(self.image_embeds[:, 0], self.dino, self.text)
            self.injection = inject_adapter(self.unet, self.adapter)
            self.injection.state.conditioning = FlexIPConditioning(pres, pers, GateSettings(gamma=0.5))

    @torch.no_grad()
    def step(self, variant: str) -> None:
        added = dict(self.added or {})
        if variant == "IP-Adapter":
            added["image_embeds"] = [self.image_embeds]
        self.unet(self.sample, 500, encoder_hidden_states=self.text, added_cond_kwargs=added or None)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")


def time_steps(stack: Stack, rounds: int) -> dict[str, tuple[float, float]]:
    """variant → (median step in ms, peak device memory in GiB during its steps)."""
    variants = ("base", "FlexIP", "IP-Adapter")
    times, peaks = {name: [] for name in variants}, {}
    for name in variants:  # warm-up (kernel selection, caches)
        stack.use(name)
        stack.step(name)
    for round_index in range(rounds):
        for name in variants:
            stack.use(name)
            synchronize(stack.device)
            if round_index == 0:
                peak_reset(stack.device)
            started = time.perf_counter()
            stack.step(name)
            synchronize(stack.device)
            times[name].append(time.perf_counter() - started)
            if round_index == 0:
                peaks[name] = peak_gib(stack.device)
    stack.use("base")
    return {name: (1000 * statistics.median(times[name]), peaks[name]) for name in variants}


def training_step(stack: Stack) -> tuple[float, float]:
    """(ms of one training step after a warm-up step, peak GiB), as `flexip train` with mixed_precision=bf16 runs
    it on a GPU: the frozen UNet in bf16, the adapter in fp32 under bf16 autocast, AdamW on the adapter only.
    On the CPU (the script's own check) everything stays fp32: CPU bf16 kernels are slow."""
    from flexip.models import FlexIPAdapter
    from flexip.training.model import FlexIPTrainingModel

    stack.use("base")
    dtype, low = stack.unet.dtype, torch.bfloat16 if stack.device.type == "cuda" else torch.float32
    unet = stack.unet.requires_grad_(False).to(low)
    with torch.device(stack.device):
        adapter = FlexIPAdapter.from_unet(unet, clip_embed_dim=stack.clip_dim, dino_hidden_dim=stack.dino.shape[-1]).float().train()
    model = FlexIPTrainingModel(unet, adapter)
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=1e-5)
    timesteps = torch.tensor([100, 700], device=stack.device)
    bf16 = lambda tensor: tensor.to(low)
    added = None if stack.added is None else {key: bf16(value) for key, value in stack.added.items()}

    def one_step() -> None:
        with torch.autocast(stack.device.type, dtype=torch.bfloat16, enabled=low == torch.bfloat16):
            noisy, text, clip, dino = bf16(stack.sample), bf16(stack.text), stack.image_embeds[:, 0].float(), stack.dino.float()
            loss = model(noisy, timesteps, text, clip, dino, torch.tensor([0.3, 0.8]), added).float().square().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    try:
        one_step()
        synchronize(stack.device)
        peak_reset(stack.device)
        started = time.perf_counter()
        one_step()
        synchronize(stack.device)
        return 1000 * (time.perf_counter() - started), peak_gib(stack.device)
    finally:
        model.detach_adapter()
        unet.to(dtype)


def offload_matches(device: torch.device) -> str:
    """FlexIPPipeline (tiny) with model CPU offload onto `device` renders what it renders without offload."""
    import numpy as np

    from flexip.testing import tiny_pipeline

    if device.type != "cuda":
        return "not run (needs a CUDA device)"
    pipe = tiny_pipeline(seed=0)
    reference = pipe.encode_reference(np.zeros((32, 32, 3), np.uint8))
    render = lambda: (
        pipe(
            "a dog", reference_embeds=reference, gamma=0.5, num_inference_steps=3, output_type="np", generator=torch.Generator().manual_seed(0)
        ).images
    )
    expected = pipe.to(device) and render()
    pipe.to("cpu")
    pipe.enable_model_cpu_offload(device=device)
    got = render()
    return f"max abs difference {float(np.abs(got - expected).max()):.2e} (adapter on {pipe.adapter.device} after the call)"


def check(device: torch.device, tiny: bool, rounds: int, dtypes: list[str]) -> str:
    started = time.perf_counter()
    rows, training_rows = [], []
    for family in FAMILIES:
        for dtype_name in dtypes:
            stack = Stack(family, tiny, device, DTYPES[dtype_name])
            results = time_steps(stack, rounds)
            base = results["base"][0]
            for name, (milliseconds, peak) in results.items():
                rows.append(f"| {family} | {dtype_name} | {name} | {milliseconds:.1f} | {milliseconds / base:.3f}× | {peak:.2f} |")
            if dtype_name == dtypes[0]:
                milliseconds, peak = training_step(stack)
                precision = "UNet bf16 (frozen), adapter fp32, bf16 autocast" if device.type == "cuda" else "fp32 (CPU)"
                training_rows.append(f"| {family} | {precision} | {milliseconds:.0f} | {peak:.2f} |")
            del stack
            if device.type == "cuda":
                torch.cuda.empty_cache()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    size = "tiny configs" if tiny else "SD1.5 at 512 px, SDXL at 1024 px"
    return f"""## GPU check (`benchmarks/device_check.py`)

{name}, {size}, random weights, batch 2 (guidance), median of {rounds} interleaved rounds after a warm-up; FlexIP at γ = 0.5
(both branches), IP-Adapter in its base layout at scale 1. Peak memory: `torch.cuda.max_memory_allocated` during the step.

| model | dtype | variant | step (ms) | vs base | peak memory (GiB) |
|---|---|---|---|---|---|
{chr(10).join(rows)}

One training step (batch 2, forward + backward + AdamW on the adapter; the UNet frozen):

| model | precision | step (ms) | peak memory (GiB) |
|---|---|---|---|
{chr(10).join(training_rows)}

FlexIPPipeline with model CPU offload vs without: {offload_matches(device)}. The whole check took {time.perf_counter() - started:.0f} s."""


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny configs (for the CPU: checks the script)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--dtypes", default="fp16,bf16")
    parser.add_argument("--out", default=None, help="also write device_check.md into this folder")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args(argv)
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # its notices on every dtype cast of a model
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run on a GPU machine, or pass --tiny --device cpu to check the script")
    markdown = check(device, args.tiny, args.rounds, args.dtypes.split(","))
    print(markdown)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "device_check.md").write_text(markdown + "\n")
    if not args.no_write and not args.tiny:
        from _results import write_section

        write_section("device_check", markdown)
    return markdown


if __name__ == "__main__":
    main()
