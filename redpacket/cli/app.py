"""The command group, its global options, and what every command shares."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from redpacket.cli.lazy import LazyGroup
from redpacket.database.names import BACKENDS, DEFAULT_LAB_DATABASE, lab_name_problem
from redpacket.errors import LabError
from redpacket.interleave.schedule import looks_explicit
from redpacket.isolation import ISOLATION_NAMES, Isolation, Levels
from redpacket.retry import RETRIED
from redpacket.strategies import STRATEGY_NAMES, Strategy, get_strategy

if TYPE_CHECKING:  # loaded by the commands that print or connect, not by --help
    from rich.console import Console
    from rich.progress import Progress

    from redpacket.database.lab import Lab


# The commands that run on every --database-url given (open_labs); tests/test_cli.py holds
# this to the commands themselves.
SEVERAL_SERVERS = "anomalies, demo and matrix"


@dataclasses.dataclass
class Options:
    database_urls: tuple[str, ...]
    backend: str
    lab_database: str

    @property
    def database_url(self) -> str | None:
        """The one URL of a command that runs on one server."""
        if len(self.database_urls) > 1:
            raise LabError(
                "this command runs on one server: give one --database-url"
                f" ({SEVERAL_SERVERS} take several, side by side)"
            )
        return self.database_urls[0] if self.database_urls else None


@contextlib.contextmanager
def open_lab(options: Options) -> Iterator[Lab]:
    from redpacket.database.backends import open_server
    from redpacket.database.lab import Lab

    with open_server(options.backend, options.database_url) as server:
        lab = Lab(server, options.lab_database)
        try:
            yield lab
        finally:
            lab.close()


@contextlib.contextmanager
def open_labs(options: Options) -> Iterator[list[Lab]]:
    """One lab per --database-url (or the backend's one server), side by side."""
    from redpacket.database.backends import open_server
    from redpacket.database.lab import Lab

    with contextlib.ExitStack() as stack:
        urls: list[str | None] = list(options.database_urls) or [None]
        labs = [
            Lab(stack.enter_context(open_server(options.backend, url)), options.lab_database)
            for url in urls
        ]
        try:
            yield labs
        finally:
            for lab in labs:
                lab.close()


def console(record: bool = False) -> Console:
    """Rich console for results; piped output gets a width that fits the tables."""
    from rich.console import Console

    width = None if sys.stdout.isatty() else 132
    return Console(highlight=False, width=width, record=record)


def check_writable_file(path: Path) -> None:
    """Fail before the work, not after it; opening to append never loses what is there."""
    try:
        with path.open("a"):
            pass
    except OSError as exc:
        raise LabError(f"cannot write {path}: {exc.strerror or exc}") from None


def require_extra(module: str, extra: str, option: str) -> None:
    """Refuse an option whose extra is missing before the work starts, not after it."""
    if importlib.util.find_spec(module) is None:
        raise LabError(f"{option} needs the {extra} extra: pip install 'redpacket[{extra}]'")


html_option = click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also save what is printed as an HTML page, colours and all (slides, handouts).",
)


def check_html(html_path: Path | None, as_json: bool) -> None:
    if html_path is not None and as_json:
        raise LabError("give --json or --html, not both")
    if html_path is not None:
        check_writable_file(html_path)


@contextlib.contextmanager
def output(html_path: Path | None) -> Iterator[Console]:
    """The console a command prints to; with ``html_path``, also saved there as a page."""
    if html_path is not None:
        check_writable_file(html_path)
    out = console(record=html_path is not None)
    yield out
    if html_path is not None:
        try:
            out.save_html(str(html_path))
        except OSError as exc:
            raise LabError(f"cannot write {html_path}: {exc.strerror or exc}") from None
        click.echo(f"saved {html_path}", err=True)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


