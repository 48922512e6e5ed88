"""The wire under the loop engine's workers: one libpq connection in pipeline mode.

Two implementations with one interface and the same answers. The C module
``_libpq_pipe`` (built by setup.py where a compiler and libpq's headers are at hand)
costs one call per batch sent and one per wake-up read: at 8 clients the Python
calls around every result (consume, is-busy, get, then status, rows and error
fields on a result object) were most of the harness's CPU per transaction, and
that CPU is taken from the server on a shared machine. ``PsycopgPipe`` does the
same over psycopg's libpq binding: it runs wherever the C module was not built (an
editable install, no compiler, no libpq headers), or when ``REDPACKET_PIPE=psycopg``
asks for it; the tests run both and compare them.

A read hands over each whole result as ``(status, first row, SQLSTATE, detail)``:
everything the worker reads of one. ``detail`` is 1 for an error the server called
FATAL or PANIC, and the transaction status (``psycopg.pq.TransactionStatus``) for a
batch's Sync; a last ``(LOST, None, None, 0)`` says the connection is gone. The
statuses are libpq's own numbers, as ``psycopg.pq.ExecStatus`` has them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Protocol

from psycopg import OperationalError, pq

from redpacket.stress.statements import Items, PipeError
from redpacket.twins import chosen

Row = tuple[bytes | None, ...]
Summary = tuple[int, Row | None, str | None, int]
ENV: Final = "REDPACKET_PIPE"
LOST: Final = -1  # the summary after the last result: the connection is gone

_TUPLES_OK: Final = int(pq.ExecStatus.TUPLES_OK)
_ERRORS = frozenset(
    int(pq.ExecStatus[name]) for name in ("FATAL_ERROR", "NONFATAL_ERROR", "BAD_RESPONSE")
)
_SQLSTATE = pq.DiagnosticField.SQLSTATE
_SEVERITY = pq.DiagnosticField.SEVERITY_NONLOCALIZED
_PRIMARY = pq.DiagnosticField.MESSAGE_PRIMARY
_SYNC: Final = int(pq.ExecStatus.PIPELINE_SYNC)
_BAD: Final = int(pq.ConnStatus.BAD)
_LOST: Final[Summary] = (LOST, None, None, 0)


class Pipe(Protocol):
    """What a worker does with its connection (both wires)."""

    @property
    def socket(self) -> int: ...
    def prepare(self, name: bytes, sql: bytes) -> tuple[bool, str, str, str]: ...
    def set_config(self, name: bytes, value: bytes) -> str | None: ...
    def start_pipeline(self) -> None: ...
    def send(self, items: Items, context: dict[str, Any]) -> int:
        """Each item's parameters from ``context``: bytes as they are, an int as its digits
        (the order id, made text by the wire rather than by a bytes object per request)."""
        ...

    def flush(self) -> int: ...
    def read(self) -> list[Summary]: ...
    def close(self) -> None: ...


def _text(value: bytes | None) -> str:
    return (value or b"").decode(errors="replace")


def _param(value: bytes | int) -> bytes:
    return b"%d" % value if isinstance(value, int) else value


class PsycopgPipe:
    """The wire over ``psycopg.pq``: the fallback, and the yardstick the C one is tested by."""

    __slots__ = ("pgconn",)

    def __init__(self, conninfo: bytes) -> None:
        pgconn = pq.PGconn.connect(conninfo)
        if pgconn.status != pq.ConnStatus.OK:
            message = _text(pgconn.error_message)
            pgconn.finish()
            raise PipeError(message)
        self.pgconn: pq.abc.PGconn | None = pgconn

    def _conn(self) -> pq.abc.PGconn:
        if self.pgconn is None:
            raise PipeError("the connection is closed")
        return self.pgconn

    @property
    def socket(self) -> int:
        return -1 if self.pgconn is None else self.pgconn.socket

    def prepare(self, name: bytes, sql: bytes) -> tuple[bool, str, str, str]:
        try:
            result = self._conn().prepare(name, sql)
        except OperationalError as exc:
            raise PipeError(str(exc)) from exc
        ok = result.status == pq.ExecStatus.COMMAND_OK
        fields = (result.error_field(_SQLSTATE), result.error_field(_PRIMARY))
        return ok, _text(fields[0]), _text(fields[1]), _text(result.error_message)

    def set_config(self, name: bytes, value: bytes) -> str | None:
        try:
            result = self._conn().exec_params(b"SELECT set_config($1, $2, false)", [name, value])
        except OperationalError as exc:
            raise PipeError(str(exc)) from exc
        return None if result.status == _TUPLES_OK else _text(result.error_message)

    def start_pipeline(self) -> None:
        pgconn = self._conn()
        try:
            pgconn.nonblocking = 1
            pgconn.enter_pipeline_mode()
        except OperationalError as exc:
            raise PipeError(str(exc)) from exc

    def send(self, items: Items, context: dict[str, Any]) -> int:
        pgconn = self._conn()
        send = pgconn.send_query_prepared
        try:
            for _kind, _index, name, params in items:
                send(name, [_param(context[param]) for param in params] if params else None)
            pgconn.pipeline_sync()
            return pgconn.flush()
        except OperationalError as exc:
            raise PipeError(str(exc)) from exc

    def flush(self) -> int:
        try:
            return self._conn().flush()
        except OperationalError as exc:
            raise PipeError(str(exc)) from exc

    def read(self) -> list[Summary]:
        pgconn = self._conn()
        summaries: list[Summary] = []
        try:
            pgconn.consume_input()
            empty = 0
            while not pgconn.is_busy():
                result = pgconn.get_result()
                if result is None:  # pipeline mode: one None after each statement's results
                    empty += 1
                    if empty > 1:
                        break
                    continue
                empty = 0
                status = result.status
                if status == _SYNC:  # the status libpq read with the Sync's ReadyForQuery
                    summaries.append((status, None, None, pgconn.transaction_status))
                else:
                    summaries.append(_summary(result))
        except OperationalError as exc:
            raise PipeError(str(exc)) from exc
        if pgconn.status == _BAD:
            summaries.append(_LOST)
        return summaries

    def close(self) -> None:
        pgconn, self.pgconn = self.pgconn, None
        if pgconn is not None:
            pgconn.finish()


def _summary(result: pq.abc.PGresult) -> Summary:
    status = result.status
    if status == _TUPLES_OK and result.ntuples:
        get = result.get_value
        return status, tuple([get(0, c) for c in range(result.nfields)]), None, 0
    if status in _ERRORS:
        sqlstate = result.error_field(_SQLSTATE)
        fatal = result.error_field(_SEVERITY) in (b"FATAL", b"PANIC")
        return status, None, None if sqlstate is None else sqlstate.decode(), int(fatal)
    return status, None, None, 0


def _c_pipe() -> Callable[[bytes], Pipe] | None:
    try:
        from redpacket.stress._libpq_pipe import Pipe as CPipe
    except ImportError:
        return None
    return CPipe


def pipe_class() -> Callable[[bytes], Pipe]:
    """The C wire where it was built, unless REDPACKET_PIPE=psycopg asks for psycopg's."""
    return chosen(
        ENV, ("c", _c_pipe), ("psycopg", lambda: PsycopgPipe),
        "the C wire (redpacket.stress._libpq_pipe) was not built",
    )  # fmt: skip


def pipe_build() -> str:
    """Which wire the loop engine's workers use here (figures differ)."""
    return "libpq C wire" if pipe_class() is not PsycopgPipe else "psycopg wire"
