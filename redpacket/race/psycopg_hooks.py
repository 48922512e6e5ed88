"""Racing code that speaks psycopg 3 directly: a connection whose statements pause.

``race.psycopg_connect()`` returns a ``psycopg.Connection`` like any other, except
that its cursors report each ``execute`` (and the connection each ``commit``) to
the race running now, as SQLAlchemy's events do for an engine; outside a race it
behaves as a plain connection. Hand it to the code under test the way that code
gets its connections (a factory argument, a fixture).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from redpacket.race.calls import active


def _text(query: Any, conn: psycopg.Connection[Any]) -> str:
    if isinstance(query, sql.Composable):
        return query.as_string(conn)
    if isinstance(query, bytes):
        return query.decode("utf-8", "replace")
    return str(query)


class RaceCursor(psycopg.Cursor[Any]):
    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> RaceCursor:
        calls = active()
        if calls is None:
            super().execute(query, params, **kwargs)
            return self
        calls.starts(self.connection.info.backend_pid, _text(query, self.connection), params)
        try:
            super().execute(query, params, **kwargs)
        except BaseException as exc:
            calls.ends(exc)
            raise
        calls.ends(None)
        return self


class RaceConnection(psycopg.Connection[Any]):
    def commit(self) -> None:
        calls = active()
        if calls is None or self.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            super().commit()  # outside a race, or nothing to commit: nothing goes out
            return
        calls.starts(self.info.backend_pid, "COMMIT", None)
        try:
            super().commit()
        except BaseException as exc:
            calls.ends(exc)
            raise
        calls.ends(None)


def connect(conninfo: str, **kwargs: Any) -> RaceConnection:
    return RaceConnection.connect(conninfo, cursor_factory=RaceCursor, **kwargs)
