"""MySQL's client/server protocol (MariaDB's and MySQL's alike), as the proxy relays it.

Start-up and authentication pass through unchanged, packet by packet (the proxy never
reads a password): mysql_native_password, ed25519, caching_sha2_password's fast path.
The server's greeting is changed in three bits only: CLIENT_SSL is cleared, so a
client at ``ssl-mode=PREFERRED`` goes on in plain text, as are compression and
MariaDB's result-set metadata cache, which would hide the packets the relay reads. The
greeting's connection id names the session (``CONNECTION_ID()``), so waits are seen
from the server (InnoDB's lock waits), as everywhere in the lab.

A request is one command (``COM_QUERY``, ``COM_STMT_EXECUTE``, ...), its answer the
server's whole response: an OK or ERR packet, or result sets up to the EOF or OK that
has no "more results" flag. The status flags of that last packet say whether a
transaction is open. A command the server does not answer (``COM_STMT_CLOSE``) is
relayed and forgotten; packets a client sends inside an answer (LOAD DATA LOCAL's
file) pass at once.
"""

from __future__ import annotations

import struct
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Final

from redpacket.database.url import URL
from redpacket.wire.link import (
    Address,
    Adopter,
    Answer,
    Closed,
    Link,
    Listener,
    Request,
    WireProtocol,
    relay_connection,
)

CLIENT_LONG_PASSWORD: Final = 0x1  # cleared by MariaDB servers: extended flags follow
CLIENT_COMPRESS: Final = 0x20
CLIENT_PROTOCOL_41: Final = 0x200
CLIENT_SSL: Final = 0x800
CLIENT_DEPRECATE_EOF: Final = 1 << 24
CLIENT_ZSTD_COMPRESSION: Final = 1 << 26
CLIENT_QUERY_ATTRIBUTES: Final = 1 << 27
MARIADB_CLIENT_CACHE_METADATA: Final = 1 << 4  # of MariaDB's extended flags
_CLEARED: Final = CLIENT_SSL | CLIENT_COMPRESS | CLIENT_ZSTD_COMPRESSION | CLIENT_QUERY_ATTRIBUTES

SERVER_STATUS_IN_TRANS: Final = 0x1
SERVER_STATUS_AUTOCOMMIT: Final = 0x2
SERVER_MORE_RESULTS_EXISTS: Final = 0x8
SERVER_STATUS_CURSOR_EXISTS: Final = 0x40
DEADLOCK: Final = 1213  # InnoDB rolls the whole transaction back

COM_QUIT: Final = 0x01
COM_QUERY: Final = 0x03
COM_FIELD_LIST: Final = 0x04
COM_STATISTICS: Final = 0x09
COM_CHANGE_USER: Final = 0x11
COM_STMT_PREPARE: Final = 0x16
COM_STMT_EXECUTE: Final = 0x17
COM_STMT_SEND_LONG_DATA: Final = 0x18
COM_STMT_CLOSE: Final = 0x19
COM_STMT_FETCH: Final = 0x1C
_UNANSWERED: Final = {COM_STMT_SEND_LONG_DATA, COM_STMT_CLOSE}
_MAX_PAYLOAD: Final = 0xFFFFFF


def _exact(reader: BinaryIO, n: int) -> bytes:
    data = reader.read(n)
    if data is None or len(data) < n:
        raise Closed
    return data


def read_packet(reader: BinaryIO) -> tuple[int, bytes, bytes]:
    """(sequence id, the logical payload, the bytes as sent): a payload of 16 MiB or more
    comes in several packets, read here as one."""
    raw: list[bytes] = []
    payload: list[bytes] = []
    sequence = -1
    while True:
        head = _exact(reader, 4)
        length = head[0] | head[1] << 8 | head[2] << 16
        body = _exact(reader, length)
        if sequence < 0:
            sequence = head[3]
        raw += (head, body)
        payload.append(body)
        if length < _MAX_PAYLOAD:
            return sequence, b"".join(payload), b"".join(raw)


