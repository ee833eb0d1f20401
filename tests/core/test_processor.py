"""The decoupled, gated cross-attention inside a real (tiny) diffusers UNet."""

import pytest
import torch

from flexip.gate import GateSettings
from flexip.models import FlexIPAttnProcessor, FlexIPConditioning, inject_adapter, injected, remove_adapter


def unet_inputs(unet, batch=2, seed=0):
    """Deterministic (sample, timestep, text embeddings) for the tiny UNet."""
    generator = torch.Generator().manual_seed(seed)
    sample = torch.randn(batch, 4, 8, 8, generator=generator)
    text = torch.randn(batch, 77, 32, generator=generator)
    return sample, torch.tensor(500), text


def _tokens(adapter, batch, seed):
    generator = torch.Generator().manual_seed(seed)
    clip = torch.randn(batch, 24, generator=generator)
    dino = torch.randn(batch, 16, 32, generator=generator)
    text = torch.randn(batch, 77, 32, generator=generator)
    with torch.no_grad():
        return adapter.preservation_tokens(clip, dino), adapter.personalization_tokens(text, clip)


def _run(unet, adapter, conditioning, batch=2):
    sample, timestep, text = unet_inputs(unet, batch=batch)
    with torch.no_grad(), injected(unet, adapter, conditioning):
        return unet(sample, timestep, encoder_hidden_states=text).sample


def _base(unet, batch=2):
    sample, timestep, text = unet_inputs(unet, batch=batch)
    with torch.no_grad():
        return unet(sample, timestep, encoder_hidden_states=text).sample


def test_inject_remove_restores_processors_and_outputs(unet_and_adapter):
    unet, adapter = unet_and_adapter
    before_processors = dict(unet.attn_processors)
    before_state = {k: v.clone() for k, v in unet.state_dict().items()}
    before = _base(unet)
    pres, pers = _tokens(adapter, 2, seed=1)
    injection = inject_adapter(unet, adapter)
    injection.state.conditioning = FlexIPConditioning(pres, pers, GateSettings(gamma=0.5))
    flexip_processors = [p for p in unet.attn_processors.values() if isinstance(p, FlexIPAttnProcessor)]
    assert len(flexip_processors) == len(adapter.target_layers) == 7  # every cross-attention layer of the tiny UNet: 2 down, 1 mid, 4 up
    with torch.no_grad():
        changed = unet(*unet_inputs(unet)[:2], encoder_hidden_states=unet_inputs(unet)[2]).sample
    assert not torch.equal(changed, before)
    remove_adapter(injection)
    after = dict(unet.attn_processors)
    assert after.keys() == before_processors.keys()
    assert all(after[k] is before_processors[k] for k in after)
    assert unet.state_dict().keys() == before_state.keys()
    assert all(torch.equal(unet.state_dict()[k], before_state[k]) for k in before_state)
    assert torch.equal(_base(unet), before)


def test_zero_gate_is_bit_identical_and_never_computes_the_branches(unet_and_adapter):
    unet, adapter = unet_and_adapter
    calls = []
    hooks = [m.register_forward_hook(lambda *a: calls.append(1)) for m in adapter.modules() if isinstance(m, torch.nn.Linear)]
    pres, pers = _tokens(adapter, 2, seed=1)
    calls.clear()
    base = _base(unet)
    for gate in (GateSettings(gamma=0.5, adapter_scale=0.0), GateSettings(w_pres=0.0, w_pers=0.0, adapter_scale=1.0)):
        assert torch.equal(_run(unet, adapter, FlexIPConditioning(pres, pers, gate)), base)
    assert calls == []
    for hook in hooks:
        hook.remove()


def test_gamma_one_ignores_personalization_and_zero_ignores_preservation(unet_and_adapter):
    unet, adapter = unet_and_adapter
    pres_a, pers_a = _tokens(adapter, 2, seed=1)
    pres_b, pers_b = _tokens(adapter, 2, seed=2)
    at = lambda gamma, pres, pers: _run(unet, adapter, FlexIPConditioning(pres, pers, GateSettings(gamma=gamma)))
    assert torch.equal(at(1.0, pres_a, pers_a), at(1.0, pres_a, pers_b))
    assert torch.equal(at(0.0, pres_a, pers_a), at(0.0, pres_b, pers_a))
    assert not torch.allclose(at(1.0, pres_a, pers_a), at(1.0, pres_b, pers_a), atol=1e-4)
    assert not torch.allclose(at(0.0, pres_a, pers_a), at(0.0, pres_a, pers_b), atol=1e-4)
    middle = at(0.5, pres_a, pers_a)
    for end in (at(0.0, pres_a, pers_a), at(1.0, pres_a, pers_a)):
        assert (middle - end).abs().max() > 1e-4


def test_per_sample_gamma_equals_one_by_one(unet_and_adapter):
    unet, adapter = unet_and_adapter
    pres, pers = _tokens(adapter, 3, seed=3)
    gammas = torch.tensor([0.0, 0.4, 1.0])
    sample, timestep, text = unet_inputs(unet, batch=3)
    with torch.no_grad():
        with injected(unet, adapter, FlexIPConditioning(pres, pers, GateSettings(gamma=gammas))):
            batched = unet(sample, timestep, encoder_hidden_states=text).sample
        for index in range(3):
            one = slice(index, index + 1)
            with injected(unet, adapter, FlexIPConditioning(pres[one], pers[one], GateSettings(gamma=float(gammas[index])))):
                single = unet(sample[one], timestep, encoder_hidden_states=text[one]).sample
            torch.testing.assert_close(batched[one], single, atol=1e-5, rtol=1e-5)


