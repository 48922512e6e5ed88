"""The pgbench anchor is read honestly: a run that is not clean gives no ratio.

These run the real pgbench (Debian's postgresql-client ships it) for a second each.
"""

from __future__ import annotations

import glob
import subprocess
from pathlib import Path

import psycopg
import pytest

from benchmarks.vs_pgbench import PgbenchOutputError, pgbench_command, read_tps, runs_of_cell
from redpacket.database.lab import Lab, Schema
from redpacket.engines.postgresql import conninfo

pytestmark = pytest.mark.skipif(
    not glob.glob("/usr/lib/postgresql/*/bin/pgbench"), reason="pgbench is not installed"
)


def pgbench(lab: Lab, script: Path, clients: int, *extra: str, threads: int = 2) -> tuple[str, str]:
    command, env = pgbench_command(lab, script, clients, seconds=1, threads=threads)
    command[-1:-1] = extra  # flags go before the positional database
    env["PGOPTIONS"] = f"-c search_path={Schema.UNCONSTRAINED.value}"
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    return done.stdout, done.stderr


def test_the_command_names_the_database_as_pgbench_expects(lab: Lab, tmp_path: Path) -> None:
    command, _ = pgbench_command(lab, tmp_path / "x.sql", 8, seconds=1)
    assert "-d" not in command  # -d is --debug
    assert command[-1] == lab.name
    assert command[command.index("-c") + 1] == "8"


def test_pgbench_runs_as_many_threads_as_the_harness_has_processes(
    lab: Lab, tmp_path: Path
) -> None:
    """Like for like: P harness processes beside ``-j P``, never more threads than clients
    (pgbench refuses that, so a 1-client cell must still run)."""
    script = tmp_path / "select.sql"
    script.write_text("SELECT 1;\n")
    for clients, threads, expected in ((8, 1, "1"), (8, 2, "2"), (1, 2, "1")):
        command, _ = pgbench_command(lab, script, clients, seconds=1, threads=threads)
        assert command[command.index("-j") + 1] == expected
    out, err = pgbench(lab, script, 1, threads=2)
    assert read_tps(out, err, clients=1) > 0
    assert runs_of_cell(1, [1, 2]) == ("pgbench-1", "pipeline-1", "harness-1")
    assert runs_of_cell(32, [2, 1]) == (
        "pgbench-1", "pipeline-1", "harness-1", "pgbench-2", "pipeline-2", "harness-2",
    )  # fmt: skip


def test_a_clean_run_gives_its_tps(lab: Lab, tmp_path: Path) -> None:
    script = tmp_path / "select.sql"
    script.write_text("SELECT 1;\n")
    out, err = pgbench(lab, script, 2)
    assert read_tps(out, err, clients=2) > 0


def test_debug_output_is_refused(lab: Lab, tmp_path: Path) -> None:
    script = tmp_path / "select.sql"
    script.write_text("SELECT 1;\n")
    out, err = pgbench(lab, script, 1, "-d")
    with pytest.raises(PgbenchOutputError, match="debug output"):
        read_tps(out, err, clients=1)


def test_another_client_count_than_asked_is_refused(lab: Lab, tmp_path: Path) -> None:
    script = tmp_path / "select.sql"
    script.write_text("SELECT 1;\n")
    out, err = pgbench(lab, script, 1)
    with pytest.raises(PgbenchOutputError, match="ran 1 clients"):
        read_tps(out, err, clients=8)


def test_failed_transactions_are_refused(fresh_lab: Lab, tmp_path: Path) -> None:
    script = tmp_path / "conflict.sql"
    script.write_text(
        "BEGIN ISOLATION LEVEL REPEATABLE READ;\n"
        "UPDATE orders SET version = version + 1 WHERE id = 1;\n"
        "COMMIT;\n"
    )
    out, err = pgbench(fresh_lab, script, 4)
    with pytest.raises(PgbenchOutputError, match=r"failed transactions: [1-9]"):
        read_tps(out, err, clients=4)
    with psycopg.connect(conninfo(fresh_lab.url_of(Schema.UNCONSTRAINED))) as conn:
        row = conn.execute("SELECT version FROM orders WHERE id = 1").fetchone()
    assert row is not None
    assert int(str(row[0])) > 0  # the run really ran


def test_an_aborted_run_is_refused(lab: Lab, tmp_path: Path) -> None:
    script = tmp_path / "broken.sql"
    script.write_text("SELECT no_such_column FROM orders;\n")
    out, err = pgbench(lab, script, 1)
    with pytest.raises(PgbenchOutputError):
        read_tps(out, err, clients=1)


def test_no_tps_line_is_refused() -> None:
    with pytest.raises(PgbenchOutputError, match="failed transactions: no such line"):
        read_tps("pgbench (15)\nnumber of clients: 1\n", "", clients=1)
