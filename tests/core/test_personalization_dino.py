"""`personalization_dino`: the personalization adapter's visual context also holds the reference's DINO tokens."""

from __future__ import annotations

import pytest
import torch

from flexip.errors import FlexIPInputError
from flexip.models import FlexIPAdapter
from flexip.testing import tiny_adapter, tiny_base_components


def _adapter(unet, personalization_dino: bool, randomize: bool) -> FlexIPAdapter:
    return tiny_adapter(unet, seed=1, randomize_outputs=randomize, personalization_dino=personalization_dino)


@pytest.fixture(name="inputs")
def inputs_fixture():
    generator = torch.Generator().manual_seed(0)
    text = torch.randn(2, 7, 32, generator=generator)
    clip = torch.randn(2, 24, generator=generator)
    dino = torch.randn(2, 5, 32, generator=generator)
    return text, clip, dino


def test_it_starts_as_the_text_and_then_reads_the_dino_tokens(inputs):
    unet = tiny_base_components(seed=0)["unet"]
    text, clip, dino = inputs
    fresh = _adapter(unet, True, randomize=False)
    with torch.no_grad():
        assert torch.equal(fresh.personalization_tokens(text, clip, dino), text)  # zero-initialized outputs: C_pers = T
        trained, plain = _adapter(unet, True, randomize=True), _adapter(unet, False, randomize=True)
        other = dino + 1.0
        assert not torch.allclose(trained.personalization_tokens(text, clip, dino), trained.personalization_tokens(text, clip, other))
        # the paper's adapter reads c_cls only: the DINO tokens change nothing
        assert torch.equal(plain.personalization_tokens(text, clip, dino), plain.personalization_tokens(text, clip, other))
        with pytest.raises(FlexIPInputError, match="pass dino_tokens"):
            trained.personalization_tokens(text, clip)
        # the full forward hands the DINO tokens to both adapters
        _, pers = trained(clip, dino, text)
        assert torch.equal(pers, trained.personalization_tokens(text, clip, dino))


def test_it_is_saved_in_the_config_and_old_configs_load_without_it(tmp_path, inputs):
    unet = tiny_base_components(seed=0)["unet"]
    text, clip, dino = inputs
    adapter = _adapter(unet, True, randomize=True)
    adapter.save_pretrained(tmp_path / "dino")
    loaded = FlexIPAdapter.from_pretrained(tmp_path / "dino")
    assert loaded.config.personalization_dino is True
    assert any(key.startswith("personalization.dino_context.") for key in loaded.state_dict())
    with torch.no_grad():
        assert torch.equal(loaded.personalization_tokens(text, clip, dino), adapter.personalization_tokens(text, clip, dino))
    # an adapter written before the option existed has no such key in its config.json: it loads as the paper's
    plain = _adapter(unet, False, randomize=True)
    plain.save_pretrained(tmp_path / "plain")
    config = tmp_path / "plain" / "config.json"
    config.write_text(config.read_text().replace('"personalization_dino": false,', ""))
    assert "personalization_dino" not in config.read_text()
    old = FlexIPAdapter.from_pretrained(tmp_path / "plain")
    assert old.config.personalization_dino is False and old.personalization.dino_context is None


def test_both_pipelines_hand_each_row_its_own_dino_tokens():
    """FlexIPPipeline and a diffusers pipeline with FlexIP attached render the same with such an adapter (two
    subjects, so that each row's DINO tokens must be its own subject's), and γ = 0 depends on the subject."""
    import numpy as np
    from diffusers import StableDiffusionPipeline
    from PIL import Image

    from flexip import FlexIP
    from flexip.pipelines import FlexIPPipeline
    from flexip.testing import tiny_reference_encoders

    encoders = tiny_reference_encoders(seed=0)
    ours_base, theirs_base = tiny_base_components(seed=0), tiny_base_components(seed=0)
    ours = FlexIPPipeline(**ours_base, **encoders, adapter=_adapter(ours_base["unet"], True, randomize=True))
    theirs = StableDiffusionPipeline(**theirs_base, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    for pipe in (ours, theirs):
        pipe.set_progress_bar_config(disable=True)
    flexip = FlexIP.attach(theirs, _adapter(theirs_base["unet"], True, randomize=True), **encoders)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 20, 3), dtype=np.uint8))
    subjects = [[image], [image.rotate(90)]]
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    common = dict(num_inference_steps=3, output_type="np", latents=latents)
    prompts = ["a dog", "a dog"]
    expected = ours(prompts, reference_embeds=ours.encode_reference(subjects), gamma=0.0, **common).images
    got = theirs(prompts, cross_attention_kwargs=flexip.conditioning(flexip.encode_reference(subjects), gamma=0.0), **common).images
    flexip.detach()
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert np.abs(expected[0] - expected[1]).max() > 1e-3  # same prompt and noise, two subjects: each row has its own C_pers