class _NoBar:
    """What a progress bar does where no person watches: nothing, and Rich stays unloaded."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, description: str, **fields: Any) -> int:
        return 0

    def update(self, task: int, **fields: Any) -> None:
        return None

    def advance(self, task: int, advance: float = 1) -> None:
        return None

    def reset(self, task: int, **fields: Any) -> None:
        return None


def progress_bar() -> Progress:
    """A progress bar on stderr, shown only to a person at a terminal."""
    if not sys.stderr.isatty():
        # the part of Progress the commands use
        return _NoBar()  # type: ignore[return-value]
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not sys.stderr.isatty(),
    )


def split_names(values: Sequence[str]) -> list[str]:
    """``--x a,b --x c`` -> [a, b, c]."""
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def schedule_list(values: Sequence[str]) -> list[str]:
    """Named schedules split on commas; an explicit one (``T1:1,T2:end``) stays whole."""
    schedules: list[str] = []
    for value in values:
        if looks_explicit(value):
            schedules.append(value.strip())
        else:
            schedules += split_names([value])
    return schedules


def strategy_list(values: Sequence[str]) -> list[Strategy]:
    names = split_names(values)
    return (
        [get_strategy(name) for name in names]
        if names
        else [get_strategy(n) for n in STRATEGY_NAMES]
    )


def isolation_list(values: Sequence[str]) -> list[Isolation]:
    names = split_names(values)
    return [Isolation.parse(name) for name in names] if names else list(Isolation)


def levels_list(values: Sequence[str]) -> list[Levels]:
    """Like ``isolation_list``; a value naming sessions (``T1=...,T2=...``) stays whole."""
    chosen: list[Levels] = []
    for value in values:
        if "=" in value:
            chosen.append(Levels.parse(value))
        else:
            chosen += [Levels(level) for level in isolation_list([value])]
    return chosen or [Levels(level) for level in Isolation]


def _strategy(_ctx: click.Context, _param: click.Parameter, value: str) -> Strategy:
    return get_strategy(value)


def _isolation(_ctx: click.Context, _param: click.Parameter, value: str) -> Isolation:
    return Isolation.parse(value)


STRATEGIES_HELP = "Comma-separated names or .py files defining STRATEGY; default: all built in."
strategy_option = click.option(
    "--strategy",
    "-s",
    default="seed",
    show_default=True,
    callback=_strategy,
    help=f"One of: {', '.join(STRATEGY_NAMES)}; or the path of a .py file defining STRATEGY.",
)
isolation_option = click.option(
    "--isolation",
    "-i",
    default=Isolation.READ_COMMITTED.value,
    show_default=True,
    callback=_isolation,
    help=f"One of: {', '.join(ISOLATION_NAMES)}.",
)
retries_option = click.option(
    "--retries",
    default=0,
    show_default=True,
    type=int,
    help=f"Extra attempts after {RETRIED}.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


def _settings(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    found = []
    for value in values:
        name, sep, setting = value.partition("=")
        if not sep or not name.strip() or not setting.strip():
            raise LabError(f"bad --setting {value!r}; write NAME=VALUE, e.g. lock_timeout=2s")
        found.append((name.strip(), setting.strip()))
    return tuple(found)


settings_option = click.option(
    "--setting",
    "settings",
    multiple=True,
    callback=_settings,
    help="A session setting for every session, NAME=VALUE (repeatable), e.g."
    " innodb_snapshot_isolation=ON on MariaDB: what it changes, and what it does not.",
)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--database-url",
    "database_urls",
    multiple=True,
    help="postgresql://USER[:PASSWORD]@HOST[:PORT]/DB or mysql://USER[:PASSWORD]@HOST[:PORT]/"
    f" (env REDPACKET_DATABASE_URL); {SEVERAL_SERVERS} take several, side by side.",
)
@click.option(
    "--backend",
    envvar="REDPACKET_BACKEND",
    default="auto",
    show_default=True,
    help=f"Where the server comes from: {'|'.join(BACKENDS)} (env REDPACKET_BACKEND).",
)
@click.option(
    "--lab-database",
    envvar="REDPACKET_LAB_DATABASE",
    default=DEFAULT_LAB_DATABASE,
    show_default=True,
    help="The database the lab creates and owns on that server.",
)
@click.version_option(package_name="redpacket")
@click.pass_context
def cli(
    ctx: click.Context, database_urls: tuple[str, ...], backend: str, lab_database: str
) -> None:
    """Reproduce, explain, stress and fix the duplicate red-packet grant."""
    problem = lab_name_problem(lab_database)
    if problem is not None:
        raise LabError(f"--lab-database: {problem}")
    if not database_urls and os.environ.get("REDPACKET_DATABASE_URL"):
        database_urls = (os.environ["REDPACKET_DATABASE_URL"],)  # one URL, spaces and all
    ctx.obj = Options(tuple(url for url in database_urls if url), backend, lab_database)
