"""MySQL's text protocol, one statement at a time, over a socket a driver authenticated.

The stress loop and the spec runner send one query, wait for the socket to say its
answer has come, and read the whole answer: what mysqlclient's ``send_query`` and
``read_query_result`` did, which no driver that installs from a wheel offers. So the
lab frames a COM_QUERY itself and reads back an OK, an ERR or a text result set, on
the socket PyMySQL opened and authenticated (``mysql_drivers.protocol_connect``):
in C (``_mysql_wire.c``, built wherever a C compiler is) and, with the same answers,
here in Python. An answer is one tuple, whichever wire read it:

- ``(OK, affected rows, last insert id, status flags, warnings)``
- ``(ROWS, column names, rows, status flags, warnings)``
- ``(ERR, error number, SQLSTATE, message, 0)``

A connection that is gone raises a ``ConnectionError`` (``Lost``).
"""

from __future__ import annotations

import os
import select
from typing import Any, Final

from redpacket.twins import chosen

OK: Final = 0
ROWS: Final = 1
ERR: Final = 2
MORE_RESULTS: Final = 0x0008  # SERVER_MORE_RESULTS_EXISTS: another answer follows
IN_TRANSACTION: Final = 0x0001  # SERVER_STATUS_IN_TRANS
_MAX_PAYLOAD: Final = 0xFFFFFF
_INTEGER_TYPES: Final = frozenset((1, 2, 3, 8, 9, 13))  # TINY SHORT LONG LONGLONG INT24 YEAR

Answer = tuple[int, Any, Any, Any, int]


class Lost(ConnectionError):
    """The connection is gone: closed, reset, or it sent something that is not MySQL's."""


class PyWire:
    """The Python wire: what ``_mysql_wire.Wire`` does, for machines that could not build it."""

    def __init__(self, fd: int, deprecate_eof: bool = False) -> None:
        self.fd = fd
        self.deprecate_eof = deprecate_eof
        self._buffer = bytearray()

    def send(self, query: bytes) -> None:
        payload = len(query) + 1
        if payload >= _MAX_PAYLOAD:
            raise ValueError("a query of 16 MiB or more")
        data = memoryview(payload.to_bytes(3, "little") + b"\x00\x03" + query)
        while data:
            try:
                sent = os.write(self.fd, data)
            except BlockingIOError:
                select.select([], [self.fd], [])
                continue
            except OSError as exc:
                raise Lost(exc.strerror or str(exc)) from None
            data = data[sent:]

    def pending(self) -> bool:
        return bool(self._buffer)

    def read(self, typed: bool = False) -> Answer:
        p = self._packet()
        if not p:
            raise Lost("an empty reply")
        first = p[0]
        if first == 0x00:
            return _ok(p)
        if first == 0xFF:
            return _err(p)
        if first == 0xFB:
            raise Lost("the server asked for a local file: not a statement the lab sends")
        columns, _ = _lenenc(p, 0)
        if columns is None or columns <= 0:
            raise Lost("a malformed result set header")
        return self._rows(columns, typed)

    # -- reading -------------------------------------------------------------------------

    def _fill(self, want: int) -> None:
        while len(self._buffer) < want:
            try:
                chunk = os.read(self.fd, max(65536, want - len(self._buffer)))
            except BlockingIOError:
                select.select([self.fd], [], [])
                continue
            except OSError as exc:
                raise Lost(exc.strerror or str(exc)) from None
            if not chunk:
                raise Lost("the server closed the connection")
            self._buffer += chunk

    def _packet(self) -> bytes:
        self._fill(4)
        size = int.from_bytes(self._buffer[:3], "little")
        if size == _MAX_PAYLOAD:
            raise Lost("a reply of 16 MiB or more: not a statement the lab sends")
        self._fill(4 + size)
        payload = bytes(self._buffer[4 : 4 + size])
        del self._buffer[: 4 + size]
        return payload

    def _is_eof(self, p: bytes) -> bool:
        return p[0] == 0xFE and (len(p) < _MAX_PAYLOAD if self.deprecate_eof else len(p) < 9)

    def _rows(self, columns: int, typed: bool) -> Answer:
        names: list[bytes] = []
        types: list[int] = []
        for _ in range(columns):
            p = self._packet()
            at = 0
            for field in range(6):  # catalog, schema, table, org_table, name, org_name
                size, at = _lenenc(p, at)
                if size is None or at + size > len(p):
                    raise Lost("a malformed column definition")
                if field == 4:
                    names.append(p[at : at + size])
                at += size
            _, at = _lenenc(p, at)  # the fixed fields' length, 0x0c
            if at + 7 > len(p):
                raise Lost("a malformed column definition")
            types.append(p[at + 6])
        if not self.deprecate_eof and not self._is_eof(self._packet()):
            raise Lost("no EOF after the column definitions")
        rows: list[tuple[Any, ...]] = []
        while True:
            p = self._packet()
            if p and p[0] == 0xFF:
                return _err(p)
            if p and self._is_eof(p):
                if self.deprecate_eof:
                    _, _, _, status, warnings = _ok(p)
                else:
                    warnings = int.from_bytes(p[1:3], "little") if len(p) >= 3 else 0
                    status = int.from_bytes(p[3:5], "little") if len(p) >= 5 else 0
                return (ROWS, tuple(names), rows, status, warnings)
            row: list[Any] = []
            at = 0
            for kind in types:
                if at < len(p) and p[at] == 0xFB:
                    row.append(None)
                    at += 1
                    continue
                size, at = _lenenc(p, at)
                if size is None or at + size > len(p):
                    raise Lost("a malformed row")
                raw = p[at : at + size]
                at += size
                if not typed:
                    row.append(raw)
                elif kind in _INTEGER_TYPES and 0 < size < 32:
                    row.append(int(raw))
                else:
                    row.append(raw.decode("utf-8", "surrogateescape"))
            rows.append(tuple(row))


