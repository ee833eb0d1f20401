"""Personalization Adapter: text embeddings enriched by the subject, C_pers.

The prompt's token embeddings T attend to N_v visual context tokens made from the CLIP global embedding
c_cls, through L' blocks of cross-attention + feed-forward with residuals. The output projections of
every block start at zero, so at initialization C_pers == T exactly: training begins from the base
model's own text conditioning and learns how the subject should bend to the prompt.

With `dino_dim` (the adapter's `personalization_dino`, a recipe candidate beyond the paper) the visual context
also holds the reference's DINO tokens, each projected to the text width: c_cls alone identifies a miniworld
subject far less often than the DINO features do (benchmarks/branch_inputs.py), and the personalization branch
has to carry the subject at γ = 0.
"""

from __future__ import annotations

import torch
from torch import nn

from flexip.errors import FlexIPInputError
from flexip.models.blocks import FeedForward, MultiHeadCrossAttention, TokenProjection


class TextVisualBlock(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.norm_text = nn.LayerNorm(width)
        self.attention = MultiHeadCrossAttention(width, heads, zero_init_out=True)
        self.feed_forward = FeedForward(width, zero_init_out=True)

    def forward(self, text: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        text = text + self.attention(self.norm_text(text), visual)
        return text + self.feed_forward(text)


class PersonalizationAdapter(nn.Module):
    def __init__(self, clip_embed_dim: int, text_dim: int, num_visual_tokens: int = 4, depth: int = 2, heads: int = 8, dino_dim: int | None = None):
        super().__init__()
        self.visual_tokens = TokenProjection(clip_embed_dim, text_dim, num_visual_tokens)
        self.dino_context = None if dino_dim is None else nn.Sequential(nn.Linear(dino_dim, text_dim), nn.LayerNorm(text_dim))
        self.blocks = nn.ModuleList([TextVisualBlock(text_dim, heads) for _ in range(depth)])

    def forward(self, text_embeds: torch.Tensor, clip_embeds: torch.Tensor, dino_tokens: torch.Tensor | None = None) -> torch.Tensor:
        """text_embeds (batch, seq, text_dim), clip_embeds (batch, clip_dim), dino_tokens (batch, patches, dino_dim),
        read only with `dino_dim` → (batch, seq, text_dim)."""
        visual = self.visual_tokens(clip_embeds)
        if self.dino_context is not None:
            if dino_tokens is None:
                raise FlexIPInputError(
                    "this adapter's personalization branch reads the reference's DINO tokens (personalization_dino): pass dino_tokens"
                )
            # (batch, N_v, text_dim) + (batch, patches, text_dim) -> (batch, N_v + patches, text_dim)
            visual = torch.cat([visual, self.dino_context(dino_tokens)], dim=1)
        tokens = text_embeds
        for block in self.blocks:
            tokens = block(tokens, visual)
        return tokens
