"""Small click helpers shared by the subcommands: options that take several values after one flag."""

from __future__ import annotations

import click


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
