"""The IP-Adapter baseline (Ye et al. 2023) through diffusers, evaluated by the same harness as FlexIP.

IP-Adapter has one dial, the adapter scale (`set_ip_adapter_scale`): 0 = the base model, 1 = full image
conditioning. `IPAdapterMethod` exposes it as the control "scale", so `runner.generate_benchmark`
sweeps it exactly as it sweeps FlexIP's γ: the same prompts, references, seeds and initial noise, and
the results land on the same plot axes (`report.py`).

Reference weights (users' machines): `h94/IP-Adapter`, `models/ip-adapter_sd15.bin`, with its image
encoder `models/image_encoder` (OpenCLIP ViT-H/14), on `stable-diffusion-v1-5/stable-diffusion-v1-5`.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from flexip.errors import FlexIPInputError
from flexip.evaluation.defaults import DEFAULT_BASE_MODEL
from flexip.evaluation.runner import GenerationSettings, pipeline_dtype, seeded_generator, size_arguments

DEFAULT_IP_ADAPTER = "h94/IP-Adapter"
DEFAULT_IP_ADAPTER_SUBFOLDER = "models"
DEFAULT_IP_ADAPTER_WEIGHTS = "ip-adapter_sd15.bin"


def load_ip_adapter_pipeline(
    base_model: str = DEFAULT_BASE_MODEL,
    ip_adapter: str = DEFAULT_IP_ADAPTER,
    subfolder: str = DEFAULT_IP_ADAPTER_SUBFOLDER,
    weight_name: str = DEFAULT_IP_ADAPTER_WEIGHTS,
    device: str | None = None,
    dtype: str | None = None,
    image_encoder: str | None = None,
):
    """A `StableDiffusionPipeline` with IP-Adapter loaded (`load_ip_adapter`, image encoder included). The image
    encoder comes from the checkpoint's `image_encoder/` (diffusers' default) unless `image_encoder` names a
    CLIP vision folder or preset id (e.g. "miniworld:image_encoder" for the baseline `flexip train` writes)."""
    from diffusers import StableDiffusionPipeline

    from flexip.devices import resolve_device

    device = resolve_device(device)
    torch_dtype = pipeline_dtype(dtype, device)
    try:
        pipe = StableDiffusionPipeline.from_pretrained(base_model, torch_dtype=torch_dtype, safety_checker=None)
        if image_encoder is None:
            pipe.load_ip_adapter(ip_adapter, subfolder=subfolder, weight_name=weight_name)
        else:
            from flexip.loading import encoder_components

            pipe.register_modules(**encoder_components("image_encoder", image_encoder, torch_dtype))
            pipe.load_ip_adapter(ip_adapter, subfolder=subfolder, weight_name=weight_name, image_encoder_folder=None)
    except (OSError, ValueError) as error:
        raise FlexIPInputError(f"could not load the IP-Adapter baseline ({base_model} + {ip_adapter}/{subfolder}/{weight_name}): {error}") from None
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


class _Reference:
    """A subject's reference images and their IP-Adapter embeddings, encoded once per guidance mode."""

    def __init__(self, images: list[Image.Image]):
        self.images = images
        self.embeds: dict[bool, list] = {}


class IPAdapterMethod:
    """IP-Adapter under evaluation: one pipeline call per scale value, all from the same seed."""

    name = "IP-Adapter"
    control = "scale"

    def __init__(self, pipe, description: dict | None = None):
        if not hasattr(pipe, "set_ip_adapter_scale") or getattr(pipe, "image_encoder", None) is None:
            raise FlexIPInputError("the IP-Adapter baseline needs a diffusers pipeline with an IP-Adapter and its image encoder loaded")
        self.pipe = pipe
        self.description = description or {"pipeline": type(pipe).__name__}

    @classmethod
    def from_pretrained(
        cls,
        base_model: str = DEFAULT_BASE_MODEL,
        ip_adapter: str = DEFAULT_IP_ADAPTER,
        subfolder: str = DEFAULT_IP_ADAPTER_SUBFOLDER,
        weight_name: str = DEFAULT_IP_ADAPTER_WEIGHTS,
        device: str | None = None,
        dtype: str | None = None,
        image_encoder: str | None = None,
    ) -> IPAdapterMethod:
        pipe = load_ip_adapter_pipeline(base_model, ip_adapter, subfolder, weight_name, device, dtype, image_encoder)
        description = {
            "base_model": base_model,
            "ip_adapter": f"{ip_adapter}/{subfolder}/{weight_name}",
            "device": str(pipe.device),
            "dtype": str(pipe.dtype),
        }
        return cls(pipe, description)

    def encode_reference(self, images: list[Image.Image]) -> _Reference:
        return _Reference(list(images))

    def _embeds(self, reference: _Reference, guided: bool) -> list:
        if guided not in reference.embeds:
            reference.embeds[guided] = self.pipe.prepare_ip_adapter_image_embeds(
                ip_adapter_image=[reference.images],  # one adapter; its reference image(s)
                ip_adapter_image_embeds=None,
                device=self.pipe.device,
                num_images_per_prompt=1,
                do_classifier_free_guidance=guided,
            )
        return reference.embeds[guided]

    def _scales(self) -> list:
        return [processor.scale for processor in self.pipe.unet.attn_processors.values() if hasattr(processor, "scale")]

    def _restore_scales(self, scales: list) -> None:
        processors = [processor for processor in self.pipe.unet.attn_processors.values() if hasattr(processor, "scale")]
        for processor, scale in zip(processors, scales):
            processor.scale = scale

    def generate(self, prompt: str, reference: _Reference, values: Sequence[float], seed: int, settings: GenerationSettings) -> list[Image.Image]:
        guided = settings.guidance_scale > 1
        embeds = self._embeds(reference, guided)
        previous = self._scales()
        images = []
        try:
            for scale in values:
                self.pipe.set_ip_adapter_scale(float(scale))
                output = self.pipe(
                    prompt=prompt,
                    ip_adapter_image_embeds=embeds,
                    negative_prompt=settings.negative_prompt,
                    num_inference_steps=settings.num_inference_steps,
                    guidance_scale=settings.guidance_scale,
                    generator=seeded_generator(seed),
                    num_images_per_prompt=1,
                    output_type="pil",
                    **size_arguments(settings),
                )
                images.append(output.images[0])
        finally:
            self._restore_scales(previous)  # leave the shared pipeline as it was
        return images

    def describe(self) -> dict:
        return dict(self.description)
