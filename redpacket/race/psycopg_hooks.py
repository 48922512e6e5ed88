"""Racing code that speaks psycopg 3 directly: a connection whose statements pause.

``race.psycopg_connect()`` returns a ``psycopg.Connection`` like any other, except
that its cursors report each ``execute`` (and the connection each ``commit``) to
the race running now, as SQLAlchemy's events do for an engine; outside a race it
behaves as a plain connection. Hand it to the code under test the way that code
gets its connections (a factory argument, a fixture).
"""

from __future__ import annotations

from collections.abc import Callable
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


def _timed(calls: Any, session_id: int, text: str, params: Any, run: Callable[[], object]) -> None:
    calls.starts(session_id, text, params)
    try:
        run()
    except BaseException as exc:
        calls.ends(exc)
        raise
    calls.ends(None)


class RaceCursor(psycopg.Cursor[Any]):
    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> RaceCursor:
        calls = active()
        if calls is None:
            super().execute(query, params, **kwargs)
        else:
            execute = super().execute
            pid, text = self.connection.info.backend_pid, _text(query, self.connection)
            _timed(calls, pid, text, params, lambda: execute(query, params, **kwargs))
        return self

    def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:
        calls = active()
        if calls is None:
            super().executemany(query, params_seq, **kwargs)
            return
        params = list(params_seq)  # one statement boundary for the whole batch
        _timed(calls, self.connection.info.backend_pid, _text(query, self.connection),
               params[0] if params else None,
               lambda: super(RaceCursor, self).executemany(query, params, **kwargs))  # fmt: skip


class RaceConnection(psycopg.Connection[Any]):
    """COMMIT and ROLLBACK through ``commit()`` and ``rollback()`` are statements of the
    race; ``with conn.transaction():`` ends its transaction inside psycopg, unseen."""

    def _ending(self, word: str, run: Callable[[], None]) -> None:
        calls = active()
        if calls is None or self.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            run()  # outside a race, or nothing to end: nothing goes out
            return
        _timed(calls, self.info.backend_pid, word, None, run)

    def commit(self) -> None:
        self._ending("COMMIT", super().commit)

    def rollback(self) -> None:
        self._ending("ROLLBACK", super().rollback)


def connect(conninfo: str, **kwargs: Any) -> RaceConnection:
    return RaceConnection.connect(conninfo, cursor_factory=RaceCursor, **kwargs)
