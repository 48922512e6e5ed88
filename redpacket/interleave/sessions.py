"""A session: one connection, driven by one thread, so its statement may block alone.

The scheduler hands a statement to a session and waits a few milliseconds for the
answer; if none comes, the observer asks the server whether the session is
blocked. Explicit BEGIN/COMMIT on an autocommit connection keep every transaction
boundary visible in the timeline. Any engine: the connection is the engine's.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import URL

from redpacket.engines import Engine
from redpacket.engines.base import rows_of
from redpacket.errors import LabError
from redpacket.retry import CONNECTION_LOST


@dataclass(frozen=True)
class StatementResult:
    rows: tuple[tuple[Any, ...], ...] | None  # None when the statement raised
    sqlstate: str | None = None  # the engine's code: a SQLSTATE, or MySQL's error number
    message: str | None = None
    shown: str | None = None  # the code as the server gave it: "1213 (SQLSTATE 40001)"


class Session:
    def __init__(
        self, number: int, engine: Engine, url: URL, settings: tuple[tuple[str, str], ...] = ()
    ) -> None:
        self.number = number
        self.engine = engine
        self.url = url
        self.settings = settings
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"redpacket-T{number}")
        self.reconnect()

    def reconnect(self) -> None:
        """A new connection for a session whose backend died (a retry goes on on it)."""
        self.conn: Any = self.engine.connect(self.url, autocommit=True, application="redpacket")
        self.pid = self.engine.session_id(self.conn)
        cursor = self.conn.cursor()
        try:
            for name, value in self.settings:
                cursor.execute(*self.engine.setting(name, value))
        except Exception as exc:
            error = self.engine.error_of(exc)
            if error is None:
                raise
            raise LabError(
                f"the server refuses the setting {name}={value}: {error.message}"
            ) from None
        finally:
            cursor.close()

    def _execute(
        self, statements: tuple[str, ...], params: dict[str, Any] | None
    ) -> StatementResult:
        cursor = self.conn.cursor()
        try:
            rows: tuple[tuple[Any, ...], ...] = ()
            for statement in statements:
                cursor.execute(statement, params)
                rows = rows_of(cursor)
            return StatementResult(rows)
        except Exception as exc:
            error = self.engine.error_of(exc)
            if error is None:
                raise
            code = CONNECTION_LOST if error.lost else error.code
            return StatementResult(None, code, error.message, error.shown)
        finally:
            with contextlib.suppress(Exception):  # a dead connection's cursor: nothing to close
                cursor.close()

    def submit(
        self, statements: tuple[str, ...], params: dict[str, Any] | None = None
    ) -> Future[StatementResult]:
        return self._thread.submit(self._execute, statements, params)

    def run(self, *statements: str) -> StatementResult:
        return self.submit(statements).result()

    def clean(self) -> None:
        """Leave no transaction open between runs, and a live connection for the next."""
        if self.engine.is_closed(self.conn):
            with contextlib.suppress(Exception):
                self.conn.close()
            self.reconnect()
        else:
            self.run(*self.engine.session_reset)

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        self.conn.close()
