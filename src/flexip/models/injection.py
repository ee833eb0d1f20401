"""Reversible injection of a FlexIPAdapter into any diffusers `UNet2DConditionModel` (peft-style).

`inject_adapter` swaps the processors of the adapter's target layers for FlexIP processors and remembers
the originals; `remove_adapter` puts the very same processor objects back, so the UNet is exactly as
it was (same processors, same parameters, same outputs). The UNet keeps its own class and state dict:
the adapter's weights live in the adapter, never inside the UNet.

Two ways to give the processors their conditioning:
- set `injection.state.conditioning` before calling the UNet (the trainer does);
- `attach_adapter`: inject, plus a forward pre-hook on the UNet that reads each call's conditioning from
  diffusers' own per-call channel, `cross_attention_kwargs["flexip"]`, and takes that key out before the
  UNet sees the rest (a LoRA `scale` passes through). So an unmodified diffusers pipeline conditions every
  UNet call: `pipe(..., cross_attention_kwargs={"flexip": ...})`. The value is a `FlexIPConditioning`
  laid out for the UNet's batch, or a `ConditioningSource` that lays one out from the call
  (`flexip.integrations`: batch layout of the pipeline, classifier-free guidance, frames). A call without
  the key runs the UNet's own processors' math (adapter off, bit for bit).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from flexip.errors import FlexIPInputError
from flexip.models.adapter import FlexIPAdapter
from flexip.models.attention_processor import FlexIPAttnProcessor, FlexIPConditioning, FlexIPState

#: the key of `cross_attention_kwargs` that carries FlexIP's conditioning of a UNet call
CONDITIONING_KEY = "flexip"


@dataclass(frozen=True)
class UNetCall:
    """What a `ConditioningSource` sees of one UNet call."""

    sample: torch.Tensor  # (batch, channels, h, w), or (batch, channels, frames, h, w) for a motion UNet
    timestep: torch.Tensor | float | int
    encoder_hidden_states: torch.Tensor  # (rows, seq, cross_dim): batch rows, × frames for a motion UNet
    cross_attention_kwargs: dict | None = None  # the very dict the caller passed (a pipeline keeps it as `_cross_attention_kwargs`)


@runtime_checkable
class ConditioningSource(Protocol):
    def conditioning_for(self, call: UNetCall) -> FlexIPConditioning | None:
        """The conditioning of this UNet call, its token batches matching `call.encoder_hidden_states`."""


@dataclass
class Injection:
    unet: nn.Module
    adapter: FlexIPAdapter
    state: FlexIPState
    original_processors: dict
    active: bool = True
    hooks: list = field(default_factory=list)  # forward hooks of `attach_adapter`, removed with the processors


def inject_adapter(unet: nn.Module, adapter: FlexIPAdapter, state: FlexIPState | None = None) -> Injection:
    original = dict(unet.attn_processors)  # walks the UNet's modules: once here (a pipeline injects at every call)
    if any(isinstance(p, FlexIPAttnProcessor) for p in original.values()):
        raise FlexIPInputError("this UNet already has a FlexIP adapter injected; remove it first")
    adapter.check_compatible(unet)
    state = state or FlexIPState()
    targets = adapter.target_layers
    processors = {}
    for name, processor in original.items():
        layer_name = name.removesuffix(".processor")
        if layer_name in targets:
            processor = FlexIPAttnProcessor(layer_name, adapter.layer(layer_name), processor, state)
        processors[name] = processor
    unet.set_attn_processor(processors)
    return Injection(unet, adapter, state, original)


def attach_adapter(unet: nn.Module, adapter: FlexIPAdapter) -> Injection:
    """`inject_adapter` plus the UNet forward hooks that read `cross_attention_kwargs["flexip"]` of each call."""
    if getattr(unet, "encoder_hid_proj", None) is not None:
        raise FlexIPInputError(
            "this UNet has an IP-Adapter (or another image projection) loaded: unload it first (pipe.unload_ip_adapter()); "
            "FlexIP's preservation branch takes its place (FlexIPAdapter.from_ip_adapter warm-starts from one)"
        )
    injection = inject_adapter(unet, adapter)
    state = injection.state

    def read_conditioning(module, args, kwargs):
        extra = kwargs.get("cross_attention_kwargs")
        state.conditioning = None
        if not extra or CONDITIONING_KEY not in extra:
            return None
        value = extra[CONDITIONING_KEY]
        rest = {key: item for key, item in extra.items() if key != CONDITIONING_KEY}
        kwargs = {**kwargs, "cross_attention_kwargs": rest or None}
        if isinstance(value, ConditioningSource):
            sample = args[0] if args else kwargs["sample"]
            timestep = args[1] if len(args) > 1 else kwargs["timestep"]
            text = args[2] if len(args) > 2 else kwargs.get("encoder_hidden_states")
            value = value.conditioning_for(UNetCall(sample, timestep, text, extra))
        elif value is not None and not isinstance(value, FlexIPConditioning):
            raise FlexIPInputError(
                f'cross_attention_kwargs["{CONDITIONING_KEY}"] takes what FlexIP.conditioning(...) returns, got {type(value).__name__}'
            )
        state.conditioning = None if value is None or value.gate.is_off else value
        return args, kwargs

    def clear_conditioning(module, args, kwargs, output):
        state.conditioning = None

    injection.hooks = [
        unet.register_forward_pre_hook(read_conditioning, with_kwargs=True),
        unet.register_forward_hook(clear_conditioning, with_kwargs=True, always_call=True),
    ]
    return injection


def remove_adapter(injection: Injection) -> None:
    if injection.active:
        for hook in injection.hooks:
            hook.remove()
        injection.hooks = []
        injection.unet.set_attn_processor(dict(injection.original_processors))
        injection.state.conditioning = None
        injection.active = False


@contextmanager
def injected(unet: nn.Module, adapter: FlexIPAdapter, conditioning: FlexIPConditioning | None = None):
    """`with injected(unet, adapter, conditioning) as state:` — the UNet is restored on exit, even on error."""
    injection = inject_adapter(unet, adapter)
    injection.state.conditioning = conditioning
    try:
        yield injection.state
    finally:
        remove_adapter(injection)


@contextmanager
def attached(unet: nn.Module, adapter: FlexIPAdapter):
    """`with attached(unet, adapter):` — `attach_adapter` for the block; the UNet is restored on exit, even on error."""
    injection = attach_adapter(unet, adapter)
    try:
        yield injection
    finally:
        remove_adapter(injection)
