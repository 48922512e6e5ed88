"""Share the server's connection slots among pytest-xdist workers.

``pytest -n 8`` against a server with ``max_connections = 100`` would otherwise
fail with "too many clients": eight workers each running a 16-worker stress test
at once need more than a hundred connections. Each test holds a share of the
slots while it runs — its ``connections(n)`` mark, or a default by kind — and
waits for others to give theirs back when the server is full. The slots are the
server's ``max_connections``, less the reserved ones and those already in use
outside the test run, counted once when the run starts; a test that alone needs
more is skipped with the reason. Without xdist there is one test at a time and
nothing to share.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from redpacket.database.backends import Server
from redpacket.database.connect import connect

LIGHT = 8  # a test's own connections, a scheduler's sessions and observer, a CLI run
STRESS = 24  # 16 stress workers, their checker and fault injector, and the light ones
WAIT_STEP_S = 0.02  # how often a waiting test looks for free slots (not a race's timing)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "connections(n): the test holds up to n server connections at once"
    )


def _free_slots(server: Server) -> int:
    with connect(server.url) as conn:
        row = conn.execute(
            "SELECT current_setting('max_connections')::int"
            " - current_setting('superuser_reserved_connections')::int"
            " - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
            "    AND application_name NOT LIKE 'redpacket%%' AND pid <> pg_backend_pid())"
        ).fetchone()
    assert row is not None
    return int(str(row[0]))


class Slots:
    """A counting semaphore over a JSON file, kept consistent by ``flock``."""

    def __init__(self, path: Path, total: int) -> None:
        self.path = path
        with self._locked() as state:
            state.setdefault("total", total)
            state["total"] = min(state["total"], total)
            self.total = int(state["total"])

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, int]]:
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = json.loads(self.path.read_text()) if self.path.exists() else {}
                yield state
                self.path.write_text(json.dumps(state))
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def hold(self, count: int) -> Iterator[None]:
        while True:
            with self._locked() as state:
                used = state.get("used", 0)
                if used + count <= self.total:
                    state["used"] = used + count
                    break
            time.sleep(WAIT_STEP_S)
        try:
            yield
        finally:
            with self._locked() as state:
                state["used"] = state.get("used", 0) - count


@pytest.fixture(scope="session")
def connection_slots(
    request: pytest.FixtureRequest, server: Server, tmp_path_factory: pytest.TempPathFactory
) -> Slots | None:
    workerinput = getattr(request.config, "workerinput", None)
    if workerinput is None:
        return None
    shared = tmp_path_factory.getbasetemp().parent / f"slots-{workerinput['testrunuid']}.json"
    return Slots(shared, _free_slots(server))


@pytest.fixture(autouse=True)
def _share_connections(request: pytest.FixtureRequest) -> Iterator[None]:
    if "server" not in request.fixturenames and "lab" not in request.fixturenames:
        yield  # a test that never reaches the server holds no slot
        return
    slots: Slots | None = request.getfixturevalue("connection_slots")
    if slots is None:
        yield
        return
    mark = request.node.get_closest_marker("connections")
    stress = request.node.get_closest_marker("stress") is not None
    count = int(mark.args[0]) if mark else STRESS if stress else LIGHT
    if count > slots.total:
        pytest.skip(
            f"needs {count} server connections; the server has {slots.total} free"
            f" for {os.environ.get('PYTEST_XDIST_WORKER_COUNT', '?')} test workers"
        )
    with slots.hold(count):
        yield


@pytest.fixture(params=["c", "psycopg"])
def pipe_wire(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs the test on each wire of the loop engine (``stress.pipes``) that is built here."""
    from redpacket.stress import pipes

    wire = str(request.param)
    if wire == "c" and pipes._c_pipe() is None:
        pytest.skip("the C wire is not built here")
    monkeypatch.setenv(pipes.ENV, wire)
    return wire
