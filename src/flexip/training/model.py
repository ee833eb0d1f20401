"""`FlexIPTrainingModel`: the frozen UNet with the trainable adapter injected, as one nn.Module.

One module so that `accelerator.prepare` can wrap it (DistributedDataParallel all-reduces the
adapter's gradients; the UNet's parameters do not require gradients and are ignored). Its forward is
the whole conditioned denoiser of one training step:

    C_pres = PreservationAdapter(c_cls, F_dino)
    C_pers = PersonalizationAdapter(T, c_cls)          (and F_dino with the adapter's personalization_dino)
    ε̂ (or v̂) = UNet(x_t, t, T) with every cross-attention layer gated by the per-sample γ

An SDXL UNet also reads the pooled text and the time ids (`added_cond_kwargs`, as diffusers passes them).
"""

from __future__ import annotations

import torch
from torch import nn

from flexip.gate import GateSettings
from flexip.models.adapter import FlexIPAdapter
from flexip.models.attention_processor import FlexIPConditioning
from flexip.models.injection import inject_adapter, remove_adapter


class FlexIPTrainingModel(nn.Module):
    def __init__(self, unet: nn.Module, adapter: FlexIPAdapter):
        super().__init__()
        self.unet = unet
        self.adapter = adapter
        self.injection = inject_adapter(unet, adapter)

    def forward(
        self,
        noisy_latents: torch.Tensor,  # (batch, 4, h, w)
        timesteps: torch.Tensor,  # (batch,)
        text_embeds: torch.Tensor,  # (batch, seq, cross_dim)
        clip_embeds: torch.Tensor,  # (batch, clip_dim)
        dino_tokens: torch.Tensor,  # (batch, patches, dino_dim)
        gamma: torch.Tensor,  # (batch,) on the CPU
        added_cond_kwargs: dict[str, torch.Tensor] | None = None,  # SDXL: {"text_embeds": (batch, pooled), "time_ids": (batch, 6)}
        clip_tokens: torch.Tensor | None = None,  # CLIP hidden states (batch, tokens, width): an IP-Adapter Plus warm start reads them
    ) -> torch.Tensor:
        pres_tokens = self.adapter.preservation_tokens(clip_embeds, dino_tokens, clip_tokens)
        pers_tokens = self.adapter.personalization_tokens(text_embeds, clip_embeds, dino_tokens)
        # this step's sampled γ, checked once here; the gate computes every layer's branch weights when it is made
        self.injection.state.conditioning = FlexIPConditioning(pres_tokens, pers_tokens, GateSettings(gamma=gamma))
        if added_cond_kwargs is None:
            return self.unet(noisy_latents, timesteps, encoder_hidden_states=text_embeds).sample
        return self.unet(noisy_latents, timesteps, encoder_hidden_states=text_embeds, added_cond_kwargs=added_cond_kwargs).sample

    def detach_adapter(self) -> None:
        """Give the UNet back its own processors (before a pipeline injects an adapter itself)."""
        remove_adapter(self.injection)

    def attach_adapter(self) -> None:
        if not self.injection.active:
            self.injection = inject_adapter(self.unet, self.adapter)


class IPAdapterTrainingModel(nn.Module):
    """The same for the IP-Adapter Plus baseline: the UNet with diffusers' IP-Adapter processors and image
    projection installed, at its one scale (1). It reads the CLIP hidden states of the reference
    (`clip_tokens`); the FlexIP inputs (c_cls, DINO tokens, γ) are accepted and unused."""

    def __init__(self, unet: nn.Module, adapter):
        super().__init__()
        self.unet = unet
        self.adapter = adapter
        adapter.attach(unet)

    def forward(self, noisy_latents, timesteps, text_embeds, clip_embeds, dino_tokens, gamma, added_cond_kwargs=None, clip_tokens=None):
        if clip_tokens is None:
            raise ValueError("the IP-Adapter reads the reference's CLIP hidden states (clip_tokens)")
        # (batch, 1 image, tokens, width): the layout diffusers' pipelines pass to the image projection
        extra = {**(added_cond_kwargs or {}), "image_embeds": [clip_tokens.unsqueeze(1)]}
        return self.unet(noisy_latents, timesteps, encoder_hidden_states=text_embeds, added_cond_kwargs=extra).sample

    def detach_adapter(self) -> None:
        self.adapter.detach(self.unet)

    def attach_adapter(self) -> None:
        self.adapter.attach(self.unet)
