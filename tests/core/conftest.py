import pytest

from flexip.testing import tiny_adapter, tiny_base_components, tiny_pipeline


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(seed=0)


@pytest.fixture(scope="module")
def reference_image():
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (40, 28, 3), dtype=np.uint8))


@pytest.fixture()
def unet_and_adapter():
    base = tiny_base_components(seed=0)
    unet = base["unet"]
    return unet, tiny_adapter(unet, seed=0)
