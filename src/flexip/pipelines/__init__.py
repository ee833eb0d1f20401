"""Inference pipelines (inference only; they never leave shared components modified)."""

from flexip.pipelines.pipeline_flexip import FlexIPPipeline, FlexIPPipelineOutput

__all__ = ["FlexIPPipeline", "FlexIPPipelineOutput"]
