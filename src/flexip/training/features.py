"""From samples to what a training step consumes: the frozen encoders, run once per batch under no_grad.

    target image  → VAE latents (posterior mean × vae.config.scaling_factor)
    caption       → CLIP text token embeddings (batch, 77, dim)
    reference     → c_cls (CLIP `image_embeds`) and F_dino (DINOv2 patch tokens)
    target mask   → subject coverage at latent resolution, in [0, 1] (zeros without a mask), for
                    `optim.subject_loss_weight`

An SDXL base has two text encoders: the text embeddings are both encoders' penultimate hidden states side
by side (batch, 77, 768 + 1280), and the second encoder's projected embedding is the pooled text
(`pooled_text_embeds`, batch × 1280), which SDXL's UNet reads with the time ids, as diffusers'
StableDiffusionXLPipeline encodes them.

The same encoder builds the feature cache, so training from the cache and training on the fly see the
same numbers for the same sample. (Latents are the VAE posterior *mean*: SD's VAE posterior standard
deviation is tiny next to the latents, so sampling it adds only noise, and the mean keeps cached and
on-the-fly features identical.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from flexip.data.augment import resize_and_crop
from flexip.encoders.reference import ReferenceEncoder


@dataclass
class Features:
    """One batch of encoded samples; every tensor has the batch on its first axis."""

    latents: torch.Tensor  # (batch, 4, h, w), already scaled
    text_embeds: torch.Tensor  # (batch, seq, cross_dim)
    clip_embeds: torch.Tensor  # (batch, clip_dim)
    dino_tokens: torch.Tensor  # (batch, patches, dino_dim)
    modalities: list[str]
    subject_masks: torch.Tensor | None = None  # (batch, 1, h, w) target subject coverage; None: no masks
    pooled_text_embeds: torch.Tensor | None = None  # (batch, pooled_dim): SDXL's pooled text; None for SD1.5
    clip_tokens: torch.Tensor | None = None  # (batch, tokens, clip_hidden): the reference's CLIP hidden states (IP-Adapter Plus)

    def __len__(self) -> int:
        return self.latents.shape[0]

    def to(self, device=None, dtype=None) -> Features:
        def move(tensor):
            return None if tensor is None else tensor.to(device=device, dtype=dtype)

        return Features(
            move(self.latents),
            move(self.text_embeds),
            move(self.clip_embeds),
            move(self.dino_tokens),
            list(self.modalities),
            move(self.subject_masks),
            move(self.pooled_text_embeds),
            move(self.clip_tokens),
        )

    def tensors(self) -> dict[str, torch.Tensor]:
        """What the feature cache stores of a batch: the five tensors every run has, plus SDXL's pooled text and
        the CLIP hidden states where this batch has them."""
        masks = self.subject_masks if self.subject_masks is not None else torch.zeros(len(self), 1, *self.latents.shape[2:])
        tensors = {
            "latents": self.latents,
            "text_embeds": self.text_embeds,
            "clip_embeds": self.clip_embeds,
            "dino_tokens": self.dino_tokens,
            "subject_masks": masks,
        }
        for name in OPTIONAL_TENSORS:
            if getattr(self, name) is not None:
                tensors[name] = getattr(self, name)
        return tensors


#: Features a run may or may not have (SDXL's pooled text; the CLIP hidden states IP-Adapter Plus reads).
OPTIONAL_TENSORS = ("pooled_text_embeds", "clip_tokens")


class FeatureEncoder:
    """Holds the frozen vae, text encoder and reference encoders; owns no weights."""

    def __init__(self, components: dict, resolution: int, dino_layer: int = -1, clip_hidden_layer: int | None = None):
        self.vae = components["vae"]
        self.text_encoders = [components[name] for name in ("text_encoder", "text_encoder_2") if components.get(name) is not None]
        self.tokenizers = [components[name] for name in ("tokenizer", "tokenizer_2") if components.get(name) is not None]
        self.text_encoder, self.tokenizer = self.text_encoders[0], self.tokenizers[0]
        self.resolution = resolution
        self.reference_encoder = ReferenceEncoder(
            components["image_encoder"],
            components["feature_extractor"],
            components["dino_encoder"],
            components["dino_processor"],
            dino_layer=dino_layer,
            clip_hidden_layer=clip_hidden_layer,
        )

    @torch.no_grad()
    def encode_targets(self, images: list) -> torch.Tensor:
        """PIL images → scaled VAE latents (batch, 4, resolution / 8, resolution / 8) for SD."""
        arrays = [np.asarray(resize_and_crop(image, self.resolution), dtype=np.float32) for image in images]
        # (batch, h, w, 3) in [0, 255] -> (batch, 3, h, w) in [-1, 1]
        pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) / 127.5 - 1.0
        parameter = next(self.vae.parameters())
        pixels = pixels.to(device=parameter.device, dtype=parameter.dtype)
        return self.vae.encode(pixels).latent_dist.mode() * self.vae.config.scaling_factor

    def encode_masks(self, masks: list, latent_size: tuple[int, int]) -> torch.Tensor:
        """Target masks (PIL, white = subject; None = no mask) → (batch, 1, h, w) coverage in [0, 1] at the
        latents' size, cropped like the targets (`resize_and_crop`) and area-averaged; None → zeros."""
        out = torch.zeros(len(masks), 1, *latent_size)
        for row, mask in enumerate(masks):
            if mask is not None:
                binary = (np.asarray(resize_and_crop(mask.convert("L"), self.resolution), dtype=np.float32) > 127).astype(np.float32)
                out[row, 0] = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(binary)[None, None], latent_size)[0, 0]
        return out

    @property
    def is_sdxl(self) -> bool:
        return len(self.text_encoders) == 2

    @torch.no_grad()
    def encode_text(self, captions: list[str]) -> torch.Tensor:
        return self.encode_prompts(captions)[0]

    @torch.no_grad()
    def encode_prompts(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(text token embeddings (batch, seq, cross_dim), pooled text (batch, dim) for SDXL, else None)."""
        if not self.is_sdxl:
            tokens = self.tokenizer(captions, padding="max_length", max_length=self.tokenizer.model_max_length, truncation=True, return_tensors="pt")
            device = next(self.text_encoder.parameters()).device
            return self.text_encoder(tokens.input_ids.to(device))[0], None
        hidden, pooled = [], None
        for tokenizer, text_encoder in zip(self.tokenizers, self.text_encoders):
            tokens = tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt")
            output = text_encoder(tokens.input_ids.to(next(text_encoder.parameters()).device), output_hidden_states=True)
            hidden.append(output.hidden_states[-2])  # the penultimate layer of each, as SDXL reads them
            pooled = output[0]  # the second encoder's projected embedding
        return torch.cat(hidden, dim=-1), pooled

    @torch.no_grad()
    def encode_references(self, images: list):
        """ReferenceEmbeds, one row per image (with `clip_tokens` when the encoder keeps a CLIP hidden layer)."""
        return self.reference_encoder.encode_each(list(images))

    @torch.no_grad()
    def empty_image_tokens(self) -> torch.Tensor:
        """(1, tokens, clip_hidden): the CLIP hidden states of an all-zero pixel input, the "no image" of IP-Adapter
        (diffusers' pipelines encode the unconditional image as `zeros_like` of the processed reference)."""
        encoder = self.reference_encoder.image_encoder
        size = encoder.config.image_size
        parameter = next(encoder.parameters())
        pixels = torch.zeros(1, 3, size, size, device=parameter.device, dtype=parameter.dtype)
        return encoder(pixel_values=pixels, output_hidden_states=True).hidden_states[self.reference_encoder.clip_hidden_layer]

    def __call__(self, batch: dict) -> Features:
        """A batch from `collate_samples` (lists of PIL images and captions) → Features."""
        references = self.encode_references(batch["reference"])
        latents = self.encode_targets(batch["target"])
        masks = batch.get("target_mask") or [None] * len(latents)
        text_embeds, pooled = self.encode_prompts(list(batch["caption"]))
        return Features(
            latents=latents,
            text_embeds=text_embeds,
            clip_embeds=references.clip_embeds,
            dino_tokens=references.dino_tokens,
            modalities=list(batch["modality"]),
            subject_masks=self.encode_masks(masks, tuple(latents.shape[2:])).to(latents),
            pooled_text_embeds=pooled,
            clip_tokens=references.clip_tokens,
        )


def added_conditions(features: Features, empty_pooled: torch.Tensor | None, drop_text: torch.Tensor, resolution: int) -> dict | None:
    """SDXL's extra UNet inputs for a training batch, None for SD1.5: the pooled text (a dropped caption's pooled
    text where `drop_text`) and the time ids of a `resolution`-square target, cropped at the top-left corner
    (original size, crop offset, target size: the resized-and-cropped targets are what the UNet sees)."""
    pooled = features.pooled_text_embeds
    if pooled is None:
        return None
    dropped = drop_text.to(pooled.device).view(-1, 1)
    pooled = torch.where(dropped, empty_pooled.to(pooled).expand_as(pooled), pooled)
    size = float(resolution)
    time_ids = torch.tensor([[size, size, 0.0, 0.0, size, size]], device=pooled.device, dtype=pooled.dtype).expand(len(features), -1)
    return {"text_embeds": pooled, "time_ids": time_ids}
