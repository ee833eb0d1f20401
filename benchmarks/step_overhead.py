"""Per-step cost of FlexIP at real Stable Diffusion 1.5 size, next to the base UNet and diffusers' IP-Adapter-Plus.

All three use random weights with the published SD1.5 UNet config (fp32, CPU by default). One UNet step =
one forward pass at 512 px (64×64 latents), batch 2. Variants are interleaved round by round and the
median is reported, so drift of the machine hits all of them alike.

- base: the plain UNet;
- FlexIP: the same UNet with the adapter injected (both branches active, γ = 0.5), tokens precomputed
  as the pipeline does once per call; every step projects the tokens' K'/V' (the pipeline's first step; its
  later steps reuse them, so this is FlexIP's most expensive step);
- IP-Adapter-Plus: a copy of the UNet with a random IP-Adapter-Plus state dict (original key format)
  loaded through `StableDiffusionPipeline.load_ip_adapter`, scale 1; its image projection (resampler)
  runs inside every UNet call, as in diffusers.

Also: peak resident memory during one step (Linux VmHWM, reset before each step) and the cost of a
5-value γ sweep in one batched call vs 5 calls with the reference encoded once (denoising only,
`output_type="latent"`, 256 px, 2 steps, guidance on).

    python benchmarks/step_overhead.py [--rounds 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _results import write_section  # noqa: E402

from flexip.encoders.reference import ReferenceEmbeds  # noqa: E402
from flexip.gate import GateSettings  # noqa: E402
from flexip.models import FlexIPAdapter, FlexIPConditioning, inject_adapter, remove_adapter  # noqa: E402
from flexip.testing import SD15_UNET_CONFIG  # noqa: E402


def random_ip_adapter_plus_state_dict(unet, clip_hidden=1280, cross=768, width=768, queries=16, depth=4) -> dict:
    """A random IP-Adapter-Plus checkpoint in the original repository's key format."""
    g = torch.Generator().manual_seed(0)
    rand = lambda *shape: torch.randn(*shape, generator=g) * 0.02
    proj = {
        "latents": rand(1, queries, width),
        "proj_in.weight": rand(width, clip_hidden),
        "proj_in.bias": rand(width),
        "proj_out.weight": rand(cross, width),
        "proj_out.bias": rand(cross),
        "norm_out.weight": torch.ones(cross),
        "norm_out.bias": torch.zeros(cross),
    }
    for i in range(depth):
        for norm in ("norm1", "norm2"):
            proj[f"layers.{i}.0.{norm}.weight"], proj[f"layers.{i}.0.{norm}.bias"] = torch.ones(width), torch.zeros(width)
        proj[f"layers.{i}.0.to_q.weight"] = rand(width, width)
        proj[f"layers.{i}.0.to_kv.weight"] = rand(2 * width, width)
        proj[f"layers.{i}.0.to_out.weight"] = rand(width, width)
        proj[f"layers.{i}.1.0.weight"], proj[f"layers.{i}.1.0.bias"] = torch.ones(width), torch.zeros(width)
        proj[f"layers.{i}.1.1.weight"] = rand(4 * width, width)
        proj[f"layers.{i}.1.3.weight"] = rand(width, 4 * width)
    ip, key_id = {}, 1
    for name in unet.attn_processors:
        if name.endswith("attn2.processor"):
            hidden = unet.get_submodule(name.removesuffix(".processor")).to_q.out_features
            ip[f"{key_id}.to_k_ip.weight"], ip[f"{key_id}.to_v_ip.weight"] = rand(hidden, cross), rand(hidden, cross)
            key_id += 2
    return {"image_proj": proj, "ip_adapter": ip}


