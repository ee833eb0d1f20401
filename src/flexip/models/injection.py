"""Reversible injection of a FlexIPAdapter into any diffusers `UNet2DConditionModel` (peft-style).

`inject_adapter` swaps the processors of the adapter's target layers for FlexIP processors and remembers
the originals; `remove_adapter` puts the very same processor objects back, so the UNet is exactly as
it was (same processors, same parameters, same outputs). The UNet keeps its own class and state dict:
the adapter's weights live in the adapter, never inside the UNet.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from torch import nn

from flexip.errors import FlexIPInputError
from flexip.models.adapter import FlexIPAdapter
from flexip.models.attention_processor import FlexIPAttnProcessor, FlexIPConditioning, FlexIPState


@dataclass
class Injection:
    unet: nn.Module
    adapter: FlexIPAdapter
    state: FlexIPState
    original_processors: dict
    active: bool = True


def inject_adapter(unet: nn.Module, adapter: FlexIPAdapter, state: FlexIPState | None = None) -> Injection:
    if any(isinstance(p, FlexIPAttnProcessor) for p in unet.attn_processors.values()):
        raise FlexIPInputError("this UNet already has a FlexIP adapter injected; remove it first")
    adapter.check_compatible(unet)
    state = state or FlexIPState()
    original = dict(unet.attn_processors)
    targets = adapter.target_layers
    processors = {}
    for name, processor in original.items():
        layer_name = name.removesuffix(".processor")
        if layer_name in targets:
            processor = FlexIPAttnProcessor(layer_name, adapter.layer(layer_name), processor, state)
        processors[name] = processor
    unet.set_attn_processor(processors)
    return Injection(unet, adapter, state, original)


def remove_adapter(injection: Injection) -> None:
    if injection.active:
        injection.unet.set_attn_processor(dict(injection.original_processors))
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
