"""The pytest plugin (entry point ``pytest11``, name ``redpacket``): race your own code.

Installing redpacket makes the ``race`` fixture available to any test suite. It
races the functions a test gives it on a SQLAlchemy engine: ``redpacket_engine``,
which a project overrides in its conftest to give the engine its code uses, or by
default an engine on ``--redpacket-url`` (or ``REDPACKET_URL``), else on a database
the lab owns (``redpacket_lab_race``) on the lab's server (``REDPACKET_DATABASE_URL``
or ``REDPACKET_BACKEND``, as for the command line). When a test using ``race``
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
    from sqlalchemy.pool import NullPool

    from redpacket.database.urls import parse_url
    from redpacket.errors import LabError

    raw = request.config.getoption("--redpacket-url") or os.environ.get("REDPACKET_URL")
    try:
        if raw:
            url = parse_url(str(raw))
            url_args = url
            engine = create_engine(url_args, poolclass=NullPool)
            yield engine
            engine.dispose()
            return
        yield from _labs_own_engine()
    except LabError as exc:
        pytest.fail(f"redpacket: {exc.message}", pytrace=False)


def _labs_own_engine() -> Iterator[Engine]:
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from redpacket.database.backends import open_server
    from redpacket.database.lab import Lab

    backend = os.environ.get("REDPACKET_BACKEND", "auto")
    with open_server(backend, os.environ.get("REDPACKET_DATABASE_URL") or None) as server:
        lab = Lab(server, os.environ.get("REDPACKET_LAB_DATABASE") or "redpacket_lab")
        engine = create_engine(lab.own_database_url(lab.race_database), poolclass=NullPool)
        yield engine
        engine.dispose()


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
