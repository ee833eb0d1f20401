"""Personalization Adapter: text embeddings enriched by the subject, C_pers.

The prompt's token embeddings T attend to N_v visual context tokens made from the CLIP global embedding
c_cls, through L' blocks of cross-attention + feed-forward with residuals. The output projections of
every block start at zero, so at initialization C_pers == T exactly: training begins from the base
model's own text conditioning and learns how the subject should bend to the prompt.
"""

from __future__ import annotations

import torch
from torch import nn

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
    def __init__(self, clip_embed_dim: int, text_dim: int, num_visual_tokens: int = 4, depth: int = 2, heads: int = 8):
        super().__init__()
        self.visual_tokens = TokenProjection(clip_embed_dim, text_dim, num_visual_tokens)
        self.blocks = nn.ModuleList([TextVisualBlock(text_dim, heads) for _ in range(depth)])

    def forward(self, text_embeds: torch.Tensor, clip_embeds: torch.Tensor) -> torch.Tensor:
        """text_embeds (batch, seq, text_dim), clip_embeds (batch, clip_dim) → (batch, seq, text_dim)."""
        visual = self.visual_tokens(clip_embeds)
        tokens = text_embeds
        for block in self.blocks:
            tokens = block(tokens, visual)
        return tokens
