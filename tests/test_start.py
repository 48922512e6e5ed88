"""A start in a blink: what the command line loads before it knows what to run.

``redpacket --help`` and ``--version`` must not import SQLAlchemy, Alembic or Rich
(0.9 s of a newcomer's first minute), ``strategies --json`` needs neither SQLAlchemy
nor Alembic, and a spec file needs no Alembic or Rich. Each is checked in a fresh
interpreter, as a user starts it. The command list ``--help`` shows without loading
the commands must be theirs, word for word.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from redpacket.cli.app import cli
from redpacket.cli.lazy import COMMANDS
from redpacket.database.backends import Server
from redpacket.database.lab import Lab
from redpacket.database.urls import plain_url

SPECS = Path(__file__).resolve().parent / "specs"
LOADED = """
import json, sys
from redpacket.cli import main
code = main(sys.argv[1:])
print(json.dumps([code, sorted(m for m in ("sqlalchemy", "alembic", "rich") if m in sys.modules)]),
      file=sys.stderr)
"""


def loaded(*args: str, env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", LOADED, *args], capture_output=True, text=True, timeout=120,
        env=env,
    )  # fmt: skip
    code, modules = json.loads(done.stderr.strip().splitlines()[-1])
    return code, modules


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["spec", "--help"]])
def test_help_and_version_load_no_sqlalchemy_alembic_or_rich(args: list[str]) -> None:
    assert loaded(*args) == (0, [])


def test_strategies_as_json_loads_no_sqlalchemy_or_alembic() -> None:
    code, modules = loaded("strategies", "--json")
    assert code == 0
    assert "sqlalchemy" not in modules
    assert "alembic" not in modules


def test_a_spec_file_loads_no_sqlalchemy_alembic_or_rich(
    server: Server, worker_id_suffix: str
) -> None:
    """One process per spec file, as pg_isolation_regress runs them: SQLAlchemy alone cost
    each 0.17 s, and a spec run makes no SQLAlchemy engine."""
    lab = Lab(server, f"redpacket_test_start_{worker_id_suffix}")
    env = dict(os.environ, REDPACKET_DATABASE_URL=plain_url(server.url))
    try:
        code, modules = loaded(
            "--lab-database", lab.name, "spec", str(SPECS / "basics.spec"), env=env
        )
    finally:
        lab.drop()
    assert (code, modules) == (0, [])


def test_the_listed_commands_are_the_commands_word_for_word() -> None:
    ctx = click.Context(cli)
    for name, (_module, short_help) in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None, name
        assert command.get_short_help_str(limit=10**6) == short_help, name
    assert sorted(cli.commands) == sorted(COMMANDS)  # no command the list leaves out


def test_the_help_names_the_commands_that_take_several_servers() -> None:
    """Those whose code opens every --database-url (open_labs), and only those."""
    import inspect

    from redpacket.cli import app
    from redpacket.cli.app import cli

    several = set()
    for name, (module, _help) in COMMANDS.items():
        importlib.import_module(f"redpacket.cli.{module}")
        command = cli.commands[name]
        assert command.callback is not None
        callback = inspect.unwrap(command.callback)
        home = sys.modules[callback.__module__]
        helpers = [
            found for word in callback.__code__.co_names
            if inspect.isfunction(found := getattr(home, word, None))
            and found.__module__ == home.__name__
        ]  # fmt: skip
        if any("open_labs(" in inspect.getsource(f) for f in [callback, *helpers]):
            several.add(name)
    listed = app.SEVERAL_SERVERS.replace(" and ", ", ").split(", ")
    assert listed == sorted(several)
