"""The loop engine's two wires (the C one and psycopg's) give the same answers.

Each scenario runs on a real server once per wire, and the two transcripts must be
equal; each also asserts what the server really said, so two wires wrong alike fail
too. Where libpq's headers are on this machine (as in CI), the C wire must have been
built: a build that silently fell back would leave the fast path untested.
"""

from __future__ import annotations

import runpy
import select
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import pq

from redpacket.errors import LabError
from redpacket.stress import pipes
from redpacket.stress.pipes import LOST, Pipe, PsycopgPipe, Summary
from redpacket.stress.statements import COMMIT, STEP, Items, PipeError

TUPLES_OK = int(pq.ExecStatus.TUPLES_OK)
COMMAND_OK = int(pq.ExecStatus.COMMAND_OK)
FATAL_ERROR = int(pq.ExecStatus.FATAL_ERROR)
SYNC = int(pq.ExecStatus.PIPELINE_SYNC)
ABORTED = int(pq.ExecStatus.PIPELINE_ABORTED)
IDLE, INTRANS, INERROR = (int(pq.TransactionStatus[s]) for s in ("IDLE", "INTRANS", "INERROR"))


def _libpq_headers_here() -> bool:
    """setup.py's own test of whether it can build the C wire."""
    found = runpy.run_path(str(Path(__file__).resolve().parent.parent / "setup.py"))
    return found["_libpq_paths"]() is not None


def wires() -> list[Callable[[bytes], Pipe]]:
    found: list[Callable[[bytes], Pipe]] = [PsycopgPipe]
    c_pipe = pipes._c_pipe()
    if c_pipe is not None:
        found.append(c_pipe)
    return found


def test_the_c_wire_is_built_wherever_libpq_headers_are() -> None:
    if not _libpq_headers_here():
        pytest.skip("no libpq headers here: the loop runs on psycopg's wire")
    assert pipes._c_pipe() is not None, "libpq-fe.h is here, but _libpq_pipe was not built"


def test_the_wire_is_chosen_by_redpacket_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pipes.ENV, "psycopg")
    assert pipes.pipe_class() is PsycopgPipe
    monkeypatch.setenv(pipes.ENV, "carrier pigeon")
    with pytest.raises(LabError, match="REDPACKET_PIPE is 'c' or 'psycopg'"):
        pipes.pipe_class()
    monkeypatch.delenv(pipes.ENV)
    assert pipes.pipe_class() is (pipes._c_pipe() or PsycopgPipe)


@pytest.fixture
def conninfo(dsn: str) -> bytes:
    return dsn.encode()


def _item(kind: int, name: bytes, *params: str) -> tuple[int, int, bytes, tuple[str, ...]]:
    return (kind, 0, name, params)


def _read_batch(pipe: Pipe) -> list[Summary]:
    """Every result up to the batch's Sync, waiting on the socket (not on a clock)."""
    got: list[Summary] = []
    while not got or got[-1][0] != SYNC:
        select.select([pipe.socket], [], [], 5.0)
        got += pipe.read()
    return got


def _transcript(make: Callable[[bytes], Pipe], conninfo: bytes) -> list[Any]:
    pipe = make(conninfo)
    seen: list[Any] = []
    try:
        for name, sql in [
            (b"rows", b"SELECT $1::bigint AS n, NULL::text AS nothing, 'x' || $2 AS text"),
            (b"none", b"SELECT 1 WHERE false"),
            (b"divide", b"SELECT 1 / $1::int"),
            (b"begin", b"BEGIN"),
            (b"commit", b"COMMIT"),
        ]:
            seen.append(pipe.prepare(name, sql))
        seen.append(pipe.prepare(b"broken", b"SELEC 1"))
        seen.append(pipe.set_config(b"statement_timeout", b"5s"))
        seen.append(pipe.set_config(b"statement_timeout", b"five seconds"))
        pipe.start_pipeline()
        # bytes go as they are, an int as its digits (the smallest bigint: the sign too)
        context = {"n": -(2**63), "suffix": "é".encode(), "zero": 0}
        batch: Items = (
            _item(STEP, b"begin"),
            _item(STEP, b"rows", "n", "suffix"),
            _item(STEP, b"none"),
        )
        seen.append(pipe.send(batch, context))
        seen.append(_read_batch(pipe))
        failing: Items = (_item(STEP, b"divide", "zero"), _item(STEP, b"rows", "n", "suffix"))
        seen.append(pipe.send(failing, context))
        seen.append(_read_batch(pipe))
        seen.append(pipe.send((_item(COMMIT, b"commit"),), context))
        seen.append(_read_batch(pipe))
        with pytest.raises(KeyError):
            pipe.send((_item(STEP, b"rows", "n", "missing"),), context)
        seen.append(pipe.read())  # nothing more came
    finally:
        pipe.close()
    with pytest.raises(PipeError):
        pipe.read()
    return seen


