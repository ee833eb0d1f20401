"""Frozen reference encoders (CLIP vision for c_cls, DINOv2 for patch tokens)."""

from flexip.encoders.loading import load_dino_encoder, load_image_encoder
from flexip.encoders.reference import ReferenceEmbeds, ReferenceEncoder, group_subjects

__all__ = ["ReferenceEmbeds", "ReferenceEncoder", "group_subjects", "load_dino_encoder", "load_image_encoder"]
