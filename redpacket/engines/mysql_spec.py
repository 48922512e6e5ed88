"""MySQL and MariaDB sessions for spec files, on the lab's own wire (``mysql_wire``).

A query is sent and returns at once, and the socket tells when the reply starts, so
a step is driven as isolationtester drives a libpq connection: send, poll for 10 ms,
then ask the server (``MySQL.waits_among``) whether the session waits for a lock
another session of the spec holds. Values arrive as the server's text, as libpq's
do. MySQL has no notices (warnings stay in SHOW WARNINGS) and no NOTIFY.
"""

from __future__ import annotations

import select
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from redpacket.engines.mysql_drivers import protocol_connect
from redpacket.engines.mysql_wire import ERR, MORE_RESULTS, ROWS, Answer, open_wire
from redpacket.errors import LabError
from redpacket.specs.events import Failure, Result, Table
from redpacket.specs.wire import Notification, SpecSession, WireError

GONE = "Lost connection to server during query"


def _text(value: bytes | None) -> str:
    return "" if value is None else value.decode("utf-8", "surrogateescape")


def _failure(answer: Answer) -> Failure:
    """MySQL's error as isolationtester shows PostgreSQL's: "ERROR:  message"; the
    number and the server's SQLSTATE kept for --json."""
    _, number, sqlstate, message, _ = answer
    return Failure("ERROR", message, sqlstate, str(number))


class MySQLSession:
    def __init__(self, options: dict[str, Any]) -> None:
        try:
            self.conn, fd, deprecate_eof = protocol_connect(options, multi=True)
        except Exception as exc:
            message = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
            raise LabError(f"cannot connect a spec session: {message}") from None
        self.wire = open_wire(fd, deprecate_eof)
        self.pid = int(self.conn.thread_id())
        self._error = ""
        self._first: Answer | None = None  # the reply's first answer, read by consume()
        self._received = True
        self._lost = False
        self._changed = (0, 0)
        self.killer: Callable[[], None] | None = None

    def send(self, sql: str) -> None:
        try:
            self.wire.send(sql.encode("utf-8", "surrogateescape"))
        except ConnectionError as exc:
            self._lost = True
            raise WireError(str(exc)) from None
        self._received = False

    def busy(self) -> bool:
        return not self._received

    def readable(self, timeout: float | None) -> bool:
        if self.wire.pending():
            return True
        ready, _, _ = select.select([self.wire.fd], [], [], timeout)
        return bool(ready)

    def consume(self) -> None:
        """Read the reply's first answer if it has started to arrive; never wait for one."""
        if self._received or not self.readable(0):
            return
        self._first = self._read()
        self._received = True

    def _read(self) -> Answer | None:
        """The next answer; None: the connection is gone."""
        try:
            return self.wire.read()  # type: ignore[no-any-return]
        except ConnectionError:
            self._lost = True
            return None

    def results(self) -> Iterator[Result]:
        if not self._received:
            self.readable(None)  # wait: the caller wants the results
            self.consume()
        answer, self._first = self._first, None
        while True:
            if answer is None:
                yield Failure("ERROR", GONE, None, "2013")  # CR_SERVER_LOST, as a client says it
                return
            if answer[0] == ERR:
                yield self._noted(_failure(answer))
                return  # the server runs nothing of a query after an error
            if answer[0] == ROWS:
                columns = tuple(_text(name) for name in answer[1])
                rows = tuple(tuple(None if v is None else _text(v) for v in row)
                             for row in answer[2])  # fmt: skip
                yield Table(columns, rows)
            else:
                self._changed = (answer[1], answer[2])
            if not answer[3] & MORE_RESULTS:
                return
            answer = self._read()

    def _noted(self, failure: Failure) -> Failure:
        from redpacket.engines.mysql import LOST

        if failure.code is None or int(failure.code) in LOST:
            self._lost = True
        return failure

    def changed(self) -> tuple[int, int]:
        return self._changed

    def lost(self) -> bool:
        return self._lost

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
        self.killer()  # KILL QUERY from the observer: the protocol has no cancel
        return True

    def close(self) -> None:
        if self.conn.open:
            try:
                self.conn.close()
            except Exception:
                self.conn._force_close()


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
