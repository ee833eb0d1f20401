"""FlexIP: dynamic control of preservation and personality for customized image generation.

    from flexip import FlexIPPipeline
    pipe = FlexIPPipeline.from_pretrained("stable-diffusion-v1-5/stable-diffusion-v1-5", adapter="path/to/adapter")
    images = pipe("a dog in the snow", reference_images=photo, gamma=[0.2, 0.5, 0.8]).images

Heavy modules are imported on first use, so `import flexip` (and `flexip --help`) stays fast.
"""

from flexip.version import __version__

_LAZY = {
    "FlexIPPipeline": "flexip.pipelines.pipeline_flexip",
    "FlexIPPipelineOutput": "flexip.pipelines.pipeline_flexip",
    "FlexIPAdapter": "flexip.models.adapter",
    "FlexIP": "flexip.integrations.attach",
    "ReferenceEmbeds": "flexip.encoders.reference",
    "ReferenceEncoder": "flexip.encoders.reference",
    "Gamma": "flexip.gate",
    "GammaSchedule": "flexip.gate",
    "parse_gamma": "flexip.gate",
    "GateSettings": "flexip.gate",
    "inject_adapter": "flexip.models.injection",
    "remove_adapter": "flexip.models.injection",
    "load_image": "flexip.data.images",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'flexip' has no attribute {name!r}")
