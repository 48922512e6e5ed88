"""The pytest plugin (entry point ``pytest11``, name ``redpacket``): race your own code.

Installing redpacket makes the ``race`` fixture available to any test suite. It
races the functions a test gives it on a SQLAlchemy engine: ``redpacket_engine``,
which a project overrides in its conftest to give the engine its code uses, or by
default an engine on ``--redpacket-url`` (or ``REDPACKET_URL``), else on a database
the lab owns (``redpacket_lab_race``) on the lab's server (``REDPACKET_DATABASE_URL``
or ``REDPACKET_BACKEND``, as for the command line). A URL that names no database
(``mysql://root@127.0.0.1:3306/``, the README's own form) names a server: the race
then runs in the lab's own database there, as the command line would, created if
missing and dropped at the end only if this session created it. When a test using ``race``
fails, its report shows the timeline of the last race, in the user's own SQL.

Every pytest run in an environment with redpacket installed loads this module, so
it imports only pytest at load time; the lab comes in with the first ``race``.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from redpacket.errors import LabError
    from redpacket.race.api import Race


# A pool that keeps as many connections as the hammer has workers by default: they are
# opened and warmed before its first round, so no worker spends a round connecting.
POOL: dict[str, Any] = {"pool_size": 16, "max_overflow": 16, "pool_pre_ping": True}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("redpacket", "race your own code (redpacket)")
    group.addoption(
        "--redpacket-url",
        default=None,
        help="postgresql://... or mysql://... for the race fixture (env REDPACKET_URL);"
        " default: a database the lab owns on its default server.",
    )
    group.addoption(
        "--redpacket-step-timeout", type=float, default=30.0,
        help="Seconds a statement may run without the server showing it waiting (default 30).",
    )  # fmt: skip


@pytest.fixture(scope="session")
def redpacket_engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """The engine races watch: override it with the engine your code uses."""
    from sqlalchemy import create_engine

    from redpacket.database.urls import parse_url
    from redpacket.errors import LabError

    raw = request.config.getoption("--redpacket-url") or os.environ.get("REDPACKET_URL")
    try:
        if raw:
            url = parse_url(str(raw))
            if not url.database:
                yield from _labs_own_engine("url", str(raw))
                return
            engine = create_engine(url.sqlalchemy(), **POOL)
            yield engine
            engine.dispose()
            return
        backend = os.environ.get("REDPACKET_BACKEND", "auto")
        yield from _labs_own_engine(backend, os.environ.get("REDPACKET_DATABASE_URL") or None)
    except LabError as exc:
        pytest.fail(f"redpacket: {exc.message}", pytrace=False)


def _labs_own_engine(backend: str, url: str | None) -> Iterator[Engine]:
    """An engine on the lab's race database on that server; dropped at the end only if
    it was created here (a database the lab made in an earlier run stays, as the CLI's)."""
    from sqlalchemy import create_engine

    from redpacket.database import ownership
    from redpacket.database.backends import open_server
    from redpacket.database.lab import Lab

    with open_server(backend, url) as server:
        lab = Lab(server, os.environ.get("REDPACKET_LAB_DATABASE") or "redpacket_lab")
        created = ownership.ensure_database(lab, lab.race_database)
        engine = create_engine(server.url.set(database=lab.race_database).sqlalchemy(), **POOL)
        try:
            yield engine
        finally:
            engine.dispose()
            if created:
                ownership.drop_database(lab, lab.race_database)


@pytest.fixture
def race(request: pytest.FixtureRequest, redpacket_engine: Engine) -> Race:
    """Interleave, explore and hammer your functions on ``redpacket_engine``."""
    from redpacket.race.api import Race

    return Race(
        redpacket_engine,
        step_timeout=request.config.getoption("--redpacket-step-timeout"),
        on_misuse=_fail,
    )


def _fail(error: LabError) -> NoReturn:
    pytest.fail(f"redpacket race: {error.message}", pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report = outcome.get_result()
    chosen: Any = getattr(item, "funcargs", {}).get("race")
    notes = getattr(chosen, "notes", None)
    if report.when == "call" and report.failed and notes:
        report.sections.append(("redpacket race", "\n".join(notes)))
