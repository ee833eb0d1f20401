"""The FlexIP attention processor: decoupled cross-attention with a gate.

For the layer's query Q (from the image features) the processor computes

    out = Attn(Q, K_text, V_text)
        + s · ( w_pres · Attn(Q, K'_pres C_pres, V'_pres C_pres)
              + w_pers · Attn(Q, K'_pers C_pers, V'_pers C_pers) )

and then the layer's own output projection. The text path is the layer's, untouched. When the gate is
off (s = 0, or w_pres = w_pers = 0) or no conditioning is set, the call is handed to the layer's original
processor, so the result is bit-identical to the base model and the branches are never computed; a
branch whose weight is zero for the whole batch is skipped as well. The processor only looks its layer's
weights up in the `GateSettings` of the pass (computed there, once; a schedule is resolved per step by the
pipeline before the step runs). A conditioning that carries a `projections` store gets each layer's K'/V' of its
tokens computed once and reused at every later UNet call with it (the denoising steps of one pipeline call).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from flexip.gate import GateSettings


class DecoupledKV(nn.Module):
    """The new, bias-free K'/V' maps of one cross-attention layer, one pair per branch."""

    def __init__(self, cross_attention_dim: int, hidden_size: int):
        super().__init__()
        self.to_k_pres = nn.Linear(cross_attention_dim, hidden_size, bias=False)
        self.to_v_pres = nn.Linear(cross_attention_dim, hidden_size, bias=False)
        self.to_k_pers = nn.Linear(cross_attention_dim, hidden_size, bias=False)
        self.to_v_pers = nn.Linear(cross_attention_dim, hidden_size, bias=False)

    @torch.no_grad()
    def copy_from(self, to_k: nn.Linear, to_v: nn.Linear) -> None:
        """Initialize both branches as copies of the layer's own text K/V (SPEC §1)."""
        for target, source in ((self.to_k_pres, to_k), (self.to_v_pres, to_v), (self.to_k_pers, to_k), (self.to_v_pers, to_v)):
            target.weight.copy_(source.weight)


@dataclass(frozen=True)
class FlexIPConditioning:
    """What one UNet forward pass is conditioned on. Token batches match the UNet batch (CFG included).
    Immutable: a caller whose gate changes per step (a γ schedule) sets a new one on the state."""

    pres_tokens: torch.Tensor | None  # (batch, N_c + N_q, cross_dim)
    pers_tokens: torch.Tensor | None  # (batch, seq, cross_dim)
    gate: GateSettings = field(default_factory=GateSettings)
    #: (layer, branch) → that layer's (K', V') of these tokens, filled at the first UNet call and read at the next:
    #: the same numbers, computed once per call instead of once per step. None: projected at every call. Used only
    #: with gradients off (training, whose weights change between calls, always projects). Give a fresh dict with
    #: each set of tokens (a step's new gate keeps it). It holds every layer's K'/V' of every batch row: for SD1.5
    #: about 10 MB per row at fp32, for SDXL about 33 MB per row at fp16, until the conditioning is dropped.
    projections: dict | None = field(default=None, compare=False, repr=False)


class FlexIPState:
    """Shared by all processors of one injection; the pipeline (once per step) or trainer sets `.conditioning`."""

    def __init__(self):
        self.conditioning: FlexIPConditioning | None = None


def _project(tokens: torch.Tensor, to_k: nn.Linear, to_v: nn.Linear, heads: int) -> tuple[torch.Tensor, torch.Tensor]:
    batch, head_dim = tokens.shape[0], to_k.out_features // heads
    # (batch, tokens, inner) -> (batch, heads, tokens, head_dim)
    key = to_k(tokens).view(batch, -1, heads, head_dim).transpose(1, 2)
    value = to_v(tokens).view(batch, -1, heads, head_dim).transpose(1, 2)
    return key, value


def _attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    batch, heads, _, head_dim = key.shape
    out = F.scaled_dot_product_attention(query, key, value)
    # (batch, heads, queries, head_dim) -> (batch, queries, inner)
    return out.transpose(1, 2).reshape(batch, -1, heads * head_dim)


def _per_sample(weight: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    weight = weight.to(device=like.device, dtype=like.dtype)
    return weight.view(-1, 1, 1) if weight.ndim == 1 else weight


class FlexIPAttnProcessor:
    """Replaces the processor of one cross-attention layer while FlexIP is injected."""

    def __init__(self, layer_name: str, kv: DecoupledKV, base_processor, state: FlexIPState):
        self.layer_name = layer_name
        self.kv = kv
        self.base_processor = base_processor
        self.state = state

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        conditioning = self.state.conditioning
        if conditioning is None or encoder_hidden_states is None or conditioning.gate.is_off:
            return self.base_processor(attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs)
        w_pres, w_pers = conditioning.gate.branch_weights(self.layer_name, hidden_states.shape[0])
        use_pres = conditioning.pres_tokens is not None and bool((w_pres != 0).any())
        use_pers = conditioning.pers_tokens is not None and bool((w_pers != 0).any())
        if not (use_pres or use_pers):
            return self.base_processor(attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs)

        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channel, height, width = hidden_states.shape
            # (batch, channel, h, w) -> (batch, h·w, channel)
            hidden_states = hidden_states.view(batch, channel, height * width).transpose(1, 2)
        batch, sequence_length, _ = encoder_hidden_states.shape
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = attn.to_q(hidden_states)
        text = attn.norm_encoder_hidden_states(encoder_hidden_states) if attn.norm_cross else encoder_hidden_states
        key, value = attn.to_k(text), attn.to_v(text)
        inner_dim = key.shape[-1]
        head_dim = inner_dim // attn.heads
        # (batch, tokens, inner) -> (batch, heads, tokens, head_dim)
        query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask)
        out = out.transpose(1, 2).reshape(batch, -1, inner_dim).to(query.dtype)

        # the two gated branches: same query, their own keys/values over their own tokens
        if use_pres:
            out = out + _per_sample(w_pres, out) * _attend(query, *self._keys_values(conditioning, "pres", attn.heads, query.dtype))
        if use_pers:
            out = out + _per_sample(w_pers, out) * _attend(query, *self._keys_values(conditioning, "pers", attn.heads, query.dtype))

        out = attn.to_out[1](attn.to_out[0](out))
        if input_ndim == 4:
            out = out.transpose(-1, -2).reshape(batch, channel, height, width)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor

    def _keys_values(self, conditioning: FlexIPConditioning, branch: str, heads: int, dtype: torch.dtype):
        """This layer's (K', V') of the branch's tokens: from the conditioning's store when it has them."""
        store = conditioning.projections if not torch.is_grad_enabled() else None  # a stored graph would go stale
        name = (self.layer_name, branch)
        if store is not None and name in store:
            return store[name]
        if branch == "pres":
            projected = _project(conditioning.pres_tokens.to(dtype), self.kv.to_k_pres, self.kv.to_v_pres, heads)
        else:
            projected = _project(conditioning.pers_tokens.to(dtype), self.kv.to_k_pers, self.kv.to_v_pers, heads)
        if store is not None:
            store[name] = projected
        return projected
