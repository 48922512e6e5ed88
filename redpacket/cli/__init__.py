"""The command line: parse, call the core, render. Nothing else lives here.

Each command module registers its commands on the group in ``app`` when the group
loads it, which it does only for the command that runs (``lazy``); ``main``
turns the lab's user errors into one line on stderr and exit status 2.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from redpacket.cli.app import cli  # its commands load when they run (cli.lazy)
from redpacket.errors import LabError

PROG = "redpacket"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors become one line on stderr and exit status 2."""
    try:
        status = cli.main(
            args=list(argv) if argv is not None else None, prog_name=PROG, standalone_mode=False
        )
    except LabError as exc:
        click.echo(f"{PROG}: error: {exc.message}", err=True)
        return exc.exit_status
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.NoArgsIsHelpError as exc:  # no command: the help, not an error
        click.echo(exc.format_message(), err=True)
        return 2
    except click.UsageError as exc:
        click.echo(f"{PROG}: error: {exc.format_message()}", err=True)
        return 2
    except click.ClickException as exc:
        click.echo(f"{PROG}: error: {exc.format_message()}", err=True)
        return exc.exit_code if exc.exit_code else 1
    except (click.Abort, KeyboardInterrupt):
        click.echo(f"{PROG}: interrupted", err=True)
        return 130
    except BrokenPipeError:
        return 1
    return status if isinstance(status, int) else 0


__all__ = ["cli", "main"]
