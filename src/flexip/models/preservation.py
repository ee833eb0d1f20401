"""Preservation Adapter: identity tokens C_pres from the reference image.

Two parts, concatenated along the token axis:
- global module: the CLIP global embedding c_cls → N_c tokens (coarse identity: class, colours, shape);
- detail module: N_q learnable queries, made subject-aware by adding a projection of c_cls, refined by
  L Perceiver-style blocks that attend to the DINOv2 patch tokens F_dino (together with themselves),
  then projected to the UNet's cross-attention width (fine identity: texture, marks, outline).
"""

from __future__ import annotations

import torch
from torch import nn

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
    ):
        super().__init__()
        self.global_tokens = TokenProjection(clip_embed_dim, cross_attention_dim, num_global_tokens)
        self.queries = nn.Parameter(torch.randn(num_queries, width) / width**0.5)
        self.query_condition = nn.Linear(clip_embed_dim, width)
        self.proj_features = nn.Linear(dino_hidden_dim, width)
        self.blocks = nn.ModuleList([PerceiverBlock(width, heads) for _ in range(depth)])
        self.proj_out = nn.Linear(width, cross_attention_dim)
        self.norm_out = nn.LayerNorm(cross_attention_dim)

    @property
    def num_tokens(self) -> int:
        return self.global_tokens.num_tokens + self.queries.shape[0]

    def forward(self, clip_embeds: torch.Tensor, dino_tokens: torch.Tensor) -> torch.Tensor:
        """clip_embeds (batch, clip_dim), dino_tokens (batch, patches, dino_dim) → (batch, N_c + N_q, cross_dim)."""
        global_tokens = self.global_tokens(clip_embeds)
        # (num_queries, width) + (batch, 1, width) -> (batch, num_queries, width)
        latents = self.queries.unsqueeze(0) + self.query_condition(clip_embeds).unsqueeze(1)
        features = self.proj_features(dino_tokens)
        for block in self.blocks:
            latents = block(latents, features)
        detail_tokens = self.norm_out(self.proj_out(latents))
        return torch.cat([global_tokens, detail_tokens], dim=1)
