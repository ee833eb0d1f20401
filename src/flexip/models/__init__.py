"""FlexIP's trainable model: the two adapters, the gated attention processor and their injection."""

from flexip.models.adapter import FlexIPAdapter, cross_attention_layers
from flexip.models.attention_processor import DecoupledKV, FlexIPAttnProcessor, FlexIPConditioning, FlexIPState
from flexip.models.injection import (
    CONDITIONING_KEY,
    ConditioningSource,
    Injection,
    UNetCall,
    attach_adapter,
    attached,
    inject_adapter,
    injected,
    remove_adapter,
)
from flexip.models.personalization import PersonalizationAdapter
from flexip.models.preservation import PreservationAdapter

__all__ = [
    "CONDITIONING_KEY",
    "ConditioningSource",
    "DecoupledKV",
    "FlexIPAdapter",
    "FlexIPAttnProcessor",
    "FlexIPConditioning",
    "FlexIPState",
    "Injection",
    "PersonalizationAdapter",
    "PreservationAdapter",
    "UNetCall",
    "attach_adapter",
    "attached",
    "cross_attention_layers",
    "inject_adapter",
    "injected",
    "remove_adapter",
]
