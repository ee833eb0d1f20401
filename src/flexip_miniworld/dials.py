"""The methods `flexip miniworld evaluate` measures, each with one dial, rendered as its users run it.

- `flexip`: `FlexIPPipeline` with the preset's (or a given) FlexIP adapter; the dial is γ (one call renders
  every γ from one noise per prompt), the subject's references averaged (the pipeline's default).
- `ip-adapter`: diffusers' own `StableDiffusionPipeline` on the same base, the IP-Adapter Plus checkpoint
  loaded by `load_ip_adapter`; the dial is `set_ip_adapter_scale`, one call per value from the same
  generator seed, the subject's references passed as a list (diffusers' default: all their tokens).

Both start every image of a (subject, prompt) from the same initial noise — the base model's (dial-free)
render of it included — so the methods differ only in what they add. They render in inference mode (no
autograd bookkeeping at all, the same pixels as no_grad, a little faster): they only ever return images.
"""

from __future__ import annotations

from pathlib import Path

import torch

from flexip.errors import FlexIPInputError

METHODS = ("flexip", "ip-adapter")
#: the dial's name in condition keys ("gamma=0.5", "scale=0.5") and tables
DIAL_NAMES = {"flexip": "gamma", "ip-adapter": "scale"}
#: The 11-value sweep of the frontier statistics plus the quarter values of the 5-value sweep.
SWEEP_11 = tuple(round(0.1 * k, 1) for k in range(11))
SWEEP_5 = (0.0, 0.25, 0.5, 0.75, 1.0)
DIAL_VALUES = tuple(sorted(set(SWEEP_11) | set(SWEEP_5)))


def condition_key(method: str, value: float) -> str:
    return f"{DIAL_NAMES[method]}={value}"


class FlexIPDial:
    def __init__(self, preset_dir: Path, adapter_dir: Path | None, device: str, scale: float = 1.0):
        from flexip.loading import load_components
        from flexip.models.adapter import FlexIPAdapter
        from flexip.pipelines.pipeline_flexip import FlexIPPipeline

        components = load_components(str(preset_dir / "base"), str(preset_dir / "image_encoder"), str(preset_dir / "dino"))
        adapter = FlexIPAdapter.from_pretrained(str(adapter_dir or preset_dir / "adapter")).eval()
        self.pipe = FlexIPPipeline(**components, adapter=adapter).to(device)
        self.pipe.set_progress_bar_config(disable=True)
        self.scale = scale

    @torch.inference_mode()
    def base(self, references: list, texts: list[str], steps: int, guidance: float, seed: int) -> list:
        generator = torch.Generator().manual_seed(seed)
        return self.pipe(texts, adapter_scale=0.0, num_inference_steps=steps, guidance_scale=guidance, generator=generator).images

    @torch.inference_mode()
    def sweep(self, references: list, texts: list[str], values, steps: int, guidance: float, seed: int) -> dict[float, list]:
        values = list(values)
        images = self.pipe(
            texts,
            reference_embeds=self.pipe.encode_reference(references),
            gamma=values,
            adapter_scale=self.scale,
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=torch.Generator().manual_seed(seed),
        ).images  # prompt-major: p0 γ0..γn, p1 ...
        return {value: [images[p * len(values) + k] for p in range(len(texts))] for k, value in enumerate(values)}


class IPAdapterDial:
    def __init__(self, preset_dir: Path, adapter_dir: Path, device: str):
        from flexip.evaluation.baselines import load_ip_adapter_pipeline
        from flexip.models.ip_adapter_plus import CONFIG_NAME, WEIGHTS_NAME

        if adapter_dir is None or not (Path(adapter_dir) / WEIGHTS_NAME).is_file():
            raise FlexIPInputError(
                f"--method ip-adapter needs --adapter: a folder with {WEIGHTS_NAME} and {CONFIG_NAME} (written by flexip train model.method=ip-adapter)"
            )
        base, encoder = str(preset_dir / "base"), str(preset_dir / "image_encoder")
        self.pipe = load_ip_adapter_pipeline(base, str(adapter_dir), "", WEIGHTS_NAME, device, image_encoder=encoder)

    @torch.inference_mode()
    def base(self, references: list, texts: list[str], steps: int, guidance: float, seed: int) -> list:
        """Scale 0: the processors add 0 × the image attention, so this is the base model (tested)."""
        return self.sweep(references, texts, [0.0], steps, guidance, seed)[0.0]

    @torch.inference_mode()
    def sweep(self, references: list, texts: list[str], values, steps: int, guidance: float, seed: int) -> dict[float, list]:
        # one copy per call; the pipeline repeats it for each prompt, as it does with `ip_adapter_image=[references]`
        embeds = self.pipe.prepare_ip_adapter_image_embeds([references], None, self.pipe.device, 1, guidance > 1)
        out = {}
        for value in values:
            self.pipe.set_ip_adapter_scale(float(value))
            generator = torch.Generator().manual_seed(seed)
            call = dict(num_inference_steps=steps, guidance_scale=guidance, generator=generator, ip_adapter_image_embeds=embeds)
            out[value] = self.pipe(texts, **call).images
        return out


def make_dial(method: str, preset_dir: Path, adapter_dir: Path | None, device: str, scale: float = 1.0):
    if method not in METHODS:
        raise FlexIPInputError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "ip-adapter":
        if scale != 1.0:
            raise FlexIPInputError("--scale is FlexIP's adapter scale; IP-Adapter's scale is its dial (swept 0 … 1)")
        return IPAdapterDial(Path(preset_dir), Path(adapter_dir) if adapter_dir else None, device)
    return FlexIPDial(Path(preset_dir), Path(adapter_dir) if adapter_dir else None, device, scale)
