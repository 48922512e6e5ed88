"""Where the tests' MySQL-family server comes from, as fix_db does for PostgreSQL.

``--test-mysql-dsn`` or ``REDPACKET_TEST_MYSQL_DSN`` first (CI: the machine's
MariaDB 10.11), else a MariaDB container when Docker answers, else a private
mariadbd started from the machine's binaries (each xdist worker its own); the
MySQL tests skip, saying why, where none can be had.

InnoDB names a lock's holder through information_schema tables that are refreshed
only after a tenth of a second without readers: two schedulers reading them in
turn keep them stale for each other, and the lab then deduces the holder only
after a second of waiting. So a test that watches InnoDB's waits holds
``innodb_watch``, a lock shared by every xdist worker, to stay fast.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
from collections.abc import Iterator

import pytest

from redpacket.database import migrate
from redpacket.database.backends import Server, docker_problem, open_server
from redpacket.database.connect import connect
from redpacket.database.lab import Lab
from redpacket.database.mysql_servers import local_problem
from redpacket.errors import LabError


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--test-mysql-dsn",
        metavar="DSN",
        default=os.environ.get("REDPACKET_TEST_MYSQL_DSN"),
        help="mysql://USER@HOST:PORT/ of a MariaDB or MySQL the tests may create databases on"
        " (default: env REDPACKET_TEST_MYSQL_DSN, else Docker, else a private mariadbd;"
        " without any, the MySQL tests are skipped)",
    )


def _choose_mysql_backend(dsn: str | None) -> tuple[str, str]:
    """(backend, why not) the way fix_db chooses PostgreSQL: a URL, Docker, a private server."""
    if dsn:
        return "url", ""
    docker = docker_problem()
    if docker is None:
        return "mysql-docker", ""
    local = local_problem()
    if local is None:
        return "mysql-local", ""
    return "", f"no REDPACKET_TEST_MYSQL_DSN; mysql-docker: {docker}; mysql-local: {local}"


@pytest.fixture(scope="session")
def mysql_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    if importlib.util.find_spec("pymysql") is None:
        pytest.skip("PyMySQL, a dependency, is not installed (pip install PyMySQL)")
    dsn = request.config.getoption("--test-mysql-dsn")
    backend, why_not = _choose_mysql_backend(dsn)
    if not backend:
        pytest.skip(f"no MySQL-family server: {why_not}")
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(open_server(backend, dsn))
            with connect(server.url, autocommit=True) as conn:
                cursor = conn.cursor()
                cursor.execute("SELECT 1")
        except LabError as exc:
            pytest.skip(f"the MySQL-family server is not reachable: {exc}")
        yield server


@pytest.fixture(scope="session")
def mysql_lab(mysql_server: Server, worker_id_suffix: str) -> Iterator[Lab]:
    """This worker's own lab databases on the MySQL-family server, migrated."""
    lab = Lab(mysql_server, f"redpacket_test_{worker_id_suffix}")
    lab.drop()
    migrate.migrate(lab)
    yield lab
    lab.drop()


@pytest.fixture(scope="module")
def innodb_watch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """While held, no other test worker reads InnoDB's lock-wait tables."""
    path = tmp_path_factory.getbasetemp().parent / "innodb-watch.lock"
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture
def fresh_mysql_lab(mysql_lab: Lab) -> Lab:
    mysql_lab.reset(10)
    return mysql_lab
