"""PostgreSQL sessions for spec files, on libpq itself (``pq_ctypes``, else ``psycopg.pq``).

The spec runner must print what PostgreSQL's isolationtester prints, and that
tester is a libpq program: results are libpq's results (one per statement of a
step, as the simple query protocol returns them, values as the server's text),
notices reach a handler in the order libpq reads them, and a wait is the
server's own ``pg_isolation_test_session_is_blocked(pid, pids)``: heavyweight
locks held by one of the spec's sessions or a SERIALIZABLE READ ONLY DEFERRABLE
transaction waiting for a safe snapshot, and nothing else (an autovacuum's
passing lock does not count).
"""

from __future__ import annotations

import contextlib
import select
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from redpacket.engines import pq_ctypes
from redpacket.errors import LabError
from redpacket.specs.events import Failure, Result, Table
from redpacket.specs.wire import Notification, SpecSession, WireError
from redpacket.twins import chosen

WAIT_QUERY = b"SELECT pg_catalog.pg_isolation_test_session_is_blocked($1, $2::int[])"
_STATUS = pq_ctypes.ExecStatus  # libpq's numbers, the same in either binding
_FIELD = pq_ctypes.DiagnosticField
ENV = "REDPACKET_SPEC_LIBPQ"


def libpq_binding() -> tuple[Any, tuple[type[Exception], ...]]:
    """(the pq module, what it raises for a failed connection): ctypes on the machine's
    libpq where it loads, unless REDPACKET_SPEC_LIBPQ=psycopg asks for psycopg's (the
    bytes printed are the same; tests/test_specs.py runs the specs on both)."""
    return chosen(
        ENV, ("ctypes", _ctypes_binding), ("psycopg", _psycopg_binding),
        "the machine's libpq (libpq.so.5) does not load",
    )  # fmt: skip


def _ctypes_binding() -> tuple[Any, tuple[type[Exception], ...]] | None:
    return (pq_ctypes, (pq_ctypes.OperationalError,)) if pq_ctypes.AVAILABLE else None


def _psycopg_binding() -> tuple[Any, tuple[type[Exception], ...]]:
    import psycopg
    from psycopg import pq

    return pq, (psycopg.OperationalError,)


def _text(value: bytes | None) -> str:
    return value.decode("utf-8", "surrogateescape") if value is not None else ""


def result_of(res: Any) -> Result | None:
    status = res.status
    if status == _STATUS.TUPLES_OK:
        columns = tuple(_text(res.fname(j)) for j in range(res.nfields))
        rows = tuple(
            tuple(
                None if (value := res.get_value(i, j)) is None else _text(value)
                for j in range(res.nfields)
            )
            for i in range(res.ntuples)
        )
        return Table(columns, rows)
    if status in (_STATUS.COMMAND_OK, _STATUS.EMPTY_QUERY):
        return None
    if status == _STATUS.FATAL_ERROR:
        severity = res.error_field(_FIELD.SEVERITY)
        primary = res.error_field(_FIELD.MESSAGE_PRIMARY)
        sqlstate = res.error_field(_FIELD.SQLSTATE)
        if severity is not None and primary is not None:
            state = _text(sqlstate) or None
            return Failure(_text(severity), _text(primary), state, state)
        return Failure(None, _text(res.error_message))
    return Failure(None, f"unexpected result status: PGRES_{_STATUS(status).name}")


class PQSession:
    def __init__(self, conninfo: str, on_notice: Callable[[str], None] | None) -> None:
        pq, self._failed = libpq_binding()
        self.conn = pq.PGconn.connect(conninfo.encode())
        if self.conn.status != pq_ctypes.ConnStatus.OK:
            message = _text(self.conn.error_message).strip()
            self.conn.finish()
            raise LabError(f"cannot connect a spec session: {message}")
        self.conn.notice_handler = (
            (lambda res: on_notice(_text(res.error_message))) if on_notice else (lambda res: None)
        )
        self.pid = self.conn.backend_pid
        self._changed = 0

    def set_name(self, name: str) -> None:
        """Append the session's name to application_name, as isolationtester does."""
        self.conn.exec_params(
            b"SELECT set_config('application_name',"
            b" current_setting('application_name') || '/' || $1, false)",
            [name.encode()],
        )

    def send(self, sql: str) -> None:
        try:
            self.conn.send_query(sql.encode("utf-8", "surrogateescape"))
        except self._failed:
            raise WireError(_text(self.conn.error_message)) from None

    def busy(self) -> bool:
        return bool(self.conn.is_busy())

    def readable(self, timeout: float | None) -> bool:
        ready, _, _ = select.select([self.conn.socket], [], [], timeout)
        return bool(ready)

    def consume(self) -> None:
        try:
            self.conn.consume_input()
        except self._failed:
            raise WireError(_text(self.conn.error_message)) from None

    def results(self) -> Iterator[Result]:
        while (res := self.conn.get_result()) is not None:
            if res.status == _STATUS.COMMAND_OK:
                tuples = res.command_tuples
                self._changed = 0 if tuples is None else tuples
            result = result_of(res)
            if result is not None:
                yield result

    def changed(self) -> tuple[int, int]:
        return self._changed, 0

    def lost(self) -> bool:
        return bool(self.conn.status != pq_ctypes.ConnStatus.OK)

    def notifications(self) -> list[Notification]:
        found = []
        with contextlib.suppress(*self._failed):  # unchecked, as the tester does
            self.conn.consume_input()
        while (notify := self.conn.notifies()) is not None:
            found.append(Notification(_text(notify.relname), _text(notify.extra), notify.be_pid))
            with contextlib.suppress(*self._failed):
                self.conn.consume_input()
        return found

    def execute(self, sql: str) -> Result | None:
        """PQexec's last result; an empty block fails here, as isolationtester has it."""
        res = self.conn.exec_(sql.encode("utf-8", "surrogateescape"))
        if res.status == _STATUS.EMPTY_QUERY:
            return Failure(None, "")
        return result_of(res)

    def last_error(self) -> str:
        return _text(self.conn.error_message)

    def cancel(self) -> bool:
        try:
            self.conn.get_cancel().cancel()
        except self._failed:
            return False
        return True

    def close(self) -> None:
        self.conn.finish()  # again: nothing happens


class PQSpecServer:
    has_notices = True

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.control = PQSession(conninfo, None)
        self.control.set_name("control connection")
        self._pids = b"{}"

    def version(self) -> str:
        return _text(self.control.conn.parameter_status(b"server_version"))

    def open(self, name: str, on_notice: Callable[[str], None] | None) -> PQSession:
        session = PQSession(self.conninfo, on_notice)
        session.set_name(name)
        return session

    def watch(self, sessions: Sequence[SpecSession]) -> None:
        self._pids = ("{" + ",".join(str(s.pid) for s in sessions) + "}").encode()

    def is_blocked(self, session: SpecSession) -> bool:
        res = self.control.conn.exec_params(WAIT_QUERY, [str(session.pid).encode(), self._pids])
        if res.status != _STATUS.TUPLES_OK or res.ntuples != 1:
            raise LabError(f"lock wait query failed: {self.control.last_error().strip()}")
        return bool(res.get_value(0, 0) == b"t")

    def close(self) -> None:
        self.control.close()
