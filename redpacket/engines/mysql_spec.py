"""MySQL and MariaDB sessions for spec files, on mysqlclient's own C API.

``send_query`` returns at once and the socket tells when the reply starts, so a
step is driven as isolationtester drives a libpq connection: send, poll for 10 ms,
then ask the server (``MySQL.waits_among``) whether the session waits for a lock
another session of the spec holds. Values arrive as the server's text, as libpq's
do. MySQL has no notices (warnings stay in SHOW WARNINGS) and no NOTIFY.
"""

from __future__ import annotations

import select
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from redpacket.errors import LabError
from redpacket.specs.events import Failure, Result, Table
from redpacket.specs.wire import Notification, SpecSession, WireError


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def _failure(exc: Exception) -> Failure:
    """MySQL's error as isolationtester shows PostgreSQL's: "ERROR:  message"; the
    number's SQLSTATE kept for --json."""
    from redpacket.engines.mysql import SQLSTATES

    args = exc.args
    number = int(args[0]) if args and isinstance(args[0], int) else 0
    message = str(args[1]) if len(args) > 1 else str(exc)
    return Failure("ERROR", message, SQLSTATES.get(number), str(number) if number else None)


class MySQLSession:
    def __init__(self, options: dict[str, Any]) -> None:
        from MySQLdb import _mysql
        from MySQLdb.constants import CLIENT

        flags = CLIENT.MULTI_STATEMENTS | CLIENT.MULTI_RESULTS
        try:
            self.conn = _mysql.connect(**options, client_flag=flags)
        except _mysql.MySQLError as exc:
            raise LabError(f"cannot connect a spec session: {_failure(exc).message}") from None
        self.conn.autocommit(True)
        self.pid = int(self.conn.thread_id())
        self._error = ""
        self._pending: Failure | None = None
        self._received = True
        self._lost = False
        self._changed = (0, 0)
        self.killer: Callable[[], None] | None = None

    def send(self, sql: str) -> None:
        from MySQLdb import _mysql

        try:
            self.conn.send_query(sql.encode("utf-8", "surrogateescape"))
        except _mysql.MySQLError as exc:
            self._lost = True
            raise WireError(_failure(exc).message) from None
        self._received = False

    def busy(self) -> bool:
        return not self._received

    def readable(self, timeout: float | None) -> bool:
        ready, _, _ = select.select([self.conn.fileno()], [], [], timeout)
        return bool(ready)

    def consume(self) -> None:
        """Read the reply if it has started to arrive; never wait for one."""
        from MySQLdb import _mysql

        if self._received or not self.readable(0):
            return
        try:
            self.conn.read_query_result()
        except _mysql.MySQLError as exc:
            self._pending = self._noted(_failure(exc))
        self._received = True

    def _table(self) -> Table | None:
        stored = self.conn.store_result()
        if stored is None:
            self._changed = (max(int(self.conn.affected_rows()), 0), int(self.conn.insert_id()))
            return None
        columns = tuple(_text(field[0]) for field in stored.describe())
        rows = tuple(
            tuple(None if value is None else _text(value) for value in row)
            for row in stored.fetch_row(maxrows=0)
        )
        return Table(columns, rows)

    def results(self) -> Iterator[Result]:
        from MySQLdb import _mysql

        if not self._received:
            self.readable(None)  # wait: the caller wants the results
            self.consume()
        if self._pending is not None:
            failure, self._pending = self._pending, None
            yield failure
            return
        while True:
            try:  # rows are read here: an error can come after the columns (a deadlock)
                table = self._table()
            except _mysql.MySQLError as exc:
                yield self._noted(_failure(exc))
                return
            if table is not None:
                yield table
            try:
                if self.conn.next_result() != 0:
                    return
            except _mysql.MySQLError as exc:
                yield self._noted(_failure(exc))
                return

    def _noted(self, failure: Failure) -> Failure:
        from redpacket.engines.mysql import LOST

        if failure.code is None or int(failure.code) in LOST:
            self._lost = True
        return failure

    def changed(self) -> tuple[int, int]:
        return self._changed

    def lost(self) -> bool:
        return self._lost or not self.conn.open

    def notifications(self) -> list[Notification]:
        return []

    def execute(self, sql: str) -> Result | None:
        """The last result, as libpq's PQexec gives it; the first error ends the block."""
        self.send(sql)
        last: Result | None = None
        for result in self.results():
            last = result
            if isinstance(result, Failure):
                self._error = f"{result.severity}:  {result.message}\n"
        return last

    def last_error(self) -> str:
        return self._error

    def cancel(self) -> bool:
        if self.killer is None:
            return False
        self.killer()  # KILL QUERY from the observer: the client API has no cancel
        return True

    def close(self) -> None:
        if self.conn.open:
            self.conn.close()


class MySQLSpecServer:
    has_notices = False

    def __init__(self, engine: Any, url: Any, options: dict[str, Any]) -> None:
        self.engine, self.options = engine, options
        self.control = MySQLSession(options)
        try:
            self.observer = engine.connect(url, autocommit=True)
        except BaseException:
            self.control.close()
            raise
        self._pids: set[int] = set()

    def version(self) -> str:
        return str(self.control.conn.get_server_info())

    def open(self, name: str, on_notice: Callable[[str], None] | None) -> MySQLSession:
        del name, on_notice  # no application name, no notices on MySQL
        session = MySQLSession(self.options)
        session.killer = lambda: self.engine.cancel(self.observer, session.pid)
        return session

    def watch(self, sessions: Sequence[SpecSession]) -> None:
        self._pids = {session.pid for session in sessions}

    def is_blocked(self, session: SpecSession) -> bool:
        return bool(self.engine.waits_among(self.observer, session.pid, self._pids))

    def close(self) -> None:
        self.control.close()
        self.observer.close()
