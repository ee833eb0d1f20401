"""`flexip` entry point. Subcommands live one per module; this file only wires them together and turns
user errors into a one-line message with exit code 2 (no traceback)."""

from __future__ import annotations

import sys

import click

from flexip.errors import FlexIPError
from flexip.version import __version__


class FlexIPGroup(click.Group):
    """A click group whose commands report FlexIPError, file-system errors (a missing or unreadable file, a name
    too long, a full disk) and bad command lines (click's usage errors: an unknown option, a value of the wrong
    type) as one line `error: ...`, exit 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except FlexIPError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(2)
        except OSError as error:
            from flexip.cli.options import shown_path

            where = f": {shown_path(str(error.filename))}" if error.filename is not None else ""
            message = " ".join(str(error.strerror or error).split())
            click.echo(f"error: {message}{where}", err=True)
            sys.exit(2)
        except click.exceptions.NoArgsIsHelpError:  # a command group named alone: its help, as click prints it
            raise
        except click.UsageError as error:
            message = " ".join(error.format_message().split())
            hint = f" (see '{error.ctx.command_path} --help')" if error.ctx is not None else ""
            click.echo(f"error: {message}{hint}", err=True)
            sys.exit(2)


@click.group(cls=FlexIPGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="flexip")
def main() -> None:
    """FlexIP: subject-driven image generation with a dial (γ) between keeping the subject's identity
    and following the text."""


#: Packages add commands through this entry-point group (the miniworld's `flexip miniworld` is one), so
#: that `flexip` never imports them: they depend on flexip, not the reverse.
PLUGIN_GROUP = "flexip.commands"


def _register() -> None:
    # each module imports its heavy dependencies inside the command, so `flexip --help` stays fast
    from importlib.metadata import entry_points

    from flexip.cli.data import data_group
    from flexip.cli.demo import demo
    from flexip.cli.eval import eval_group
    from flexip.cli.generate import generate
    from flexip.cli.studio import studio
    from flexip.cli.study import study_group
    from flexip.cli.train import train

    for command in (generate, demo, train, eval_group, data_group, studio, study_group):
        main.add_command(command)
    for entry in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        main.add_command(entry.load(), entry.name)


_register()

if __name__ == "__main__":
    main()
