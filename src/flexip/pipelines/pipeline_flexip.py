"""`FlexIPPipeline`: subject-driven text-to-image for Stable Diffusion 1.5-family checkpoints.

One `__call__` in numbered stages: check inputs → encode prompt → encode reference → adapter tokens →
timesteps → latents → denoise → decode. The adapter is injected into the UNet only for the denoising
loop and removed afterwards, so the shared UNet is never left modified. Schedulers do the step math.

Batch layout: prompts × γ-sweep values × images per prompt, in that order. A sweep (`gamma` given as a
list) runs in one batched pass, and every γ of a sweep starts from the same noise, so the columns of
a sweep differ only by γ.

γ is checked once, when the call makes its `GateSettings`; from it the call derives, never changing it,
the gate of its batch (sweep and per-prompt values laid out per row, tiled over the guidance copies) and
of each denoising step (a schedule is evaluated there, once per step, before denoising starts).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import PIL.Image
import torch
from diffusers import DiffusionPipeline
from diffusers.image_processor import VaeImageProcessor
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from flexip.encoders.reference import ReferenceEmbeds, ReferenceEncoder
from flexip.errors import FlexIPError, FlexIPInputError
from flexip.gate import GammaLike, GateSettings
from flexip.gate.gamma import block_prefix
from flexip.models.adapter import FlexIPAdapter
from flexip.models.attention_processor import FlexIPConditioning
from flexip.models.injection import injected


@dataclass
class FlexIPPipelineOutput(BaseOutput):
    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    gammas: list[float | None]  # the γ of each image when it is a plain number (None for mappings/schedules)


class FlexIPPipeline(DiffusionPipeline):
    model_cpu_offload_seq = "text_encoder->image_encoder->dino_encoder->unet->vae"

    def __init__(
        self,
        vae,
        text_encoder,
        tokenizer,
        unet,
        scheduler,
        image_encoder,
        feature_extractor,
        dino_encoder,
        dino_processor,
        adapter: FlexIPAdapter,
    ):
        super().__init__()
        adapter.check_compatible(unet)
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
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)

    @classmethod
    def from_pretrained(
        cls,
        base_model: str,
        adapter=None,
        *,
        image_encoder: str | None = None,
        dino_encoder: str | None = None,
        allow_pickle: bool = False,
        torch_dtype: torch.dtype | None = None,
    ):
        """Load a diffusers SD1.5-family checkpoint and a FlexIP adapter (folder or hub id, or an object).

        `base_model` may also name a preset shipped with FlexIP (see `flexip.presets`; `adapter` then defaults
        to the preset's own). The reference encoders default to a preset's own, else to the ids recorded in
        the adapter's config.
        """
        from flexip.loading import default_encoders, load_adapter, load_components
        from flexip.presets import is_preset

        adapter = load_adapter(adapter, base_model, allow_pickle=allow_pickle, torch_dtype=torch_dtype)
        own = default_encoders(base_model) if is_preset(base_model) else (adapter.config.image_encoder, adapter.config.dino_encoder)
        components = load_components(base_model, image_encoder or own[0], dino_encoder or own[1], torch_dtype)
        pipe = cls(**components, adapter=adapter.eval())
        if is_preset(base_model):  # a shipped preset is part of the package: no progress bars of its own
            pipe.set_progress_bar_config(disable=True)
        return pipe

    # ---- reusable encoders ----------------------------------------------------------------------
    def reference_encoder(self, multi_reference: str = "mean", fit: str = "center_crop") -> ReferenceEncoder:
        return ReferenceEncoder(
            self.image_encoder,
            self.feature_extractor,
            self.dino_encoder,
            self.dino_processor,
            dino_layer=self.adapter.config.dino_layer,
            fit=fit,
            multi_reference=multi_reference,
        )

    @torch.no_grad()
    def encode_reference(self, images, multi_reference: str = "mean", fit: str = "center_crop") -> ReferenceEmbeds:
        """Reference image(s) → `ReferenceEmbeds`, to pass back as `reference_embeds=` (γ changes never re-encode).

        One image or a flat list = one subject; a list of lists = one subject per inner list."""
        return self.reference_encoder(multi_reference, fit).encode(images)

    @torch.no_grad()
    def encode_prompt(self, prompts: list[str]) -> torch.Tensor:
        """Prompts → CLIP text token embeddings (batch, 77, dim)."""
        tokens = self.tokenizer(prompts, padding="max_length", max_length=self.tokenizer.model_max_length, truncation=True, return_tensors="pt")
        return self.text_encoder(tokens.input_ids.to(self._execution_device))[0]

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
        callback_on_step_end: Callable[[int, int, torch.Tensor], None] | None = None,
    ):
        """Render `prompt` with the subject of the reference. `gamma` takes every form of `flexip.gate.Gamma`
        (a number, a list = a sweep, a per-prompt tensor, a per-block mapping, a schedule) or a `Gamma`;
        `w_pres` and `w_pers` replace it; `adapter_scale` = 0 is the base model. Output: `images`, `gammas`."""
        # 1. check inputs
        device = self._execution_device
        prompts = self._prompt_list(prompt, prompt_embeds)
        num_prompts = len(prompts) if prompts is not None else prompt_embeds.shape[0]
        gate = GateSettings(gamma=gamma, adapter_scale=adapter_scale, w_pres=w_pres, w_pers=w_pers)  # γ checked here, once
        sweep = gate.sweep  # the γ of each sweep column (one column unless γ is a sweep)
        if num_inference_steps < 1 or num_images_per_prompt < 1:
            raise FlexIPInputError("num_inference_steps and num_images_per_prompt must be ≥ 1")
        if (
            isinstance(guidance_scale, bool)
            or not isinstance(guidance_scale, (int, float))
            or not math.isfinite(guidance_scale)
            or guidance_scale < 0
        ):
            raise FlexIPInputError(f"guidance_scale must be a finite number ≥ 0 (1 or less turns guidance off), got {guidance_scale!r}")
        self._check_block_keys(gate)
        height = height or self.unet.config.sample_size * self.vae_scale_factor
        width = width or self.unet.config.sample_size * self.vae_scale_factor
        if height % self.vae_scale_factor or width % self.vae_scale_factor:
            raise FlexIPInputError(f"height and width must be multiples of {self.vae_scale_factor}, got {height}×{width}")
        do_guidance = guidance_scale > 1.0
        repeat = len(sweep) * num_images_per_prompt  # rows per prompt
        batch = num_prompts * repeat
        gate = gate.for_batch(num_prompts, num_images_per_prompt, repeat=2 if do_guidance else 1)  # one value per row

        # 2. encode prompt
        if prompt_embeds is None:
            prompt_embeds = self.encode_prompt(prompts)
        if negative_prompt_embeds is None:
            negatives = self._prompt_list(negative_prompt or "", None)
            negatives = negatives * num_prompts if len(negatives) == 1 else negatives
            if len(negatives) != num_prompts:
                raise FlexIPInputError(f"got {len(negatives)} negative prompts for {num_prompts} prompts")
            negative_prompt_embeds = self.encode_prompt(negatives)
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
            reference = self._per_prompt(reference_embeds, num_prompts).to(device=device, dtype=dtype)

            # 4. adapter tokens: C_pres (identity) and C_pers (text enriched by the subject); no image = zeros
            no_image = reference.zeros_like()
            pres = self.adapter.preservation_tokens(reference.clip_embeds, reference.dino_tokens)
            pers = self.adapter.personalization_tokens(prompt_embeds, reference.clip_embeds)
            pres, pers = pres.repeat_interleave(repeat, 0), pers.repeat_interleave(repeat, 0)
            if do_guidance:
                pres_uncond = self.adapter.preservation_tokens(no_image.clip_embeds, no_image.dino_tokens).repeat_interleave(repeat, 0)
                pers_uncond = self.adapter.personalization_tokens(negative_prompt_embeds, no_image.clip_embeds).repeat_interleave(repeat, 0)
                pres, pers = torch.cat([pres_uncond, pres]), torch.cat([pers_uncond, pers])
            conditioning = FlexIPConditioning(pres, pers, gate)
        text = prompt_embeds.repeat_interleave(repeat, 0)
        if do_guidance:
            text = torch.cat([negative_prompt_embeds.repeat_interleave(repeat, 0), text])

        # 5. timesteps, and the gate of each step (a γ schedule is evaluated here, once per step)
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        step_gates = gate.at_steps(len(timesteps)) if conditioning is not None else ()

        # 6. latents: one noise per (prompt, image), shared by every γ of a sweep
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
            latents = noise.reshape(batch, *shape[1:]) * self.scheduler.init_noise_sigma
        elif latents.shape != (batch, *shape[1:]):
            raise FlexIPInputError(f"latents must have shape {(batch, *shape[1:])}, got {tuple(latents.shape)}")
        latents = latents.to(device=device, dtype=dtype)
        step_kwargs = {"generator": generator} if "generator" in inspect.signature(self.scheduler.step).parameters else {}

        # 7. denoise
        with self._adapter_context(conditioning) as state, self.progress_bar(total=len(timesteps)) as progress:
            for index, timestep in enumerate(timesteps):
                if state is not None:
                    state.conditioning = replace(conditioning, gate=step_gates[index])
                model_input = torch.cat([latents] * 2) if do_guidance else latents
                model_input = self.scheduler.scale_model_input(model_input, timestep)
                prediction = self.unet(model_input, timestep, encoder_hidden_states=text).sample
                if do_guidance:
                    uncond, cond = prediction.chunk(2)
                    prediction = uncond + guidance_scale * (cond - uncond)
                latents = self.scheduler.step(prediction, timestep, latents, **step_kwargs).prev_sample
                if not torch.isfinite(latents).all():
                    raise FlexIPError(self._non_finite_message(index, len(timesteps)))
                if callback_on_step_end is not None:
                    callback_on_step_end(index, int(timestep), latents)
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
    def _adapter_context(self, conditioning: FlexIPConditioning | None):
        if conditioning is None:
            from contextlib import nullcontext

            return nullcontext()
        return injected(self.unet, self.adapter, conditioning)

    def _check_block_keys(self, gate: GateSettings) -> None:
        """A per-block γ key must name some attention layer of the adapter (a typo would silently match none)."""
        layers = list(self.adapter.target_layers)
        for key, _ in gate.gamma.blocks if gate.gamma is not None else ():
            prefix = block_prefix(key)
            if not any(layer.startswith(prefix) for layer in layers):
                blocks = sorted({layer.split(".attentions")[0] for layer in layers})
                raise FlexIPInputError(
                    f"per-block gamma key {key!r} matches no attention layer; use down, mid, up or a prefix such as {', '.join(blocks)}"
                )

    def _non_finite_message(self, index: int, steps: int) -> str:
        """Why the latents became NaN or Inf: the adapter's weights, or fp16 overflow."""
        bad = [name for name, parameter in self.adapter.named_parameters() if not torch.isfinite(parameter).all()]
        if bad:
            cause = f"the adapter's weights are not finite (e.g. {bad[0]}): the adapter file is damaged or its training diverged"
        elif self.unet.dtype == torch.float16:
            cause = "float16 overflow: load with torch_dtype=torch.bfloat16 or float32, or lower adapter_scale / guidance_scale"
        else:
            cause = "the base model or adapter produces non-finite values at these settings (try a lower adapter_scale or guidance_scale)"
        return f"generation stopped at step {index + 1} of {steps}: the latents became NaN or Inf, so no image was written. Likely cause: {cause}"

    @staticmethod
    def _prompt_list(prompt, prompt_embeds) -> list[str] | None:
        if prompt is None:
            if prompt_embeds is None:
                raise FlexIPInputError("give a prompt (or prompt_embeds)")
            return None
        if isinstance(prompt, str):
            return [prompt]
        if isinstance(prompt, Sequence) and prompt and all(isinstance(p, str) for p in prompt):
            return list(prompt)
        raise FlexIPInputError(f"prompt must be a string or a non-empty list of strings, got {type(prompt).__name__}")

    @staticmethod
    def _per_prompt(reference: ReferenceEmbeds, num_prompts: int) -> ReferenceEmbeds:
        if not isinstance(reference, ReferenceEmbeds):
            raise FlexIPInputError(f"reference_embeds must be a ReferenceEmbeds (from pipe.encode_reference), got {type(reference).__name__}")
        if len(reference) == num_prompts:
            return reference
        if len(reference) == 1:
            return reference.select(torch.zeros(num_prompts, dtype=torch.long))
        raise FlexIPInputError(f"got {len(reference)} reference subjects for {num_prompts} prompts; give one subject or one per prompt")
