"""Errors FlexIP raises on bad user input. A leaf module: it imports nothing from the package."""


class FlexIPError(Exception):
    """Base class: a user-facing problem whose message says what was expected."""


class FlexIPInputError(FlexIPError, ValueError):
    """An argument, file or config value is invalid (wrong range, shape, format or content)."""


class CheckpointError(FlexIPError, ValueError):
    """An adapter or training checkpoint is missing, incomplete, unsafe or does not fit the base model."""
