"""Small transformer blocks shared by the two adapters: multi-head cross-attention and feed-forward.

Written out (no einops) so the math is visible; tokens are always shaped (batch, tokens, width).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MultiHeadCrossAttention(nn.Module):
    """Queries attend to a set of context tokens. `zero_init_out` makes the block start as a no-op."""

    def __init__(self, width: int, heads: int, context_width: int | None = None, zero_init_out: bool = False):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} must be divisible by heads {heads}")
        context_width = context_width or width
        self.heads = heads
        self.to_q = nn.Linear(width, width, bias=False)
        self.to_k = nn.Linear(context_width, width, bias=False)
        self.to_v = nn.Linear(context_width, width, bias=False)
        self.to_out = nn.Linear(width, width)
        if zero_init_out:
            nn.init.zeros_(self.to_out.weight)
            nn.init.zeros_(self.to_out.bias)

    def forward(self, queries: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        batch, num_queries, width = queries.shape
        head_dim = width // self.heads
        # (batch, tokens, width) -> (batch, heads, tokens, head_dim)
        q = self.to_q(queries).view(batch, num_queries, self.heads, head_dim).transpose(1, 2)
        k = self.to_k(context).view(batch, context.shape[1], self.heads, head_dim).transpose(1, 2)
        v = self.to_v(context).view(batch, context.shape[1], self.heads, head_dim).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)
        # (batch, heads, queries, head_dim) -> (batch, queries, width)
        out = out.transpose(1, 2).reshape(batch, num_queries, width)
        return self.to_out(out)


class FeedForward(nn.Module):
    """LayerNorm → Linear(width, mult·width) → GELU → Linear(mult·width, width)."""

    def __init__(self, width: int, mult: int = 4, zero_init_out: bool = False):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc_in = nn.Linear(width, width * mult)
        self.fc_out = nn.Linear(width * mult, width)
        if zero_init_out:
            nn.init.zeros_(self.fc_out.weight)
            nn.init.zeros_(self.fc_out.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.fc_out(F.gelu(self.fc_in(self.norm(tokens))))


class TokenProjection(nn.Module):
    """One embedding vector → `num_tokens` tokens of `width` (Linear, reshape, LayerNorm)."""

    def __init__(self, in_dim: int, width: int, num_tokens: int):
        super().__init__()
        self.num_tokens = num_tokens
        self.width = width
        self.proj = nn.Linear(in_dim, num_tokens * width)
        self.norm = nn.LayerNorm(width)

    def forward(self, embeds: torch.Tensor) -> torch.Tensor:
        # (batch, in_dim) -> (batch, num_tokens, width)
        tokens = self.proj(embeds).view(embeds.shape[0], self.num_tokens, self.width)
        return self.norm(tokens)
