"""libpq through ctypes, for the spec sessions: what ``psycopg.pq`` offers them, loaded in ms.

``redpacket spec`` runs one process per spec file, as pg_isolation_regress runs
isolationtester, and a spec's sessions need libpq and nothing above it (results as
the server's text, notices, the backend's pid). Importing psycopg costs such a
process 0.1 s, most of its life (isolationtester starts in 20 ms); ctypes and the
machine's libpq cost 5 ms. So the spec sessions use this where the machine's libpq
loads, and ``psycopg.pq`` elsewhere: the names here are psycopg's (``PGconn``,
``ExecStatus``, ``error_field``...), so one session class serves both, and
tests/test_specs.py holds the two to the same bytes. Only what the sessions call is
here; everything else in the lab speaks psycopg.
"""

from __future__ import annotations

import ctypes
import enum
from collections.abc import Callable, Sequence
from typing import Any

_LIBRARY = "libpq.so.5"  # the soname every libpq since 8.x has; nothing else is looked for


class OperationalError(Exception):
    """The connection failed (what psycopg raises as psycopg.OperationalError)."""


class ConnStatus(enum.IntEnum):
    OK = 0
    BAD = 1


class ExecStatus(enum.IntEnum):
    EMPTY_QUERY = 0
    COMMAND_OK = 1
    TUPLES_OK = 2
    COPY_OUT = 3
    COPY_IN = 4
    BAD_RESPONSE = 5
    NONFATAL_ERROR = 6
    FATAL_ERROR = 7
    COPY_BOTH = 8
    SINGLE_TUPLE = 9
    PIPELINE_SYNC = 10
    PIPELINE_ABORTED = 11


class DiagnosticField(enum.IntEnum):
    SEVERITY = ord("S")
    SQLSTATE = ord("C")
    MESSAGE_PRIMARY = ord("M")


_P = ctypes.c_void_p
_S = ctypes.c_char_p
_I = ctypes.c_int
_NOTICE = ctypes.CFUNCTYPE(None, _P, _P)


class _Notify(ctypes.Structure):
    _fields_ = [("relname", _S), ("be_pid", _I), ("extra", _S), ("next", _P)]


class _Option(ctypes.Structure):  # PQconninfoOption
    _fields_ = [
        ("keyword", _S), ("envvar", _S), ("compiled", _S), ("val", _S), ("label", _S),
        ("dispchar", _S), ("dispsize", _I),
    ]  # fmt: skip


_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "PQconnectdb": (_P, [_S]),
    "PQstatus": (_I, [_P]),
    "PQerrorMessage": (_S, [_P]),
    "PQbackendPID": (_I, [_P]),
    "PQsocket": (_I, [_P]),
    "PQparameterStatus": (_S, [_P, _S]),
    "PQsetNoticeReceiver": (_P, [_P, _NOTICE, _P]),
    "PQexec": (_P, [_P, _S]),
    "PQexecParams": (_P, [_P, _S, _I, _P, ctypes.POINTER(_S), _P, _P, _I]),
    "PQsendQuery": (_I, [_P, _S]),
    "PQisBusy": (_I, [_P]),
    "PQconsumeInput": (_I, [_P]),
    "PQgetResult": (_P, [_P]),
    "PQnotifies": (ctypes.POINTER(_Notify), [_P]),
    "PQfreemem": (None, [_P]),
    "PQgetCancel": (_P, [_P]),
    "PQcancel": (_I, [_P, ctypes.c_char_p, _I]),
    "PQfreeCancel": (None, [_P]),
    "PQfinish": (None, [_P]),
    "PQresultStatus": (_I, [_P]),
    "PQnfields": (_I, [_P]),
    "PQntuples": (_I, [_P]),
    "PQfname": (_S, [_P, _I]),
    "PQgetisnull": (_I, [_P, _I, _I]),
    "PQgetvalue": (_P, [_P, _I, _I]),
    "PQgetlength": (_I, [_P, _I, _I]),
    "PQresultErrorField": (_S, [_P, _I]),
    "PQresultErrorMessage": (_S, [_P]),
    "PQcmdTuples": (_S, [_P]),
    "PQclear": (None, [_P]),
    "PQconninfoParse": (ctypes.POINTER(_Option), [_S, ctypes.POINTER(_P)]),
    "PQconninfoFree": (None, [ctypes.POINTER(_Option)]),
}


