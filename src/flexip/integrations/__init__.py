"""FlexIP in diffusers' own pipelines: `FlexIP.attach(pipe, adapter)` on any UNet pipeline (SD1.5, SDXL,
ControlNet, img2img, inpainting, AnimateDiff), the gate given per call through `cross_attention_kwargs`."""

from flexip.integrations.attach import FlexIP
from flexip.integrations.layout import BatchLayout, ReferenceConditioning, check_block_keys, read_layout

__all__ = ["BatchLayout", "FlexIP", "ReferenceConditioning", "check_block_keys", "read_layout"]
