"""FlexIP on a real-size Stable Diffusion 1.5 UNet (random weights from the published config)."""

import pytest
import torch

from flexip.gate import GateSettings
from flexip.models import FlexIPAdapter, FlexIPConditioning, injected
from flexip.testing import SD15_UNET_CONFIG


def expected_parameter_count(clip=1024, dino=1024, cross=768, n_c=4, n_q=16, depth=4, width=768, n_v=4, depth_pers=2):
    """The adapter's trainable parameters, from the dims alone (SPEC §1)."""
    linear = lambda fan_in, fan_out, bias=True: fan_in * fan_out + (fan_out if bias else 0)
    norm = lambda d: 2 * d
    attention = lambda d: 3 * linear(d, d, bias=False) + linear(d, d)
    feed_forward = lambda d: norm(d) + linear(d, 4 * d) + linear(4 * d, d)
    preservation = (
        linear(clip, n_c * cross)
        + norm(cross)  # global tokens
        + n_q * width
        + linear(clip, width)
        + linear(dino, width)  # queries, conditioning, feature projection
        + depth * (2 * norm(width) + attention(width) + feed_forward(width))
        + linear(width, cross)
        + norm(cross)
    )
    personalization = linear(clip, n_v * cross) + norm(cross) + depth_pers * (norm(cross) + attention(cross) + feed_forward(cross))
    hidden_sizes = [320] * 2 + [640] * 2 + [1280] * 2 + [1280] + [1280] * 3 + [640] * 3 + [320] * 3  # 16 layers
    decoupled_kv = sum(4 * linear(cross, hidden, bias=False) for hidden in hidden_sizes)
    return preservation + personalization + decoupled_kv


@pytest.fixture(scope="module")
def sd15_unet():
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(**SD15_UNET_CONFIG).eval()


def test_adapter_fits_sd15_and_runs_one_step(sd15_unet):
    adapter = FlexIPAdapter.from_unet(sd15_unet, clip_embed_dim=1024, dino_hidden_dim=1024)
    assert len(adapter.target_layers) == 16
    count = sum(p.numel() for p in adapter.parameters() if p.requires_grad)
    assert count == expected_parameter_count()
    with torch.no_grad():
        pres = adapter.preservation_tokens(torch.randn(1, 1024), torch.randn(1, 256, 1024))
        text = torch.randn(1, 77, 768)
        pers = adapter.personalization_tokens(text, torch.randn(1, 1024))
        assert pres.shape == (1, 20, 768) and pers.shape == (1, 77, 768)
        sample = torch.randn(1, 4, 16, 16)  # 128 px: the full 512 px step is timed in benchmarks/
        base = sd15_unet(sample, 10, encoder_hidden_states=text).sample
        with injected(sd15_unet, adapter, FlexIPConditioning(pres, pers, GateSettings(gamma=0.7))):
            out = sd15_unet(sample, 10, encoder_hidden_states=text).sample
    assert out.shape == base.shape and torch.isfinite(out).all()
    assert (out - base).abs().max() > 1e-4
