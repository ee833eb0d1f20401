import pytest
import torch

from flexip.devices import resolve_device
from flexip.errors import FlexIPInputError


def test_auto_and_explicit_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device(None) == resolve_device("auto") != torch.device("cuda")
        with pytest.raises(FlexIPInputError, match="CUDA is not available"):
            resolve_device("cuda:0")
    with pytest.raises(FlexIPInputError, match="unknown device"):
        resolve_device("quantum")
