"""`FlexIPPipeline`: subject-driven text-to-image for Stable Diffusion 1.5-family checkpoints.

One `__call__` in numbered stages: check inputs (`inputs.py`) → encode prompt → encode reference → adapter
tokens → timesteps → latents → denoise → decode. FlexIP reaches the UNet the way it reaches any diffusers
pipeline (`flexip.integrations`): processors and hook attached for the denoising loop only, each step's
conditioning in `cross_attention_kwargs["flexip"]`, the shared UNet given back exactly as it was. Batch
layout: prompts × γ-sweep values × images per prompt; a sweep runs in one batched pass from one noise. γ is
checked once (`GateSettings`); the call derives the gate of its batch and of each step from it, never
changing it. diffusers' conventions hold (save/load with the adapter, `encode_prompt`, step callbacks,
`init_noise_sigma`, optional components, CPU offload, `from_pipe`): docs/integrations.md.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKL, DiffusionPipeline, UNet2DConditionModel
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.image_processor import VaeImageProcessor
from diffusers.loaders import StableDiffusionLoraLoaderMixin
from diffusers.pipelines.pipeline_utils import StableDiffusionMixin
from diffusers.schedulers import KarrasDiffusionSchedulers
from diffusers.utils import USE_PEFT_BACKEND, BaseOutput, scale_lora_layers, unscale_lora_layers
from diffusers.utils.torch_utils import randn_tensor
from transformers import BitImageProcessor, CLIPImageProcessor, CLIPTextModel, CLIPTokenizer, CLIPVisionModelWithProjection, Dinov2Model

from flexip.encoders.reference import ReferenceEmbeds, ReferenceEncoder
from flexip.errors import FlexIPError, FlexIPInputError
from flexip.gate import GammaLike, GateSettings
from flexip.integrations.layout import check_block_keys
from flexip.models.adapter import FlexIPAdapter
from flexip.models.attention_processor import FlexIPConditioning
from flexip.models.injection import CONDITIONING_KEY, attached
from flexip.pipelines.inputs import check_counts, check_guidance, check_size, negative_prompts, non_finite_message, per_prompt, prompt_list


@dataclass
class FlexIPPipelineOutput(BaseOutput):
    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    gammas: list[float | None]  # the γ of each image when it is a plain number (None for mappings/schedules)


class FlexIPPipeline(DiffusionPipeline, StableDiffusionMixin, StableDiffusionLoraLoaderMixin):
    # the adapter after the UNet: its forward (the tokens) runs before the loop and it must stay on the device
    # while the UNet runs (the UNet's processors use its K'/V'); the VAE's turn offloads it
    model_cpu_offload_seq = "text_encoder->image_encoder->dino_encoder->unet->adapter->vae"
    _optional_components = ["image_encoder", "feature_extractor", "dino_encoder", "dino_processor", "adapter"]
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds"]

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        unet: UNet2DConditionModel,
        scheduler: KarrasDiffusionSchedulers,
        image_encoder: CLIPVisionModelWithProjection | None = None,
        feature_extractor: CLIPImageProcessor | None = None,
        dino_encoder: Dinov2Model | None = None,
        dino_processor: BitImageProcessor | None = None,
        adapter: FlexIPAdapter | None = None,
    ):
        super().__init__()
        if adapter is not None:
            adapter.check_compatible(unet)
            if image_encoder is not None and dino_encoder is not None:
                adapter.check_encoders(image_encoder, dino_encoder)
        self.register_modules(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            unet=unet,
            scheduler=scheduler,
            image_encoder=image_encoder,
            feature_extractor=feature_extractor,
            dino_encoder=dino_encoder,
            dino_processor=dino_processor,
            adapter=adapter,
        )
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1) if vae is not None else 8
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str,
        adapter=None,
        *,
        image_encoder: str | None = None,
        dino_encoder: str | None = None,
        allow_pickle: bool = False,
        **kwargs,
    ):
        """A folder written by `FlexIPPipeline.save_pretrained` (adapter included), or a diffusers SD1.5-family
        checkpoint plus a FlexIP adapter (folder or hub id, or an object).

        A base checkpoint may also name a preset shipped with FlexIP (see `flexip.presets`; `adapter` then
        defaults to the preset's own). The reference encoders default to a preset's own, else to the ids
        recorded in the adapter's config. The other keywords are diffusers' (`dtype` / `torch_dtype`, also a
        dict per component with a "default", `variant`, `device_map`, `use_safetensors`, ...)."""
        from flexip.loading import component_dtype, default_encoders, encoder_components, is_saved_pipeline, load_adapter, load_components
        from flexip.presets import is_preset

        if is_saved_pipeline(pretrained_model_name_or_path, cls.__name__):
            overrides = {} if adapter is None else {"adapter": load_adapter(adapter, allow_pickle=allow_pickle)}
            for name, model_id in (("image_encoder", image_encoder), ("dino_encoder", dino_encoder)):
                if model_id is not None:
                    overrides.update(encoder_components(name, model_id, component_dtype(kwargs, name)))
            return super().from_pretrained(pretrained_model_name_or_path, **overrides, **kwargs)
        base_model = pretrained_model_name_or_path
        adapter = load_adapter(adapter, base_model, allow_pickle=allow_pickle, torch_dtype=component_dtype(kwargs, "adapter"))
        own = default_encoders(base_model) if is_preset(base_model) else (adapter.config.image_encoder, adapter.config.dino_encoder)
        components = load_components(base_model, image_encoder or own[0], dino_encoder or own[1], **kwargs)
        if "text_encoder_2" in components:
            raise FlexIPInputError(
                f"{base_model} is an SDXL checkpoint; FlexIPPipeline is the SD1.5-family pipeline. Attach FlexIP to diffusers' own: "
                "FlexIP.attach(StableDiffusionXLPipeline.from_pretrained(...), adapter)"
            )
        pipe = cls(**components, adapter=adapter.eval())
        if is_preset(base_model):  # a shipped preset is part of the package: no progress bars of its own
            pipe.set_progress_bar_config(disable=True)
        return pipe

    # ---- diffusers' call properties -------------------------------------------------------------------
    @property
    def guidance_scale(self) -> float:
        return self._guidance_scale

    @property
    def do_classifier_free_guidance(self) -> bool:
        return self._guidance_scale > 1.0

    @property
    def cross_attention_kwargs(self) -> dict[str, Any] | None:
        return self._cross_attention_kwargs

    @property
    def clip_skip(self) -> int | None:
        return self._clip_skip

    @property
    def num_timesteps(self) -> int:
        return self._num_timesteps

    @property
    def interrupt(self) -> bool:
        return self._interrupt

    # ---- reusable encoders ----------------------------------------------------------------------
    def reference_encoder(self, multi_reference: str = "mean", fit: str = "center_crop") -> ReferenceEncoder:
        missing = [name for name in ("image_encoder", "feature_extractor", "dino_encoder", "dino_processor") if getattr(self, name) is None]
        if missing:
            raise FlexIPInputError(
                f"this pipeline has no {', '.join(missing)}: load it with its reference encoders, or pass reference_embeds= "
                "(encoded elsewhere) instead of reference_images="
            )
        return ReferenceEncoder(
            self.image_encoder,
            self.feature_extractor,
            self.dino_encoder,
            self.dino_processor,
            dino_layer=self.adapter.config.dino_layer if self.adapter is not None else -1,
            fit=fit,
            multi_reference=multi_reference,
            clip_hidden_layer=-2 if self.adapter is not None and self.adapter.reads_clip_tokens else None,
        )

    @torch.no_grad()
    def encode_reference(self, images, multi_reference: str = "mean", fit: str = "center_crop") -> ReferenceEmbeds:
        """Reference image(s) → `ReferenceEmbeds`, to pass back as `reference_embeds=` (γ changes never re-encode).

        One image or a flat list = one subject; a list of lists = one subject per inner list."""
        return self.reference_encoder(multi_reference, fit).encode(images)

    @torch.no_grad()
    def encode_prompt(
        self,
        prompt: str | list[str] | None,
        device: torch.device | None = None,
        num_images_per_prompt: int = 1,
        do_classifier_free_guidance: bool = True,
        negative_prompt: str | list[str] | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        lora_scale: float | None = None,
        clip_skip: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """diffusers' contract: (prompt_embeds, negative_prompt_embeds), each (prompts × num_images_per_prompt,
        77, dim); the negative one is None without classifier-free guidance."""
        device = device or self._execution_device
        prompts = prompt_list(prompt, prompt_embeds)
        with self._text_lora_scale(lora_scale):
            if prompt_embeds is None:
                prompt_embeds = self._encode_text(prompts, clip_skip, device)
            if do_classifier_free_guidance and negative_prompt_embeds is None:
                negative_prompt_embeds = self._encode_text(negative_prompts(negative_prompt, len(prompt_embeds)), clip_skip, device)
        dtype = self.text_encoder.dtype if self.text_encoder is not None else self.unet.dtype
        repeat = lambda embeds: None if embeds is None else embeds.to(device=device, dtype=dtype).repeat_interleave(num_images_per_prompt, 0)
        return repeat(prompt_embeds), repeat(negative_prompt_embeds) if do_classifier_free_guidance else None

    def _encode_text(self, prompts: list[str], clip_skip: int | None, device: torch.device) -> torch.Tensor:
        """Prompts → CLIP text token embeddings (batch, 77, dim), one row per prompt. `device`: the execution
        device, looked up once per call by the caller (diffusers' `_execution_device` walks every component)."""
        tokens = self.tokenizer(prompts, padding="max_length", max_length=self.tokenizer.model_max_length, truncation=True, return_tensors="pt")
        input_ids = tokens.input_ids.to(device)
        if clip_skip is None:
            return self.text_encoder(input_ids)[0]
        hidden = self.text_encoder(input_ids, output_hidden_states=True).hidden_states[-(clip_skip + 1)]
        return self.text_encoder.text_model.final_layer_norm(hidden)

    @contextmanager
    def _text_lora_scale(self, lora_scale: float | None):
        """A LoRA scale for the text encoder's LoRA layers (peft backend), for the duration of the block."""
        scaled = lora_scale is not None and USE_PEFT_BACKEND and self.text_encoder is not None
        if scaled:
            scale_lora_layers(self.text_encoder, lora_scale)
        try:
            yield
        finally:
            if scaled:
                unscale_lora_layers(self.text_encoder, lora_scale)

    # ---- the call -------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        reference_images=None,
        *,
        reference_embeds: ReferenceEmbeds | None = None,
        gamma: GammaLike | None = None,
        adapter_scale: float = 1.0,
        w_pres: float | None = None,
        w_pers: float | None = None,
        negative_prompt: str | list[str] | None = None,
        num_inference_steps: int = 30,
        guidance_scale: float = 7.5,
        eta: float = 0.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        num_images_per_prompt: int = 1,
        height: int | None = None,
        width: int | None = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        multi_reference: str = "mean",
        output_type: str = "pil",
        return_dict: bool = True,
        cross_attention_kwargs: dict[str, Any] | None = None,
        clip_skip: int | None = None,
        callback_on_step_end: Callable[[DiffusionPipeline, int, torch.Tensor, dict], dict] | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
    ):
        """Render `prompt` with the subject of the reference. `gamma` takes every form of `flexip.gate.Gamma`
        (a number, a list = a sweep, a per-prompt tensor, a per-block mapping, a schedule) or a `Gamma`;
        `w_pres` and `w_pers` replace it; `adapter_scale` = 0 is the base model. `prompt_embeds` /
        `negative_prompt_embeds` hold one row per prompt. `cross_attention_kwargs` reach the UNet's attention
        as in diffusers (`{"scale": s}`: LoRA scale). `callback_on_step_end(pipe, step, timestep, callback_kwargs)`
        gets the tensors named in `callback_on_step_end_tensor_inputs` (of `_callback_tensor_inputs`; its
        `prompt_embeds` is the UNet's text batch, guidance halves included) and may return replacements.
        Output: `images`, `gammas`."""
        # 1. check inputs
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        callback_inputs = list(callback_on_step_end_tensor_inputs or ["latents"])
        unknown = [name for name in callback_inputs if name not in self._callback_tensor_inputs]
        if unknown:
            raise FlexIPInputError(f"callback_on_step_end_tensor_inputs must be among {self._callback_tensor_inputs}, got {unknown}")
        if cross_attention_kwargs is not None and CONDITIONING_KEY in cross_attention_kwargs:
            raise FlexIPInputError(f'cross_attention_kwargs["{CONDITIONING_KEY}"] is set by this pipeline from gamma and the reference')
        device = self._execution_device
        prompts = prompt_list(prompt, prompt_embeds)
        num_prompts = len(prompts) if prompts is not None else prompt_embeds.shape[0]
        gate = GateSettings(gamma=gamma, adapter_scale=adapter_scale, w_pres=w_pres, w_pers=w_pers)  # γ checked here, once
        sweep = gate.sweep  # the γ of each sweep column (one column unless γ is a sweep)
        check_counts(num_inference_steps, num_images_per_prompt, self.scheduler)
        guidance_scale = check_guidance(guidance_scale)
        if self.adapter is None and not gate.is_off:
            raise FlexIPInputError("this pipeline has no adapter: load one (adapter=...), or pass adapter_scale=0 for the base model")
        if self.adapter is not None:
            check_block_keys(gate, list(self.adapter.target_layers))
        height = self.unet.config.sample_size * self.vae_scale_factor if height is None else height
        width = self.unet.config.sample_size * self.vae_scale_factor if width is None else width
        check_size(height, width, self.vae_scale_factor)
        self._guidance_scale, self._cross_attention_kwargs, self._clip_skip, self._interrupt = (
            guidance_scale,
            cross_attention_kwargs,
            clip_skip,
            False,
        )
        do_guidance = self.do_classifier_free_guidance
        repeat = len(sweep) * num_images_per_prompt  # rows per prompt
        batch = num_prompts * repeat
        gate = gate.for_batch(num_prompts, num_images_per_prompt, repeat=2 if do_guidance else 1)  # one value per row

        # 2. encode prompt (one row per prompt; laid out per image below)
        lora_scale = cross_attention_kwargs.get("scale") if cross_attention_kwargs else None
        with self._text_lora_scale(lora_scale):
            if prompt_embeds is None:
                prompt_embeds = self._encode_text(prompts, clip_skip, device)
            if negative_prompt_embeds is None:
                negative_prompt_embeds = self._encode_text(negative_prompts(negative_prompt, num_prompts), clip_skip, device)
        dtype = self.unet.dtype
        prompt_embeds = prompt_embeds.to(device=device, dtype=dtype)
        negative_prompt_embeds = negative_prompt_embeds.to(device=device, dtype=dtype)

        # 3. encode reference (skipped entirely when the gate is off)
        conditioning = None
        if not gate.is_off:
            if reference_embeds is None:
                if reference_images is None:
                    raise FlexIPInputError("give reference_images or reference_embeds (or adapter_scale=0 for the base model)")
                reference_embeds = self.encode_reference(reference_images, multi_reference)
            reference = per_prompt(reference_embeds, num_prompts).to(device=device, dtype=dtype)

            # 4. adapter tokens: C_pres (identity) and C_pers (text enriched by the subject); no image = zeros
            no_image = reference.zeros_like()
            pres, pers = self.adapter(reference.clip_embeds, reference.dino_tokens, prompt_embeds, reference.clip_tokens)
            pres, pers = pres.repeat_interleave(repeat, 0), pers.repeat_interleave(repeat, 0)
            if do_guidance:
                pres_uncond, pers_uncond = self.adapter(no_image.clip_embeds, no_image.dino_tokens, negative_prompt_embeds, no_image.clip_tokens)
                pres, pers = torch.cat([pres_uncond.repeat_interleave(repeat, 0), pres]), torch.cat([pers_uncond.repeat_interleave(repeat, 0), pers])
            conditioning = FlexIPConditioning(pres, pers, gate, projections={})  # K'/V' once per call, not per step
        text = prompt_embeds.repeat_interleave(repeat, 0)
        if do_guidance:
            text = torch.cat([negative_prompt_embeds.repeat_interleave(repeat, 0), text])

        # 5. timesteps, and the gate of each step (a γ schedule is evaluated here, once per step)
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        self._num_timesteps = len(timesteps)
        step_gates = gate.at_steps(len(timesteps)) if conditioning is not None else ()

        # 6. latents: one noise per (prompt, image), shared by every γ of a sweep; scaled as the scheduler needs
        shape = (
            num_prompts * num_images_per_prompt,
            self.unet.config.in_channels,
            height // self.vae_scale_factor,
            width // self.vae_scale_factor,
        )
        if latents is None:
            noise = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
            # (prompts, 1, images, c, h, w) -> (prompts, sweep, images, c, h, w) -> (batch, c, h, w)
            noise = noise.view(num_prompts, 1, num_images_per_prompt, *shape[1:]).expand(-1, len(sweep), -1, -1, -1, -1)
            latents = noise.reshape(batch, *shape[1:])
        elif latents.shape != (batch, *shape[1:]):
            raise FlexIPInputError(f"latents must have shape {(batch, *shape[1:])}, got {tuple(latents.shape)}")
        latents = latents.to(device=device, dtype=dtype) * self.scheduler.init_noise_sigma
        step_parameters = inspect.signature(self.scheduler.step).parameters
        step_kwargs = {key: value for key, value in (("generator", generator), ("eta", eta)) if key in step_parameters}

        # 7. denoise
        with self._attached(conditioning), self.progress_bar(total=len(timesteps)) as progress:
            for index, timestep in enumerate(timesteps):
                if self.interrupt:
                    continue
                extra = cross_attention_kwargs
                if conditioning is not None:
                    extra = {**(cross_attention_kwargs or {}), CONDITIONING_KEY: replace(conditioning, gate=step_gates[index])}
                model_input = torch.cat([latents] * 2) if do_guidance else latents
                model_input = self.scheduler.scale_model_input(model_input, timestep)
                prediction = self.unet(model_input, timestep, encoder_hidden_states=text, cross_attention_kwargs=extra).sample
                if do_guidance:
                    uncond, cond = prediction.chunk(2)
                    prediction = uncond + guidance_scale * (cond - uncond)
                latents = self.scheduler.step(prediction, timestep, latents, **step_kwargs).prev_sample
                if not torch.isfinite(latents).all():
                    raise FlexIPError(non_finite_message(self.adapter, self.unet, index, len(timesteps)))
                if callback_on_step_end is not None:
                    tensors = {"latents": latents, "prompt_embeds": text, "negative_prompt_embeds": negative_prompt_embeds}
                    outputs = callback_on_step_end(self, index, timestep, {name: tensors[name] for name in callback_inputs}) or {}
                    latents = outputs.pop("latents", latents)
                    text = outputs.pop("prompt_embeds", text)
                    negative_prompt_embeds = outputs.pop("negative_prompt_embeds", negative_prompt_embeds)
                progress.update()

        # 8. decode
        if output_type == "latent":
            images = latents
        else:
            decoded = self.vae.decode(latents / self.vae.config.scaling_factor).sample
            images = self.image_processor.postprocess(decoded, output_type=output_type)
        gammas = [value for _ in range(num_prompts) for value in sweep for _ in range(num_images_per_prompt)]
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images, gammas)
        return FlexIPPipelineOutput(images=images, gammas=gammas)

    # ---- helpers --------------------------------------------------------------------------------
    def _attached(self, conditioning: FlexIPConditioning | None):
        return nullcontext() if conditioning is None else attached(self.unet, self.adapter)