def _load() -> Any:
    library = ctypes.CDLL(_LIBRARY)
    for name, (result, arguments) in _SIGNATURES.items():
        function = getattr(library, name)
        function.restype, function.argtypes = result, arguments
    return library


try:
    _pq: Any = _load()
except (OSError, AttributeError):  # no libpq 5 here, or one too old: psycopg.pq serves
    _pq = None

AVAILABLE = _pq is not None


class PGresult:
    """A result libpq made; cleared when the object goes."""

    def __init__(self, pointer: int) -> None:
        self._pointer = pointer

    def __del__(self) -> None:
        if self._pointer and _pq is not None:
            _pq.PQclear(self._pointer)
            self._pointer = 0

    @property
    def status(self) -> int:
        return int(_pq.PQresultStatus(self._pointer))

    @property
    def nfields(self) -> int:
        return int(_pq.PQnfields(self._pointer))

    @property
    def ntuples(self) -> int:
        return int(_pq.PQntuples(self._pointer))

    def fname(self, column: int) -> bytes | None:
        return _pq.PQfname(self._pointer, column)  # type: ignore[no-any-return]

    def get_value(self, row: int, column: int) -> bytes | None:
        if _pq.PQgetisnull(self._pointer, row, column):
            return None
        length = _pq.PQgetlength(self._pointer, row, column)
        return ctypes.string_at(_pq.PQgetvalue(self._pointer, row, column), length)

    def error_field(self, code: int) -> bytes | None:
        return _pq.PQresultErrorField(self._pointer, code)  # type: ignore[no-any-return]

    @property
    def error_message(self) -> bytes:
        return _pq.PQresultErrorMessage(self._pointer) or b""

    @property
    def command_tuples(self) -> int | None:
        tuples = _pq.PQcmdTuples(self._pointer)
        return int(tuples) if tuples else None


class _Notice:
    """What a notice handler is given: the notice's message, as psycopg's PGresult has it."""

    def __init__(self, pointer: int) -> None:
        self.error_message: bytes = _pq.PQresultErrorMessage(pointer) or b""


class PGnotify:
    def __init__(self, relname: bytes, be_pid: int, extra: bytes) -> None:
        self.relname, self.be_pid, self.extra = relname, be_pid, extra


class PGcancel:
    def __init__(self, pointer: int) -> None:
        self._pointer = pointer

    def cancel(self) -> None:
        message = ctypes.create_string_buffer(256)
        done = _pq.PQcancel(self._pointer, message, len(message))
        _pq.PQfreeCancel(self._pointer)
        if not done:
            raise OperationalError(message.value.decode(errors="replace"))