@pytest.mark.parametrize("make", wires(), ids=lambda make: make.__module__)
def test_a_wire_reads_what_the_server_said(make: Callable[[bytes], Pipe], conninfo: bytes) -> None:
    seen = _transcript(make, conninfo)
    prepared, broken, timeout_set, timeout_refused = seen[:5], seen[5], seen[6], seen[7]
    assert all(ok for ok, *_ in prepared)
    assert broken[:2] == (False, "42601")
    assert "syntax error" in broken[2]
    assert timeout_set is None
    assert "statement_timeout" in str(timeout_refused)
    assert seen[8] == 0  # the batch fitted the socket's buffer
    assert seen[9] == [
        (COMMAND_OK, None, None, 0),
        (TUPLES_OK, (b"-9223372036854775808", None, "xé".encode()), None, 0),
        (TUPLES_OK, None, None, 0),  # no row
        (SYNC, None, None, INTRANS),  # a Sync says the transaction status after it
    ]
    assert seen[11] == [(FATAL_ERROR, None, "22012", 0), (ABORTED, None, None, 0),
                        (SYNC, None, None, INERROR)]  # fmt: skip
    # COMMIT of an aborted transaction: the server answers ROLLBACK, the session is idle
    assert seen[13] == [(COMMAND_OK, None, None, 0), (SYNC, None, None, IDLE)]
    assert seen[14] == []


def test_both_wires_give_the_same_transcript(conninfo: bytes) -> None:
    transcripts = [_transcript(make, conninfo) for make in wires()]
    if len(transcripts) < 2:
        pytest.skip("only psycopg's wire is built here")
    assert transcripts[0] == transcripts[1]


def _terminated(
    make: Callable[[bytes], Pipe], conninfo: bytes, dsn: str, in_flight: bool
) -> list[Any]:
    """A session terminated by the server (idle, or in a statement): reading it, to the end."""
    pipe = make(conninfo)
    try:
        assert pipe.prepare(b"pid", b"SELECT pg_backend_pid()")[0]
        assert pipe.prepare(b"sleep", b"SELECT pg_sleep(30)")[0]
        pipe.start_pipeline()
        pipe.send(((STEP, 0, b"pid", ()),), {})
        rows = _read_batch(pipe)
        pid = int(str(rows[0]).split("'")[1])  # (TUPLES_OK, (b'1234',), None, 0)
        if in_flight:
            pipe.send(((STEP, 0, b"sleep", ()),), {})
        with psycopg.connect(dsn, autocommit=True) as killer:
            killer.execute("SELECT pg_terminate_backend(%s)", [pid])
        got: list[Any] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (got and got[-1][0] in ("lost", LOST)):
            select.select([pipe.socket], [], [], 1.0)
            try:
                got += pipe.read()
            except PipeError as exc:
                got.append(("lost", str(exc)))
        return got
    finally:
        pipe.close()


@pytest.mark.parametrize("make", wires(), ids=lambda make: make.__module__)
def test_a_terminated_session_is_a_lost_connection(
    make: Callable[[bytes], Pipe], conninfo: bytes, dsn: str
) -> None:
    # libpq reads the FATAL message and the end of the stream in one go, and says the
    # latter: the worker's "connection lost" (retried on a new one), on either wire
    got = _terminated(make, conninfo, dsn, in_flight=False)
    assert len(got) == 1
    assert got[0][0] == "lost"
    assert "server closed the connection unexpectedly" in got[0][1]


@pytest.mark.parametrize("make", wires(), ids=lambda make: make.__module__)
def test_a_refused_connection_is_a_pipe_error(make: Callable[[bytes], Pipe], dsn: str) -> None:
    with pytest.raises(PipeError, match="redpacket_no_such_db"):
        make(f"{dsn} dbname=redpacket_no_such_db".encode())


@pytest.mark.parametrize("make", wires(), ids=lambda make: make.__module__)
def test_a_session_terminated_in_a_statement(
    make: Callable[[bytes], Pipe], conninfo: bytes, dsn: str
) -> None:
    """The statement's result is the server's FATAL error (the worker counts 57P01 and
    drops the session), then the end of the stream."""
    got = _terminated(make, conninfo, dsn, in_flight=True)
    assert got[0] == (FATAL_ERROR, None, "57P01", 1)
    assert len(got) == 2
    assert got[1][0] in ("lost", LOST)
