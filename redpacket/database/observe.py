"""Seeing waits from the server's side, on a separate observer connection.

A session blocked on a lock cannot tell anyone it is waiting; PostgreSQL can:
``pg_blocking_pids(pid)`` lists the backends holding what it waits for. The lab
polls that (every few milliseconds, with a deadline) instead of sleeping and
hoping the other session got there.
"""

from __future__ import annotations

import time

import psycopg

POLL_INTERVAL_S = 0.002


def blocking_pids(observer: psycopg.Connection[tuple[object, ...]], pid: int) -> list[int]:
    row = observer.execute("SELECT pg_blocking_pids(%s)", (pid,)).fetchone()
    return [int(p) for p in row[0]] if row and row[0] else []  # type: ignore[attr-defined]


def waiters_on(observer: psycopg.Connection[tuple[object, ...]], holder_pid: int) -> list[int]:
    """Backends currently waiting on something ``holder_pid`` holds."""
    rows = observer.execute(
        "SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", (holder_pid,)
    ).fetchall()
    return [int(str(row[0])) for row in rows]


def wait_for_waiter(
    observer: psycopg.Connection[tuple[object, ...]], holder_pid: int, timeout_s: float = 10.0
) -> list[int]:
    """Return the backends waiting on ``holder_pid`` as soon as one waits."""
    deadline = time.monotonic() + timeout_s
    while True:
        waiters = waiters_on(observer, holder_pid)
        if waiters:
            return waiters
        if time.monotonic() > deadline:
            raise TimeoutError(f"nobody waited on backend {holder_pid} within {timeout_s} s")
        time.sleep(POLL_INTERVAL_S)