class PGconn:
    """One libpq connection, with the calls the spec sessions make."""

    def __init__(self, pointer: int) -> None:
        self._pointer = pointer
        self._handler: Callable[[Any], None] | None = None
        self._receiver: Any = None  # kept: libpq holds only the C pointer to it

    @classmethod
    def connect(cls, conninfo: bytes) -> PGconn:
        pointer = _pq.PQconnectdb(conninfo)
        if not pointer:
            raise MemoryError("libpq could not allocate a connection")
        return cls(pointer)

    @property
    def status(self) -> int:
        return int(_pq.PQstatus(self._pointer))

    @property
    def error_message(self) -> bytes:
        return _pq.PQerrorMessage(self._pointer) or b""

    @property
    def backend_pid(self) -> int:
        return int(_pq.PQbackendPID(self._pointer))

    @property
    def socket(self) -> int:
        return int(_pq.PQsocket(self._pointer))

    def parameter_status(self, name: bytes) -> bytes | None:
        return _pq.PQparameterStatus(self._pointer, name)  # type: ignore[no-any-return]

    @property
    def notice_handler(self) -> Callable[[Any], None] | None:
        return self._handler

    @notice_handler.setter
    def notice_handler(self, handler: Callable[[Any], None]) -> None:
        def receive(_argument: int | None, result: int) -> None:
            handler(_Notice(result))

        self._handler = handler
        self._receiver = _NOTICE(receive)
        _pq.PQsetNoticeReceiver(self._pointer, self._receiver, None)

    def exec_(self, command: bytes) -> PGresult:
        return self._result(_pq.PQexec(self._pointer, command))

    def exec_params(self, command: bytes, params: Sequence[bytes | None]) -> PGresult:
        values = (_S * len(params))(*params)
        return self._result(
            _pq.PQexecParams(self._pointer, command, len(params), None, values, None, None, 0)
        )

    def send_query(self, command: bytes) -> None:
        if not _pq.PQsendQuery(self._pointer, command):
            raise OperationalError(self.error_message.decode(errors="replace"))

    def is_busy(self) -> int:
        return int(_pq.PQisBusy(self._pointer))

    def consume_input(self) -> None:
        if not _pq.PQconsumeInput(self._pointer):
            raise OperationalError(self.error_message.decode(errors="replace"))

    def get_result(self) -> PGresult | None:
        pointer = _pq.PQgetResult(self._pointer)
        return PGresult(pointer) if pointer else None

    def notifies(self) -> PGnotify | None:
        found = _pq.PQnotifies(self._pointer)
        if not found:
            return None
        notify = found.contents
        copied = PGnotify(notify.relname or b"", notify.be_pid, notify.extra or b"")
        _pq.PQfreemem(ctypes.cast(found, _P))
        return copied

    def get_cancel(self) -> PGcancel:
        pointer = _pq.PQgetCancel(self._pointer)
        if not pointer:
            raise OperationalError("couldn't create a cancel object")
        return PGcancel(pointer)

    def finish(self) -> None:
        if self._pointer:
            _pq.PQfinish(self._pointer)
            self._pointer = 0

    def _result(self, pointer: int | None) -> PGresult:
        if not pointer:
            raise OperationalError(self.error_message.decode(errors="replace"))
        return PGresult(pointer)


def conninfo_to_dict(conninfo: str) -> dict[str, str]:
    """The options libpq reads from ``conninfo`` (a URI or key=value), or ValueError with
    libpq's own words: what psycopg.conninfo.conninfo_to_dict does, by the same call."""
    error = _P()
    options = _pq.PQconninfoParse(conninfo.encode(), ctypes.byref(error))
    if not options:
        if not error:
            raise MemoryError("couldn't allocate on conninfo parse")
        message = ctypes.string_at(error).decode("utf8", "replace")
        _pq.PQfreemem(error)
        raise ValueError(message)
    found = {}
    try:
        index = 0
        while (option := options[index]).keyword is not None:
            if option.val is not None:
                found[option.keyword.decode()] = option.val.decode()
            index += 1
    finally:
        _pq.PQconninfoFree(options)
    return found


def make_conninfo(conninfo: str, **extra: Any) -> str:
    """``conninfo`` with ``extra`` options added (None: left out), as key=value pairs quoted
    as libpq reads them: psycopg.conninfo.make_conninfo's result, by its rules."""
    if not extra:
        conninfo_to_dict(conninfo)
        return conninfo
    options: dict[str, Any] = conninfo_to_dict(conninfo) if conninfo else {}
    options.update({key: value for key, value in extra.items() if value is not None})
    made = " ".join(f"{key}={_quoted(str(value))}" for key, value in options.items())
    conninfo_to_dict(made)
    return made


def _quoted(value: str) -> str:
    if not value:
        return "''"
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'" if any(ch.isspace() for ch in escaped) else escaped