def _peak_memory_run(run) -> tuple[float, float]:
    """(resident MiB before, peak MiB during) one call of `run`, from /proc (Linux)."""
    status = Path("/proc/self/status")
    if not status.exists():
        run()
        return float("nan"), float("nan")
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark
    read = lambda key: int(next(line for line in status.read_text().splitlines() if line.startswith(key)).split()[1]) / 1024
    before = read("VmRSS")
    run()
    return before, read("VmHWM")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 gives steadier numbers on a busy machine)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from flexip.pipelines import FlexIPPipeline
    from flexip.testing import tiny_base_components, tiny_reference_encoders

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**SD15_UNET_CONFIG).eval().to(device)
    ip_unet = copy.deepcopy(unet)
    adapter = FlexIPAdapter.from_unet(unet, clip_embed_dim=1024, dino_hidden_dim=1024).eval()
    tiny = tiny_base_components()
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tiny["tokenizer"]),
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=77,
            bos_token_id=tiny["tokenizer"].bos_token_id,
            eos_token_id=tiny["tokenizer"].eos_token_id,
            pad_token_id=tiny["tokenizer"].pad_token_id,
        )
    ).eval()
    sd = StableDiffusionPipeline(
        vae=tiny["vae"],
        text_encoder=text_encoder,
        tokenizer=tiny["tokenizer"],
        unet=ip_unet,
        scheduler=tiny["scheduler"],
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    sd.load_ip_adapter(random_ip_adapter_plus_state_dict(ip_unet), subfolder=None, weight_name=None, image_encoder_folder=None)
    sd.set_ip_adapter_scale(1.0)

    batch = 2
    g = torch.Generator().manual_seed(1)
    sample = torch.randn(batch, 4, 64, 64, generator=g).to(device)
    text = torch.randn(batch, 77, 768, generator=g).to(device)
    clip_hidden = torch.randn(batch, 1, 257, 1280, generator=g).to(device)  # ViT-H penultimate hidden states, as Plus uses
    with torch.no_grad():
        pres = adapter.preservation_tokens(torch.randn(batch, 1024, generator=g), torch.randn(batch, 256, 1024, generator=g))
        pers = adapter.personalization_tokens(text, torch.randn(batch, 1024, generator=g))
    conditioning = FlexIPConditioning(pres, pers, GateSettings(gamma=0.5))
    injection = None

    def use_flexip(enabled: bool) -> None:  # (un)injected outside the timed region
        nonlocal injection
        if enabled and injection is None:
            injection = inject_adapter(unet, adapter)
            injection.state.conditioning = conditioning
        elif not enabled and injection is not None:
            remove_adapter(injection)
            injection = None

    variants = {
        "base": (lambda: use_flexip(False), lambda: unet(sample, 500, encoder_hidden_states=text)),
        "FlexIP": (lambda: use_flexip(True), lambda: unet(sample, 500, encoder_hidden_states=text)),
        "IP-Adapter-Plus": (
            lambda: None,
            lambda: ip_unet(sample, 500, encoder_hidden_states=text, added_cond_kwargs={"image_embeds": [clip_hidden]}),
        ),
    }
    times = {name: [] for name in variants}
    memory, flops = {}, {}
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad():
        for name, (setup, step) in variants.items():  # warm-up round, also used for peak memory
            setup()
            memory[name] = _peak_memory_run(step)
            with FlopCounterMode(display=False) as counter:  # exact operation count: free of timing noise
                step()
            flops[name] = counter.get_total_flops()
        for round_index in range(args.rounds):
            for name, (setup, step) in variants.items():
                setup()
                start = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - start)
            print(f"round {round_index + 1}/{args.rounds}: " + ", ".join(f"{n} {t[-1]:.2f}s" for n, t in times.items()), flush=True)
    use_flexip(False)
    median = {name: statistics.median(values) for name, values in times.items()}

    # γ sweep: one batched call vs five calls, reference encoded once
    components = dict(tiny)
    components.update(text_encoder=text_encoder, unet=unet, vae=_sd15_vae())
    pipe = FlexIPPipeline(**components, **tiny_reference_encoders(), adapter=adapter)
    pipe.set_progress_bar_config(disable=True)
    embeds = ReferenceEmbeds(torch.randn(1, 1024, generator=g), torch.randn(1, 256, 1024, generator=g))
    gammas = [0.0, 0.25, 0.5, 0.75, 1.0]
    call = lambda gamma: pipe(
        "a dog in the snow",
        reference_embeds=embeds,
        gamma=gamma,
        num_inference_steps=2,
        height=256,
        width=256,
        output_type="latent",
        generator=torch.Generator().manual_seed(0),
    )
    start = time.perf_counter()
    call(gammas)
    one_call = time.perf_counter() - start
    start = time.perf_counter()
    for gamma in gammas:
        call(gamma)
    five_calls = time.perf_counter() - start

    rows = [
        "| variant | median step (s) | runs | vs base | vs IP-Adapter-Plus | GFLOP per step | FLOPs vs base | RSS before step (MiB) | peak during step (MiB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in variants:
        before, peak = memory[name]
        rows.append(
            f"| {name} | {median[name]:.2f} | {len(times[name])} | {median[name] / median['base']:.3f}× | "
            f"{median[name] / median['IP-Adapter-Plus']:.3f}× | {flops[name] / 1e9:.0f} | {flops[name] / flops['base']:.4f}× | {before:.0f} | {peak:.0f} |"
        )
    adapter_params = sum(p.numel() for p in adapter.parameters())
    markdown = "\n".join(
        [
            "## One UNet step at SD1.5 size (`benchmarks/step_overhead.py`)",
            "",
            f"Random weights, SD1.5 UNet config, 512 px (64×64 latents), batch {batch}, fp32, device `{args.device}`; "
            f"{torch.get_num_threads()} torch threads; variants interleaved, median of {args.rounds} rounds after one warm-up. FlexIP adapter: {adapter_params / 1e6:.1f} M parameters, γ = 0.5 "
            "(both branches computed). Targets: FlexIP ≤ 1.10× base and ≤ 1.05× IP-Adapter-Plus.",
            "",
            *rows,
            "",
            f"5-value γ sweep (denoising only, 256 px, 2 steps, guidance 7.5, reference encoded once): one batched call "
            f"{one_call:.1f} s vs five calls {five_calls:.1f} s ({five_calls / one_call:.2f}× faster in one call).",
        ]
    )
    print(markdown)
    print("written to", write_section("step_overhead", markdown))


def _sd15_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=2,
        sample_size=512,
    ).eval()


if __name__ == "__main__":
    main()
