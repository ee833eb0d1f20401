"""Fixtures of the fault suite: one cached tiny-random pipeline, and a stand-in for model loading that lets
CLI tests run without loading anything and tell whether a load was attempted."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="package", autouse=True)
def _one_thread():
    """The toy models run faster single-threaded on a busy 2-core machine, and the SIGKILL tests compare
    weights bit for bit with child processes that run single-threaded too."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="package")
def pipe():
    from flexip.pipelines import FlexIPPipeline

    return FlexIPPipeline.from_pretrained("tiny-random")


@pytest.fixture(scope="package")
def embeds(pipe):
    import numpy as np

    return pipe.encode_reference(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8))


@pytest.fixture()
def loads(pipe, monkeypatch):
    """`FlexIPPipeline.from_pretrained` answers with the cached pipeline and records each call (clear the list
    at the start of each hypothesis example)."""
    from flexip.pipelines import FlexIPPipeline

    calls = []

    def from_pretrained(cls, *args, **kwargs):
        calls.append((args, kwargs))
        return pipe

    monkeypatch.setattr(FlexIPPipeline, "from_pretrained", classmethod(from_pretrained))
    return calls