def packet(sequence: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([sequence & 0xFF]) + payload


def lenenc_int(data: bytes, at: int) -> tuple[int, int]:
    """A length-encoded integer at ``at``: (its value, where the next field starts)."""
    first = data[at]
    if first < 0xFB:
        return first, at + 1
    size = {0xFC: 2, 0xFD: 3, 0xFE: 8}.get(first)
    if size is None:  # 0xFB (NULL) or 0xFF: not an integer
        return 0, at + 1
    return int.from_bytes(data[at + 1 : at + 1 + size], "little"), at + 1 + size


# -- the greeting -----------------------------------------------------------------------


@dataclass(frozen=True)
class Greeting:
    connection_id: int
    capabilities: int  # what the server offers, after the proxy's changes
    payload: bytes  # the greeting as the client will receive it


def read_greeting(payload: bytes) -> Greeting:
    """The server's Initial Handshake (protocol 10), with the proxy's bits cleared."""
    if not payload or payload[0] != 10:
        raise Closed  # an ERR (too many connections, host blocked) or an unknown protocol
    version_end = payload.index(b"\0", 1)
    at = version_end + 1
    (connection_id,) = struct.unpack_from("<I", payload, at)
    caps_at = at + 4 + 8 + 1
    (lower,) = struct.unpack_from("<H", payload, caps_at)
    changed = bytearray(payload)
    upper = 0
    if len(payload) > caps_at + 2:
        (upper,) = struct.unpack_from("<H", payload, caps_at + 5)
    capabilities = (lower | upper << 16) & ~_CLEARED
    struct.pack_into("<H", changed, caps_at, capabilities & 0xFFFF)
    if len(payload) > caps_at + 2:
        struct.pack_into("<H", changed, caps_at + 5, capabilities >> 16)
        if not capabilities & CLIENT_LONG_PASSWORD:  # MariaDB: its own flags follow
            extended_at = caps_at + 2 + 1 + 2 + 2 + 1 + 6
            (extended,) = struct.unpack_from("<I", payload, extended_at)
            struct.pack_into("<I", changed, extended_at, extended & ~MARIADB_CLIENT_CACHE_METADATA)
    return Greeting(connection_id, capabilities, bytes(changed))


# -- the answers' shapes ----------------------------------------------------------------


def _is_eof(payload: bytes) -> bool:
    """The end of a list of columns or rows: 0xFE and short (a row starting with 0xFE is a
    string of 16 MiB or more, so its packet is full)."""
    return payload[:1] == b"\xfe" and len(payload) < _MAX_PAYLOAD


def _status_of_ok(payload: bytes) -> tuple[int, int]:
    """(affected rows, status flags) of an OK packet (or of one sent as 0xFE)."""
    affected, at = lenenc_int(payload, 1)
    _insert_id, at = lenenc_int(payload, at)
    status = int.from_bytes(payload[at : at + 2], "little") if len(payload) >= at + 2 else 0
    return affected, status


def _status_of_eof(payload: bytes) -> int:
    return int.from_bytes(payload[3:5], "little") if len(payload) >= 5 else 0


def _error_of(payload: bytes) -> tuple[str, str]:
    (code,) = struct.unpack_from("<H", payload, 1)
    message = payload[3:]
    if message[:1] == b"#":
        message = message[6:]
    return str(code), message.decode("utf-8", "replace")


_FIXED: Final = {1: 1, 2: 2, 3: 4, 4: 4, 5: 8, 8: 8, 9: 4, 13: 2}  # binary parameter sizes
_DATES: Final = {7, 10, 11, 12}  # one length byte, then the parts


def _binary_params(payload: bytes, count: int, types: list[int]) -> tuple[tuple[Any, ...], bool]:
    """The values of a COM_STMT_EXECUTE's parameters, and whether it bound new types.

    Integers and strings are shown as the server receives them; other types as their
    size, never guessed at.
    """
    if count == 0:
        return (), False
    at = 1 + 4 + 1 + 4
    nulls = payload[at : at + (count + 7) // 8]
    at += (count + 7) // 8
    bound_new = payload[at : at + 1] == b"\x01"
    at += 1
    if bound_new:
        types[:] = [struct.unpack_from("<H", payload, at + 2 * i)[0] for i in range(count)]
        at += 2 * count
    values: list[Any] = []
    for index in range(count):
        if nulls[index // 8] >> (index % 8) & 1:
            values.append(None)
            continue
        if index >= len(types):
            values.append("<unknown>")
            continue
        kind, unsigned = types[index] & 0xFF, types[index] & 0x8000
        if kind in _FIXED:
            size = _FIXED[kind]
            data = payload[at : at + size]
            at += size
            if kind in (4, 5):
                values.append(struct.unpack("<f" if kind == 4 else "<d", data)[0])
            else:
                values.append(int.from_bytes(data, "little", signed=not unsigned))
        elif kind in _DATES:
            size = payload[at]
            values.append(f"<{'time' if kind == 11 else 'date'}, {size} bytes>")
            at += 1 + size
        else:  # strings, decimals, blobs, JSON: length-encoded
            size, at = lenenc_int(payload, at)
            values.append(payload[at : at + size].decode("utf-8", "replace"))
            at += size
    return tuple(values), bound_new


@dataclass
class _Prepared:
    sql: str
    params: int
    types: list[int] = field(default_factory=list)


@dataclass
class _Pending:
    """A command the server is answering, and where the relay is in its answer."""

    command: int
    request: Request
    counted: bool
    sql: str = ""  # a COM_STMT_PREPARE's statement
    state: str = "first"
    left: int = 0  # column (or parameter) definitions still to come
    rows: int = 0
    eof_after_columns: bool = True
    tags: list[str] = field(default_factory=list)
    error: tuple[str, str] | None = None
    status: int | None = None  # the flags of the answer's last OK or EOF; an ERR has none


def _verbs(request: Request) -> list[str]:
    words = []
    for sql in request.statements:
        for part in sql.split(";"):
            word = part.split(None, 1)[0].upper() if part.split() else ""
            if word:
                words.append(word)
    return words


class MySQLWire:
    """The protocol, for one proxy: the relay of each connection runs in two threads."""

    name = "mysql"

    def __init__(self, upstream: Address) -> None:
        self.upstream = upstream

    def serve(
        self, link: Link, listener: Listener, on_note: Callable[[str], None],
        bytes_only: Adopter | None = None,
    ) -> None:  # fmt: skip
        """Relay one connection from its greeting to its end."""

        def start(client_in: BinaryIO, upstream_in: BinaryIO) -> _Relay | None:
            agreed = self._start(link, client_in, upstream_in, on_note)
            if agreed is None:
                return None
            return _Relay(link, listener, client_in, upstream_in, *agreed)

        relay_connection(link, listener, start, bytes_only)

    def _start(
        self, link: Link, client_in: BinaryIO, upstream_in: BinaryIO, on_note: Callable[[str], None]
    ) -> tuple[int, bool] | None:
        """Greeting, handshake response, authentication: the capabilities both agreed on and
        whether autocommit is on, or None when the connection ends there."""
        sequence, payload, raw = read_packet(upstream_in)
        try:
            greeting = read_greeting(payload)
        except (Closed, ValueError, struct.error, IndexError):
            link.client.sendall(raw)  # the server's refusal, as it said it
            return None
        link.session_id = greeting.connection_id
        link.client.sendall(packet(sequence, greeting.payload))
        try:
            _, response, raw = read_packet(client_in)
        except Closed:
            on_note(
                f"connection {link.number}: the client hung up after the server's greeting;"
                " if it requires TLS: the proxy speaks plain text (use ssl-mode=PREFERRED"
                " or DISABLED)"
            )
            return None
        (asked,) = struct.unpack_from("<I", response.ljust(4, b"\0"))
        if asked & CLIENT_SSL:
            on_note(
                f"connection {link.number}: the client asked for TLS; the proxy speaks plain"
                " text (use ssl-mode=PREFERRED or DISABLED)"
            )
            return None
        link.upstream.sendall(raw)
        while True:  # authentication: relayed until the server says OK or ERR
            _, payload, raw = read_packet(upstream_in)
            link.client.sendall(raw)
            first = payload[:1]
            if first == b"\x00":
                status = _status_of_ok(payload)[1]
                return int(asked) & greeting.capabilities, bool(status & SERVER_STATUS_AUTOCOMMIT)
            if first == b"\xff" or not first:
                return None
            if payload == b"\x01\x03":  # caching_sha2's fast path: OK follows, no reply
                continue
            _, _, reply = read_packet(client_in)  # auth switch, more data: the client's turn
            link.upstream.sendall(reply)


class _Relay:
    """Commands one way, answers the other; the listener hears both in order."""

    def __init__(
        self, link: Link, listener: Listener, client_in: BinaryIO, upstream_in: BinaryIO,
        capabilities: int, autocommit: bool,
    ) -> None:  # fmt: skip
        self.link, self.listener = link, listener
        self.client_in, self.upstream_in = client_in, upstream_in
        self.deprecate_eof = bool(capabilities & CLIENT_DEPRECATE_EOF)
        self.prepared: dict[int, _Prepared] = {}
        self.changed = threading.Lock()
        self.pending: deque[_Pending] = deque()
        self.autocommit = link.autocommit = autocommit

    # -- the client's commands ---------------------------------------------------------

    def requests(self) -> None:
        while True:
            sequence, payload, raw = read_packet(self.client_in)
            if sequence != 0 or not payload:  # inside an answer (LOCAL INFILE's data)
                self.link.upstream.sendall(raw)
                continue
            command = payload[0]
            request, sql = self._request_of(command, payload)
            counted = self.listener.before(self.link, request)
            if command not in _UNANSWERED and command != COM_QUIT:
                with self.changed:
                    self.pending.append(_Pending(command, request, counted, sql))
            self.link.upstream.sendall(raw)
            if command == COM_QUIT:
                return

    def _request_of(self, command: int, payload: bytes) -> tuple[Request, str]:
        if command == COM_QUERY:
            return Request((payload[1:].decode("utf-8", "replace"),), ((),)), ""
        if command == COM_STMT_PREPARE:  # takes no lock and no snapshot: housekeeping
            return Request(()), payload[1:].decode("utf-8", "replace")
        if command == COM_STMT_EXECUTE and len(payload) >= 5:
            (statement_id,) = struct.unpack_from("<I", payload, 1)
            with self.changed:
                prepared = self.prepared.get(statement_id)
            if prepared is None:
                return Request((f"<prepared statement {statement_id}>",), ((),)), ""
            try:
                values, _ = _binary_params(payload, prepared.params, prepared.types)
            except (IndexError, struct.error):
                values = ("<unreadable>",)
            return Request((prepared.sql,), (values,)), ""
        if command == COM_STMT_CLOSE and len(payload) >= 5:
            with self.changed:
                self.prepared.pop(struct.unpack_from("<I", payload, 1)[0], None)
        return Request((), closes=command == COM_QUIT), ""

    # -- the server's answers ----------------------------------------------------------

    def answers(self) -> None:
        try:
            while True:
                _, payload, raw = read_packet(self.upstream_in)
                with self.changed:
                    pending = self.pending[0] if self.pending else None
                if pending is not None and self._read(pending, payload):
                    with self.changed:
                        self.pending.popleft()
                    self._done(pending)
                self.link.client.sendall(raw)
        except (Closed, OSError):
            self.link.close()

    def _done(self, pending: _Pending) -> None:
        """The answer's last packet is in: the listener hears it before the client does."""
        if pending.status is not None:
            in_transaction = bool(pending.status & SERVER_STATUS_IN_TRANS)
            self.autocommit = bool(pending.status & SERVER_STATUS_AUTOCOMMIT)
            self.link.autocommit = self.autocommit
        elif pending.error is not None and pending.error[0] == str(DEADLOCK):
            in_transaction = False  # InnoDB rolled the whole transaction back
        else:  # an ERR carries no flags: the statement failed, its transaction goes on, and
            # with autocommit off the next statement is in one whatever this one did
            in_transaction = self.link.in_transaction or not self.autocommit
        self.link.in_transaction = in_transaction
        if pending.counted:
            answer = Answer(pending.error, tuple(pending.tags), in_transaction)
            self.listener.after(self.link, pending.request, answer)

    def _read(self, pending: _Pending, payload: bytes) -> bool:
        """Take one packet of ``pending``'s answer; True when it was the last."""
        first = payload[:1]
        state = pending.state
        if pending.command == COM_STMT_PREPARE:
            return self._read_prepare(pending, payload)
        if pending.command not in (COM_QUERY, COM_STMT_EXECUTE, COM_STMT_FETCH, COM_FIELD_LIST):
            if pending.command == COM_CHANGE_USER and first not in (b"\x00", b"\xff"):
                return False  # its authentication, relayed
            if first == b"\x00":
                pending.status = _status_of_ok(payload)[1]
            elif first == b"\xff":
                pending.error = _error_of(payload)
            elif _is_eof(payload):
                pending.status = _status_of_eof(payload)
            return True  # everything else is answered by one packet
        if first == b"\xff":
            pending.error = pending.error or _error_of(payload)
            return True
        if pending.command == COM_FIELD_LIST:
            return _is_eof(payload)
        if pending.command == COM_STMT_FETCH and state == "first":
            pending.state = state = "rows"
        if state == "first":
            if first == b"\x00":
                affected, status = _status_of_ok(payload)
                self._tag(pending, affected)
                return self._end_of_result(pending, status)
            if first == b"\xfb":  # LOCAL INFILE: the client sends the file, then OK or ERR
                return False
            pending.left, _ = lenenc_int(payload, 0)
            pending.rows = 0
            pending.state = "columns"
            return False
        if state == "columns":
            pending.left -= 1
            if pending.left <= 0:
                pending.state = "rows" if self.deprecate_eof else "columns-eof"
            return False
        if state == "columns-eof":
            pending.state = "rows"
            status = _status_of_eof(payload)
            if status & SERVER_STATUS_CURSOR_EXISTS:  # a cursor: rows come by COM_STMT_FETCH
                pending.status = status
                return True
            return False
        if _is_eof(payload):  # state "rows"
            ok_packet = self.deprecate_eof  # the end of rows is an OK sent as 0xFE
            status = _status_of_ok(payload)[1] if ok_packet else _status_of_eof(payload)
            pending.tags.append(f"SELECT {pending.rows}")
            return self._end_of_result(pending, status)
        pending.rows += 1
        return False

    def _end_of_result(self, pending: _Pending, status: int) -> bool:
        pending.status = status
        if status & SERVER_MORE_RESULTS_EXISTS:
            pending.state = "first"
            return False
        return True

    def _tag(self, pending: _Pending, affected: int) -> None:
        verbs = _verbs(pending.request)
        verb = verbs[len(pending.tags)] if len(pending.tags) < len(verbs) else "OK"
        dml = verb in ("INSERT", "UPDATE", "DELETE", "REPLACE")
        pending.tags.append(f"{verb} {affected}" if dml else verb)

    def _read_prepare(self, pending: _Pending, payload: bytes) -> bool:
        if pending.state == "first":
            if payload[:1] == b"\xff":
                pending.error = _error_of(payload)
                return True
            statement_id, columns, params = struct.unpack_from("<IHH", payload, 1)
            with self.changed:
                self.prepared[statement_id] = _Prepared(pending.sql, params)
            eof = 0 if self.deprecate_eof else 1
            pending.left = (params + eof if params else 0) + (columns + eof if columns else 0)
            pending.state = "definitions"
            return pending.left == 0
        pending.left -= 1
        return pending.left <= 0


def address_of(url: URL) -> Address:
    """The client library's rule: ``?unix_socket=/run/mysqld/mysqld.sock`` wins over the
    host; otherwise the host (``localhost`` included: the proxy speaks TCP) and port."""
    socket_path = url.query.get("unix_socket")
    if isinstance(socket_path, str) and socket_path:
        return socket_path
    return (url.host or "127.0.0.1", int(url.port or 3306))


PROTOCOL = WireProtocol("mysql", 3306, MySQLWire, address_of)
