"""FlexIP attached to unmodified diffusers pipelines: a table of pipeline kinds × checks, on tiny models.

For each pipeline: adapter off is the untouched pipeline bit for bit; γ changes the output; a γ sweep in one
call equals separate calls; a LoRA loaded with `load_lora_weights` acts together with FlexIP; ControlNet
conditioning acts together with FlexIP; `detach` gives back the very same processor objects and outputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from flexip import FlexIP
from tests.integrations.conftest import CASES, Case, output


@dataclass
class Rig:
    case: Case
    pipe: object
    flexip: FlexIP
    reference: object
    before: np.ndarray  # the pipeline's output before FlexIP was attached
    processors: dict  # the UNet's processors before FlexIP was attached

    def run(self, **kwargs) -> np.ndarray:
        return output(self.pipe, self.case, **kwargs)

    def conditioning(self, **kwargs) -> dict:
        return self.flexip.conditioning(self.reference, **kwargs)


@pytest.fixture(scope="module", params=CASES, ids=lambda case: case.name)
def rig(request, encoders, reference_image):
    from flexip.testing import tiny_adapter

    case = request.param
    pipe = case.build()
    before, processors = output(pipe, case), dict(pipe.unet.attn_processors)
    flexip = FlexIP.attach(pipe, tiny_adapter(pipe.unet), **encoders)
    yield Rig(case, pipe, flexip, flexip.encode_reference(reference_image), before, processors)
    flexip.detach()


def test_adapter_off_is_the_untouched_pipeline_bit_for_bit(rig):
    np.testing.assert_array_equal(rig.run(), rig.before)  # attached, no FlexIP key in the call
    np.testing.assert_array_equal(rig.run(cross_attention_kwargs=rig.conditioning(adapter_scale=0.0)), rig.before)
    np.testing.assert_array_equal(rig.run(cross_attention_kwargs=rig.conditioning(w_pres=0.0, w_pers=0.0)), rig.before)


def test_gamma_changes_the_output(rig):
    identity = rig.run(cross_attention_kwargs=rig.conditioning(gamma=1.0))
    editing = rig.run(cross_attention_kwargs=rig.conditioning(gamma=0.0))
    assert np.abs(identity - editing).max() > 1e-3
    assert np.abs(identity - rig.before).max() > 1e-3 and np.abs(editing - rig.before).max() > 1e-3


def test_a_sweep_in_one_call_equals_separate_calls(rig):
    """Row i of a one-call sweep is row i of a call at the constant γ_i (the same generators: diffusers' own noise
    and image-encoding draws are then the same), so each γ lands on its own images and only there."""
    gammas = [0.0, 1.0]
    images = rig.case.batch_of(len(gammas))
    same_noise = lambda: [torch.Generator().manual_seed(0) for _ in gammas]
    sweep = rig.run(generator=same_noise(), cross_attention_kwargs=rig.conditioning(gamma=gammas), **images)
    assert sweep.shape[0] == len(gammas)
    for index, gamma in enumerate(gammas):
        constant = rig.run(generator=same_noise(), cross_attention_kwargs=rig.conditioning(gamma=gamma), **images)
        np.testing.assert_allclose(sweep[index], constant[index], atol=1e-4)
    assert np.abs(sweep[0] - sweep[-1]).max() > 1e-3


def test_a_lora_acts_together_with_flexip(rig):
    from flexip.testing.pipelines import tiny_lora_state_dict

    flexip_only = rig.run(cross_attention_kwargs=rig.conditioning(gamma=0.5))
    rig.pipe.load_lora_weights(tiny_lora_state_dict(rig.pipe.unet), adapter_name="tiny")
    try:
        lora_only = rig.run()
        both = rig.run(cross_attention_kwargs=rig.conditioning(gamma=0.5))
        half_lora = rig.run(cross_attention_kwargs={**rig.conditioning(gamma=0.5), "scale": 0.5})  # the LoRA scale passes through
    finally:
        rig.pipe.unload_lora_weights()
    assert np.abs(lora_only - rig.before).max() > 1e-3  # the LoRA does something
    assert np.abs(both - lora_only).max() > 1e-3 and np.abs(both - flexip_only).max() > 1e-3  # and so does FlexIP on top of it
    assert np.abs(half_lora - both).max() > 1e-4
    np.testing.assert_array_equal(rig.run(), rig.before)  # unloaded: the pipeline is back


def test_controlnet_conditioning_acts_together_with_flexip(rig):
    if rig.case.kind != "controlnet":
        pytest.skip("not a ControlNet pipeline")
    from tests.integrations.conftest import condition_image

    conditioning = rig.conditioning(gamma=0.7)
    with_control = rig.run(cross_attention_kwargs=conditioning)
    other_control = rig.run(cross_attention_kwargs=conditioning, image=condition_image(9))
    no_control = rig.run(cross_attention_kwargs=conditioning, controlnet_conditioning_scale=0.0)
    assert np.abs(with_control - other_control).max() > 1e-3 and np.abs(with_control - no_control).max() > 1e-3
    assert np.abs(with_control - rig.before).max() > 1e-3  # FlexIP acts with the ControlNet on


def test_detach_restores_the_very_same_pipeline(rig):
    unet = rig.pipe.unet
    rig.flexip.detach()
    try:
        after = dict(unet.attn_processors)
        assert after.keys() == rig.processors.keys() and all(after[name] is rig.processors[name] for name in after)
        assert not unet._forward_pre_hooks and not unet._forward_hooks
        np.testing.assert_array_equal(rig.run(), rig.before)
        rig.flexip.detach()  # idempotent
    finally:
        rig.flexip = FlexIP.attach(rig.pipe, rig.flexip.adapter, image_encoder=None)