def test_processor_matches_diffusers_ip_adapter_math_for_one_branch(unet_and_adapter):
    """Reference check (minGPT-style): with γ = 1 FlexIP's layer output equals diffusers' own
    IPAdapterAttnProcessor2_0 given the same extra tokens and K/V weights."""
    from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0

    unet, adapter = unet_and_adapter
    name = next(iter(adapter.target_layers))
    attn = unet.get_submodule(name)
    kv = adapter.layer(name)
    pres, _ = _tokens(adapter, 2, seed=4)
    hidden = torch.randn(2, 64, attn.to_q.in_features)
    text = torch.randn(2, 77, 32)
    ours = FlexIPAttnProcessor(name, kv, attn.processor, None)
    ours.state = type("S", (), {"conditioning": FlexIPConditioning(pres, None, GateSettings(gamma=1.0, adapter_scale=0.7))})()
    reference = IPAdapterAttnProcessor2_0(attn.to_q.out_features, 32, num_tokens=(pres.shape[1],), scale=0.7)
    with torch.no_grad():
        reference.to_k_ip[0].weight.copy_(kv.to_k_pres.weight)
        reference.to_v_ip[0].weight.copy_(kv.to_v_pres.weight)
        expected = reference(attn, hidden, encoder_hidden_states=(text, [pres.unsqueeze(1)]))
        got = ours(attn, hidden, encoder_hidden_states=text)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_double_injection_is_refused(unet_and_adapter):
    from flexip.errors import FlexIPInputError

    unet, adapter = unet_and_adapter
    injection = inject_adapter(unet, adapter)
    with pytest.raises(FlexIPInputError, match="already"):
        inject_adapter(unet, adapter)
    remove_adapter(injection)


def test_a_silenced_personalization_branch_leaves_gamma_zero_at_the_base(unet_and_adapter):
    import copy

    unet, adapter = unet_and_adapter
    silenced = copy.deepcopy(adapter)
    silenced.silence_personalization()
    assert all(not silenced.layer(name).to_v_pers.weight.any() for name in silenced.target_layers)
    pres, pers = _tokens(adapter, batch=2, seed=1)
    base = _base(unet)
    at_zero = lambda a: _run(unet, a, FlexIPConditioning(pres, pers, GateSettings(gamma=0.0)))
    # with V'_pers copied from the text V (SPEC §1), γ = 0 moves the output; silenced, it does not
    assert not torch.allclose(at_zero(adapter), base, atol=1e-4)
    assert torch.allclose(at_zero(silenced), base, atol=1e-5)
    # the preservation branch is untouched
    at_one = lambda a: _run(unet, a, FlexIPConditioning(pres, pers, GateSettings(gamma=1.0)))
    assert torch.equal(at_one(silenced), at_one(adapter))


def test_conditioning_is_immutable_so_a_new_one_is_set_per_step():
    import dataclasses

    conditioning = FlexIPConditioning(None, None, GateSettings(gamma=0.5))
    with pytest.raises(dataclasses.FrozenInstanceError):
        conditioning.gate = GateSettings(gamma=1.0)
    assert dataclasses.replace(conditioning, gate=GateSettings(gamma=1.0)).gate.gamma.default == 1.0
    assert conditioning.gate.gamma.default == 0.5


def test_a_projection_store_computes_each_layers_keys_once_with_the_same_numbers(unet_and_adapter):
    import copy
    from dataclasses import replace

    unet, adapter = unet_and_adapter
    adapter = copy.deepcopy(adapter)  # its weights are changed below
    pres, pers = _tokens(adapter, 2, seed=1)
    store = {}
    stored = FlexIPConditioning(pres, pers, GateSettings(gamma=0.4), projections=store)
    plain = FlexIPConditioning(pres, pers, GateSettings(gamma=0.4))
    outputs = []
    with torch.no_grad(), injected(unet, adapter) as state:
        for seed in (0, 1):  # two UNet calls with the same tokens, as two denoising steps
            sample, timestep, text = unet_inputs(unet, seed=seed)
            state.conditioning = plain
            expected = unet(sample, timestep, encoder_hidden_states=text).sample
            state.conditioning = replace(stored, gate=GateSettings(gamma=0.4))  # a step's new gate keeps the store
            outputs.append(unet(sample, timestep, encoder_hidden_states=text).sample)
            assert torch.equal(outputs[-1], expected)  # the same numbers as projecting at every call
        assert sorted(store) == sorted((layer, branch) for layer in adapter.target_layers for branch in ("pres", "pers"))
        # the store is what the next calls read: with the K'/V' maps changed, a stored conditioning still renders as
        # before, a plain one does not
        for parameter in adapter.layers.parameters():
            parameter.mul_(1.5)
        state.conditioning = stored
        assert torch.equal(unet(sample, timestep, encoder_hidden_states=text).sample, outputs[-1])
        state.conditioning = plain
        assert not torch.equal(unet(sample, timestep, encoder_hidden_states=text).sample, outputs[-1])


def test_with_gradients_on_the_store_is_left_alone(unet_and_adapter):
    unet, adapter = unet_and_adapter
    pres, pers = _tokens(adapter, 2, seed=1)
    store = {}
    sample, timestep, text = unet_inputs(unet)
    with injected(unet, adapter, FlexIPConditioning(pres, pers, GateSettings(gamma=0.4), projections=store)):
        unet(sample, timestep, encoder_hidden_states=text).sample.sum().backward()  # training: the weights will change
    assert store == {}
    adapter.zero_grad(set_to_none=True)
    unet.zero_grad(set_to_none=True)
