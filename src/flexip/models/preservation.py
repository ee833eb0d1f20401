"""Preservation Adapter: identity tokens C_pres from the reference image.

Two parts, concatenated along the token axis:
- global module: the CLIP global embedding c_cls → N_c tokens (coarse identity: class, colours, shape);
- detail module: N_q learnable queries, made subject-aware by adding a projection of c_cls, refined by
  L Perceiver-style blocks that attend to the DINOv2 patch tokens F_dino (together with themselves),
  then projected to the UNet's cross-attention width (fine identity: texture, marks, outline).

Two options serve a warm start from IP-Adapter (`flexip.models.ip_adapter`):
- `resampler`: the global module is IP-Adapter Plus's resampler over the CLIP image encoder's hidden
  states (diffusers' `IPAdapterPlusImageProjection`) instead of the linear map of c_cls;
- `detail_residual`: the detail tokens are copies of the global tokens plus `detail_scale` times the
  learned detail tokens, `detail_scale` starting at 0. Attention over tokens that each appear equally often
  equals attention over one copy of each, so at initialisation C_pres attends exactly like the global
  tokens alone (IP-Adapter), and the DINO detail joins as training moves `detail_scale`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from flexip.errors import FlexIPInputError
from flexip.models.blocks import FeedForward, MultiHeadCrossAttention, TokenProjection


class PerceiverBlock(nn.Module):
    """Latent queries attend to [features; latents], then a feed-forward; both with residuals."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.norm_features = nn.LayerNorm(width)
        self.norm_latents = nn.LayerNorm(width)
        self.attention = MultiHeadCrossAttention(width, heads)
        self.feed_forward = FeedForward(width)

    def forward(self, latents: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        normed = self.norm_latents(latents)
        # context (batch, patches + queries, width): the queries see the image and each other
        context = torch.cat([self.norm_features(features), normed], dim=1)
        latents = latents + self.attention(normed, context)
        return latents + self.feed_forward(latents)


@dataclass(frozen=True)
class ResamplerConfig:
    """IP-Adapter Plus's resampler: `clip_hidden_dim`-wide CLIP hidden states in, `width` inside, 64-d heads."""

    clip_hidden_dim: int
    width: int = 1280
    depth: int = 4
    heads: int = 20


class PreservationAdapter(nn.Module):
    def __init__(
        self,
        clip_embed_dim: int,
        dino_hidden_dim: int,
        cross_attention_dim: int,
        num_global_tokens: int = 4,
        num_queries: int = 16,
        depth: int = 4,
        width: int = 768,
        heads: int = 12,
        resampler: ResamplerConfig | None = None,
        detail_residual: bool = False,
    ):
        super().__init__()
        if resampler is None:
            self.global_tokens = TokenProjection(clip_embed_dim, cross_attention_dim, num_global_tokens)
        else:
            from diffusers.models.embeddings import IPAdapterPlusImageProjection

            self.global_tokens = IPAdapterPlusImageProjection(
                embed_dims=resampler.clip_hidden_dim,
                output_dims=cross_attention_dim,
                hidden_dims=resampler.width,
                depth=resampler.depth,
                dim_head=64,
                heads=resampler.heads,
                num_queries=num_global_tokens,
            )
        self.reads_clip_tokens = resampler is not None
        self.num_global_tokens = num_global_tokens
        if detail_residual and num_queries % num_global_tokens:
            raise ValueError(f"detail_residual needs num_queries ({num_queries}) to be a multiple of the global tokens ({num_global_tokens})")
        self.detail_scale = nn.Parameter(torch.zeros(())) if detail_residual else None
        self.queries = nn.Parameter(torch.randn(num_queries, width) / width**0.5)
        self.query_condition = nn.Linear(clip_embed_dim, width)
        self.proj_features = nn.Linear(dino_hidden_dim, width)
        self.blocks = nn.ModuleList([PerceiverBlock(width, heads) for _ in range(depth)])
        self.proj_out = nn.Linear(width, cross_attention_dim)
        self.norm_out = nn.LayerNorm(cross_attention_dim)

    @property
    def num_tokens(self) -> int:
        return self.num_global_tokens + self.queries.shape[0]

    def forward(self, clip_embeds: torch.Tensor, dino_tokens: torch.Tensor, clip_tokens: torch.Tensor | None = None) -> torch.Tensor:
        """clip_embeds (batch, clip_dim), dino_tokens (batch, patches, dino_dim) → (batch, N_c + N_q, cross_dim).
        With a resampler, clip_tokens (batch, tokens, clip_hidden) make the global tokens instead of clip_embeds."""
        if self.reads_clip_tokens:
            if clip_tokens is None:
                raise FlexIPInputError(
                    "this adapter's preservation branch reads the CLIP image encoder's hidden states (an IP-Adapter Plus warm "
                    "start): encode the reference with its encode_reference, which adds them (ReferenceEmbeds.clip_tokens)"
                )
            global_tokens = self.global_tokens(clip_tokens)
        else:
            global_tokens = self.global_tokens(clip_embeds)
        # (num_queries, width) + (batch, 1, width) -> (batch, num_queries, width)
        latents = self.queries.unsqueeze(0) + self.query_condition(clip_embeds).unsqueeze(1)
        features = self.proj_features(dino_tokens)
        for block in self.blocks:
            latents = block(latents, features)
        detail_tokens = self.norm_out(self.proj_out(latents))
        if self.detail_scale is not None:
            # (batch, N_c, cross) -> (batch, N_q, cross): every global token equally often, plus the learned detail
            copies = global_tokens.repeat(1, self.queries.shape[0] // self.num_global_tokens, 1)
            detail_tokens = copies + self.detail_scale * detail_tokens
        return torch.cat([global_tokens, detail_tokens], dim=1)
