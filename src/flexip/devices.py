"""Choosing the device: one rule for generation, training stages and evaluation. A leaf module."""

from __future__ import annotations

from flexip.errors import FlexIPInputError


def resolve_device(device: str | None = "auto"):
    """None or "auto" → the first accelerator available (CUDA, then Apple MPS), else the CPU.
    An explicit CUDA device on a machine without CUDA is an error that says so."""
    import torch  # here, so that importing the CLI stays fast

    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise FlexIPInputError(f"device {device!r}: CUDA is not available on this machine")
    if str(device).startswith("mps") and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise FlexIPInputError(f"device {device!r}: Apple MPS is not available on this machine")
    if str(device).startswith("meta"):
        raise FlexIPInputError("device 'meta' holds no data and cannot generate or train; use cpu, cuda or mps")
    try:
        return torch.device(device)
    except RuntimeError as error:
        raise FlexIPInputError(f"unknown device {device!r}: {error}") from None
