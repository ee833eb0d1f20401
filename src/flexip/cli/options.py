"""Small click helpers shared by the subcommands: options that take several values after one flag, and the
option types that check a value when the command line is read, before any model loads: numbers that must
be finite and ≥ 0, seeds, and output folders (creatable and writable). A bad value ends as one `error:` line
(`flexip.cli.main` prints click's usage errors that way too)."""

from __future__ import annotations

import math
import os
import stat

import click

#: Seeds are 64-bit: torch generators take 0 … 2**64 − 1.
SEED_RANGE = click.IntRange(0, 2**64 - 1)

#: Room left in a path for the files a command writes into its output folder (names, temporary names).
_FILE_NAME_RESERVE = 256


class VariadicOptionsCommand(click.Command):
    """Lets options declared `multiple=True` and listed in `variadic` take several values after one flag:
    `--gamma 0.2 0.5 0.8` is read as `--gamma 0.2 --gamma 0.5 --gamma 0.8`."""

    def __init__(self, *args, variadic: tuple[str, ...] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.variadic = set(variadic)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        expanded, current = [], None
        for arg in args:
            if arg.startswith("-") and not _is_number(arg):
                name = arg.split("=", 1)[0]
                current = name if name in self.variadic and "=" not in arg else None
                expanded.append(arg)
            elif current is not None and expanded and expanded[-1] != current:
                expanded.extend([current, arg])
            else:
                expanded.append(arg)
        return super().parse_args(ctx, expanded)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class NonNegativeFloat(click.ParamType):
    """A finite number ≥ 0 (guidance, adapter scale, branch weights): `nan`, `inf` and `-1` are refused."""

    name = "number"

    def convert(self, value, param, ctx):
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number) or number < 0:
            self.fail(f"expected a finite number ≥ 0, got {value}", param, ctx)
        return number


NON_NEGATIVE = NonNegativeFloat()


class OutputFolder(click.ParamType):
    """A folder the command may write into: an existing, writable folder, or one that can be made there."""

    name = "folder"

    def convert(self, value, param, ctx):
        problem = output_folder_problem(value)
        if problem is not None:
            self.fail(problem, param, ctx)
        return os.fspath(value)


OUTPUT_FOLDER = OutputFolder()


def output_folder_problem(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be an output folder, or None: it is a writable folder, or the nearest existing folder
    above it is writable and the names still to make are valid. Nothing is created."""
    text = os.fspath(path)
    shown = shown_path(text)
    if not text.strip():
        return "an empty path names no folder"
    try:
        absolute = os.path.abspath(text)
        current, missing = absolute, []
        while True:
            try:
                info = os.stat(current)
                break
            except (FileNotFoundError, NotADirectoryError):  # not there yet, or below a file (found further up)
                if current == absolute and os.path.lexists(current):
                    return f"{shown} is a broken symbolic link"
                missing.append(os.path.basename(current))
                current = os.path.dirname(current)
        if not stat.S_ISDIR(info.st_mode):
            return f"{shown} is a file, not a folder" if current == absolute else f"cannot make {shown}: {shown_path(current)} is a file"
        if not os.access(current, os.W_OK | os.X_OK):
            return f"cannot write into {shown_path(current)}" + ("" if current == absolute else f" to make {shown}")
        name_max, path_max = _limit(current, "PC_NAME_MAX", 255), _limit(current, "PC_PATH_MAX", 4096)
        for name in missing:
            if len(os.fsencode(name)) > name_max:
                return f"cannot make {shown}: the name {shown_path(name)} is longer than {name_max} bytes"
        if len(os.fsencode(absolute)) + _FILE_NAME_RESERVE > path_max:
            return f"{shown} is too long a path for the files written into it (at most {path_max - _FILE_NAME_RESERVE} bytes)"
    except ValueError as error:  # a NUL character, or text that is no file name on this system
        return f"{shown} cannot be a folder name ({error})"
    except OSError as error:  # too long a name, no permission to look, a symbolic-link loop
        return f"cannot use {shown} as a folder: {error.strerror or error}"
    return None


def _limit(folder: str, name: str, default: int) -> int:
    try:
        return os.pathconf(folder, name)
    except (OSError, ValueError, AttributeError):  # not every platform or filesystem reports it
        return default


def shown_path(text: str, length: int = 120) -> str:
    """`text` as it goes into a one-line message: quoted and escaped if it holds control characters, and
    shortened in the middle when long."""
    text = os.fspath(text)
    if len(text) > length:
        text = f"{text[: length // 2]}…{text[-length // 2 :]}"
    return text if text.isprintable() else repr(text)
