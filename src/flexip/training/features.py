"""From samples to what a training step consumes: the frozen encoders, run once per batch under no_grad.

    target image  → VAE latents (posterior mean × vae.config.scaling_factor)
    caption       → CLIP text token embeddings (batch, 77, dim)
    reference     → c_cls (CLIP `image_embeds`) and F_dino (DINOv2 patch tokens)
    target mask   → subject coverage at latent resolution, in [0, 1] (zeros without a mask), for
                    `optim.subject_loss_weight`

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

    def __len__(self) -> int:
        return self.latents.shape[0]

    def to(self, device=None, dtype=None) -> Features:
        def move(tensor):
            return tensor.to(device=device, dtype=dtype)

        masks = None if self.subject_masks is None else move(self.subject_masks)
        return Features(move(self.latents), move(self.text_embeds), move(self.clip_embeds), move(self.dino_tokens), list(self.modalities), masks)

    def tensors(self) -> dict[str, torch.Tensor]:
        masks = self.subject_masks if self.subject_masks is not None else torch.zeros(len(self), 1, *self.latents.shape[2:])
        return {
            "latents": self.latents,
            "text_embeds": self.text_embeds,
            "clip_embeds": self.clip_embeds,
            "dino_tokens": self.dino_tokens,
            "subject_masks": masks,
        }


class FeatureEncoder:
    """Holds the frozen vae, text encoder and reference encoders; owns no weights."""

    def __init__(self, components: dict, resolution: int, dino_layer: int = -1):
        self.vae = components["vae"]
        self.text_encoder = components["text_encoder"]
        self.tokenizer = components["tokenizer"]
        self.resolution = resolution
        self.reference_encoder = ReferenceEncoder(
            components["image_encoder"],
            components["feature_extractor"],
            components["dino_encoder"],
            components["dino_processor"],
            dino_layer=dino_layer,
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

    @torch.no_grad()
    def encode_text(self, captions: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(captions, padding="max_length", max_length=self.tokenizer.model_max_length, truncation=True, return_tensors="pt")
        device = next(self.text_encoder.parameters()).device
        return self.text_encoder(tokens.input_ids.to(device))[0]

    @torch.no_grad()
    def encode_references(self, images: list) -> tuple[torch.Tensor, torch.Tensor]:
        return self.reference_encoder.encode_images(list(images))

    def __call__(self, batch: dict) -> Features:
        """A batch from `collate_samples` (lists of PIL images and captions) → Features."""
        clip_embeds, dino_tokens = self.encode_references(batch["reference"])
        latents = self.encode_targets(batch["target"])
        masks = batch.get("target_mask") or [None] * len(latents)
        return Features(
            latents=latents,
            text_embeds=self.encode_text(list(batch["caption"])),
            clip_embeds=clip_embeds,
            dino_tokens=dino_tokens,
            modalities=list(batch["modality"]),
            subject_masks=self.encode_masks(masks, tuple(latents.shape[2:])).to(latents),
        )