def _lenenc(p: bytes, at: int) -> tuple[int | None, int]:
    """A length-encoded integer at ``at``, and where the next field starts."""
    if at >= len(p):
        return None, at
    first = p[at]
    if first < 0xFB:
        return first, at + 1
    width = {0xFC: 2, 0xFD: 3, 0xFE: 8}.get(first)
    if width is None or at + 1 + width > len(p):
        return None, at + 1
    return int.from_bytes(p[at + 1 : at + 1 + width], "little"), at + 1 + width


def _ok(p: bytes) -> Answer:
    affected, at = _lenenc(p, 1)
    insert_id, at = _lenenc(p, at)
    if affected is None or insert_id is None or at + 4 > len(p):
        raise Lost("a malformed OK packet")
    status = int.from_bytes(p[at : at + 2], "little")
    warnings = int.from_bytes(p[at + 2 : at + 4], "little")
    return (OK, affected, insert_id, status, warnings)


def _err(p: bytes) -> Answer:
    if len(p) < 3:
        raise Lost("a malformed ERR packet")
    number = int.from_bytes(p[1:3], "little")
    at, sqlstate = 3, "HY000"
    if len(p) >= 9 and p[3:4] == b"#":
        sqlstate, at = p[4:9].decode("ascii", "replace"), 9
    return (ERR, number, sqlstate, p[at:].decode("utf-8", "replace"), 0)


ENV: Final = "REDPACKET_MYSQL_WIRE"


def _c_wire() -> Any:
    try:
        from redpacket.engines._mysql_wire import Wire
    except ImportError:  # not built here: no C compiler at install
        return None
    return Wire


def wire_class() -> Any:
    """The C wire where it was built, unless REDPACKET_MYSQL_WIRE=python asks for Python's."""
    return chosen(
        ENV, ("c", _c_wire), ("python", lambda: PyWire),
        "the C wire (redpacket.engines._mysql_wire) was not built",
    )  # fmt: skip


def wire_build() -> str:
    """Which wire the MySQL loop and spec sessions use here (figures differ)."""
    return "MySQL C wire" if wire_class() is not PyWire else "MySQL Python wire"


def open_wire(fd: int, deprecate_eof: bool = False) -> Any:
    return wire_class()(fd, deprecate_eof)
