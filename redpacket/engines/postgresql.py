"""PostgreSQL: snapshots at the first statement, waits from ``pg_blocking_pids``.

- READ COMMITTED: every statement takes a fresh snapshot; a blocked FOR UPDATE or
  UPDATE re-checks the newest row version once released.
- REPEATABLE READ / SERIALIZABLE: the snapshot is taken when the transaction's
  first statement starts (even one that then waits), not at BEGIN; a row changed
  after it cannot be updated or locked (40001); SERIALIZABLE adds SSI.
- Errors are SQLSTATEs; a wait is seen with ``pg_blocking_pids(pid)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL

from redpacket.database.connect import CONNECT_TIMEOUT_S
from redpacket.engines.base import FaultCodes, Read, ServerError
from redpacket.errors import LabError
from redpacket.isolation import Isolation


class PostgreSQL:
    name = "postgresql"
    label = "PostgreSQL"
    schemes: tuple[str, ...] = ("postgresql", "postgres")
    driver = "postgresql+psycopg"
    faults = FaultCodes(
        lock_timeout=("55P03",), statement_timeout=("57014",), deadlock=("40P01",),
        serialization=("40001",),
    )  # fmt: skip
    server_word = "PostgreSQL"  # who did what, in an explanation
    snapshot_rule = (
        "PostgreSQL takes a transaction's snapshot when its first statement starts, not at BEGIN"
    )
    wait_probe = "pg_blocking_pids"

    def check_url(self, url: URL) -> None:
        try:  # what libpq itself would refuse (spaces, unknown options), refused in one line
            psycopg.conninfo.conninfo_to_dict(libpq(url))
        except psycopg.ProgrammingError as exc:
            message = str(exc).replace(str(url.password), "***") if url.password else str(exc)
            raise LabError(f"malformed database URL: {message}") from None

    def server_label(self, version: str) -> str:
        return f"PostgreSQL {version}"

    # -- connections --------------------------------------------------------------------

    def connect(self, url: URL, *, autocommit: bool = True, application: str = "redpacket") -> Any:
        return psycopg.connect(
            libpq(url),
            autocommit=autocommit,
            connect_timeout=CONNECT_TIMEOUT_S,
            application_name=application,
        )

    def session_id(self, conn: Any) -> int:
        return int(conn.info.backend_pid)

    def is_closed(self, conn: Any) -> bool:
        return bool(conn.closed)

    def in_transaction(self, conn: Any) -> bool:
        return bool(conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE)

    def error_of(self, exc: BaseException) -> ServerError | None:
        if not isinstance(exc, psycopg.Error):
            return None
        lines = [line for line in str(exc).splitlines() if line.strip()]
        message = lines[0] if lines else type(exc).__name__
        sqlstate = exc.sqlstate
        lost = sqlstate is None and isinstance(exc, psycopg.OperationalError)
        if sqlstate is not None and sqlstate.startswith(("57P0", "08")):
            lost = True
        return ServerError(sqlstate or "08006", message, sqlstate, None, lost)

    # -- transactions -------------------------------------------------------------------

    def begin(self, level: Isolation) -> tuple[str, ...]:
        return (level.begin_sql,)

    def read_of(self, level: Isolation, statement: str, snapshot_taken: bool) -> Read:
        if level is Isolation.READ_COMMITTED or not snapshot_taken:
            return Read.SNAPSHOT
        return Read.USES_SNAPSHOT

    def paramstyle_sql(self, statement: str) -> str:
        return statement

    # -- seen from the server ------------------------------------------------------------

    def blocked_by(self, observer: Any, session_id: int) -> list[int]:
        row = observer.execute("SELECT pg_blocking_pids(%s)", (session_id,)).fetchone()
        return [int(p) for p in row[0]] if row and row[0] else []

    def cancel(self, observer: Any, session_id: int) -> None:
        observer.execute("SELECT pg_cancel_backend(%s)", (session_id,))

    def kill(self, observer: Any, session_id: int) -> None:
        observer.execute("SELECT pg_terminate_backend(%s)", (session_id,))

    def sessions_in_transaction(self, observer: Any, database: str) -> list[int]:
        rows = observer.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND xact_start IS NOT NULL"
            " AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
        return [int(row[0]) for row in rows]

    def session_settings(
        self, lock_timeout_ms: int | None, statement_timeout_ms: int | None
    ) -> Sequence[str]:
        settings = []
        for name, value in (("lock_timeout", lock_timeout_ms),
                            ("statement_timeout", statement_timeout_ms)):  # fmt: skip
            if value:
                settings.append(
                    sql.SQL("SET {} = {}")
                    .format(sql.Identifier(name), sql.Literal(f"{value}ms"))
                    .as_string(None)
                )
        return settings


def libpq(url: URL) -> str:
    """The URL as libpq takes it (no SQLAlchemy driver suffix), password included."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


ENGINE = PostgreSQL()
