"""A session: one connection, driven by one thread, so its statement may block alone.

The scheduler hands a statement to a session and waits a few milliseconds for the
answer; if none comes, the observer asks the server whether the session is
blocked. Explicit ``BEGIN``/``COMMIT`` on an autocommit connection keep every
transaction boundary visible in the timeline.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from redpacket.database.connect import CONNECT_TIMEOUT_S
from redpacket.retry import CONNECTION_LOST


@dataclass(frozen=True)
class StatementResult:
    rows: tuple[tuple[Any, ...], ...] | None  # None when the statement raised
    sqlstate: str | None = None
    message: str | None = None


def _execute(
    conn: psycopg.Connection[tuple[Any, ...]], sql: str, params: dict[str, Any] | None
) -> StatementResult:
    try:
        cursor = conn.execute(sql, params)
        rows = tuple(tuple(row) for row in cursor.fetchall()) if cursor.description else ()
        return StatementResult(rows)
    except psycopg.Error as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        # A session that died says so without a SQLSTATE (the server cannot send one).
        sqlstate = exc.sqlstate or (CONNECTION_LOST if conn.closed else None)
        return StatementResult(None, sqlstate, lines[0] if lines else type(exc).__name__)


class Session:
    def __init__(self, number: int, conninfo: str) -> None:
        self.number = number
        self.conninfo = conninfo
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"redpacket-T{number}")
        self.schema: str | None = None
        self.reconnect()

    def reconnect(self) -> None:
        """A new connection for a session whose backend died (a retry goes on on it)."""
        self.conn: psycopg.Connection[tuple[Any, ...]] = psycopg.connect(
            self.conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
        )
        self.pid = self.conn.info.backend_pid
        if self.schema is not None:
            self.use_schema(self.schema)

    def use_schema(self, schema: str) -> None:
        """Work in ``schema`` from now on, on this connection and any that replaces it."""
        self.schema = schema
        self.run(
            sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)).as_string(self.conn)
        )

    def submit(self, sql: str, params: dict[str, Any] | None = None) -> Future[StatementResult]:
        return self._thread.submit(_execute, self.conn, sql, params)

    def run(self, sql: str, params: dict[str, Any] | None = None) -> StatementResult:
        return self.submit(sql, params).result()

    def clean(self) -> None:
        """Leave no transaction open between runs, and a live connection for the next."""
        if self.conn.closed:
            self.conn.close()
            self.reconnect()
        elif self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            self.run("ROLLBACK")

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        self.conn.close()
