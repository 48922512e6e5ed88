"""Commands loaded when they run: ``redpacket --help`` must not wait for SQLAlchemy.

Each command lives in a module of ``redpacket.cli`` that registers it on the group
when imported; the group knows which module holds which command and imports only
the one invoked. Its own help lists every command from the short texts below, which
``tests/test_cli.py`` holds to each command's own docstring, so the list never
needs the commands themselves.
"""

from __future__ import annotations

import importlib

import click

# name -> (module in redpacket.cli, the command's short help, whole)
COMMANDS: dict[str, tuple[str, str]] = {
    "anomalies": ("anomaly_commands", "Run the classic anomalies (Hermitage's) at every level:"
                  " possible, or prevented and how."),
    "compare": ("stress_commands", "Run strategies x levels x worker counts x workloads; table"
                " and charts side by side."),
    "demo": ("demo", "Reproduce the seed bug step by step, explain it, compare every fix, then"
             " load them."),
    "doctor": ("lab_commands", "Show the server, the lab database and whether its schema is"
               " migrated."),
    "drop": ("lab_commands", "Drop the lab database, and only it (it must carry the lab's mark)."),
    "explain": ("interleave_commands", "Run STRATEGY in two sessions in an exact order and"
                " explain what happened."),
    "grant": ("grant_commands", "Grant ORDER_ID its red packet once, with one strategy at one"
              " isolation level."),
    "matrix": ("interleave_commands", "Run every strategy x isolation level x schedule and show"
               " the verdicts."),
    "migrate": ("lab_commands", "Create the lab database if needed and upgrade its schemas."),
    "proxy": ("wire_commands", "Trace every transaction between clients and the server: steps,"
              " waits, ends."),
    "race": ("wire_commands", "Race any service's requests through the proxy: a schedule, every"
             " order, or a hammer."),
    "reset": ("lab_commands", "Empty the lab's tables and load fresh orders (migrating first if"
              " needed)."),
    "spec": ("spec_commands", "Run isolationtester SPEC_FILES (PostgreSQL's src/test/isolation"
             " format)."),
    "strategies": ("strategy_commands", "List the grant strategies and their verdict per level;"
                   " NAME shows one, with its SQL."),
    "stress": ("stress_commands", "Grant under concurrent load and count what went wrong and"
               " what it cost."),
}  # fmt: skip


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(f"redpacket.cli.{COMMANDS[cmd_name][0]}")
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click lists them (short help cut to the terminal's width), without loading them."""
        names = sorted(COMMANDS)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, click.Command(name, help=COMMANDS[name][1]).get_short_help_str(limit))
                for name in names]  # fmt: skip
        with formatter.section("Commands"):
            formatter.write_dl(rows)
