"""PostgreSQL's frontend/backend protocol (version 3), as the proxy relays it.

Start-up and authentication pass through unchanged, message by message (trust, md5,
SCRAM: the proxy never reads a password): an ``SSLRequest`` or ``GSSENCRequest`` is
answered 'N' so a client at ``sslmode=prefer`` goes on in plain text, and a
``CancelRequest`` is relayed to the server on a connection of its own. The server's
``BackendKeyData`` names the session (its pid), so waits are seen from the server
(``pg_blocking_pids``), as everywhere in the lab.

A request is everything the client sends up to a ``Query`` or a ``Sync``; its answer
ends at its ``ReadyForQuery``, whose status byte says idle, in a transaction or in a
failed one. A client that pipelines (sends the next request before the last one's
answer) has each request held in turn and each answer heard in order. A ``Flush``
lets a request go before its ``Sync``; what follows it up to the Sync is part of that
request (asyncpg's Parse, Describe, Flush, then Bind, Execute, Sync: one step, held at
the Parse, which takes the snapshot), except when the part before the Flush carried
no statement at all: then the Bind starts a round trip of its own. A Flush of nothing
new (psycopg's, after a pipeline's Sync) is no request.
Messages of a request in flight (COPY's data) pass at once.
"""

from __future__ import annotations

import struct
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

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
    connect_to,
    relay_connection,
)

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
PROTOCOL_3 = 196608
_NEEDS_ANSWER = {3, 5, 7, 8, 10, 11}  # cleartext, md5, GSS, GSS continue, SASL, SASL continue
_ENDS_REQUEST = {b"Q", b"S", b"X", b"F"}  # F: FunctionCall, answered by a ReadyForQuery


def _exact(reader: BinaryIO, n: int) -> bytes:
    data = reader.read(n)
    if data is None or len(data) < n:
        raise Closed
    return data


def read_startup(reader: BinaryIO) -> bytes:
    head = _exact(reader, 4)
    (length,) = struct.unpack("!i", head)
    if not 8 <= length <= 10_000:
        raise Closed
    return head + _exact(reader, length - 4)


def read_message(reader: BinaryIO) -> tuple[bytes, bytes]:
    """(type byte, the whole message as sent)."""
    head = _exact(reader, 5)
    (length,) = struct.unpack("!i", head[1:])
    if length < 4:
        raise Closed
    return head[:1], head + _exact(reader, length - 4)


def _cstrings(data: bytes) -> list[str]:
    return [part.decode("utf-8", "replace") for part in data.split(b"\0")]


def _error_fields(message: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    body = message[5:]
    while body and body[:1] != b"\0":
        end = body.index(b"\0")
        fields[body[:1].decode()] = body[1:end].decode("utf-8", "replace")
        body = body[end + 1 :]
    return fields


_BINARY_INTEGERS = {20: "!q", 21: "!h", 23: "!i", 26: "!I"}  # int8, int2, int4, oid
_BINARY_FLOATS = {700: "!f", 701: "!d"}
_BINARY_TEXT = {25, 1043, 1042, 19}  # text, varchar, bpchar, name


def _value(data: bytes | None, text_format: bool, type_oid: int = 0) -> Any:
    """A bound parameter as the server reads it: text as sent; binary decoded where the
    client declared its type in Parse (pgjdbc's setInt), else said by its size."""
    if data is None:
        return None
    if text_format or type_oid in _BINARY_TEXT:
        return data.decode("utf-8", "replace")
    code = _BINARY_INTEGERS.get(type_oid) or _BINARY_FLOATS.get(type_oid)
    if code is not None and len(data) == struct.calcsize(code):
        return struct.unpack(code, data)[0]
    if type_oid == 16 and len(data) == 1:
        return data != b"\0"
    return f"<{len(data)} bytes, binary>"


@dataclass
class _Parsed:
    """What one request says, message by message."""

    statements: list[str] = field(default_factory=list)
    params: list[tuple[Any, ...]] = field(default_factory=list)
    closes: bool = False
    syncs: int = 0  # ReadyForQuery answers it will get
    parsed: list[str] = field(default_factory=list)  # SQL of its Parse messages

    def request(self) -> Request:
        """A request that parses but binds nothing is still that statement's step: inside a
        transaction block, PostgreSQL's Parse of a query on a table takes the transaction's
        snapshot (exec_parse_message), so at repeatable read it fixes what the statement
        will see. asyncpg sends Parse, Describe, Flush and waits, then Bind, Execute, Sync:
        the step is held at the Parse, and its Bind follows as part of it."""
        statements = self.statements or self.parsed
        params = self.params or [() for _ in statements]
        return Request(tuple(statements), tuple(params), self.closes)


class PostgresWire:
    """The protocol, for one proxy: the relay of each connection runs in two threads."""

    name = "postgresql"

    def __init__(self, upstream: Address) -> None:
        self.upstream = upstream

    # -- start-up ------------------------------------------------------------------------

    def serve(
        self, link: Link, listener: Listener, on_note: Callable[[str], None],
        bytes_only: Adopter | None = None,
    ) -> None:  # fmt: skip
        """Relay one connection from start-up to its end."""

        def start(client_in: BinaryIO, upstream_in: BinaryIO) -> _Relay | None:
            if not self._start(link, client_in, upstream_in, on_note):
                return None
            return _Relay(link, listener, client_in, upstream_in)

        relay_connection(link, listener, start, bytes_only)

    def _start(
        self, link: Link, client_in: BinaryIO, upstream_in: BinaryIO, on_note: Callable[[str], None]
    ) -> bool:
        asked_tls = False
        while True:
            try:
                packet = read_startup(client_in)
            except Closed:
                if asked_tls:
                    on_note(
                        f"connection {link.number}: the client asked for TLS and hung up when"
                        " refused; the proxy speaks plain text (use sslmode=prefer or disable)"
                    )
                return False
            (code,) = struct.unpack("!i", packet[4:8])
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                asked_tls = asked_tls or code == SSL_REQUEST
                link.client.sendall(b"N")
                continue
            if code == CANCEL_REQUEST:
                with connect_to(self.upstream, timeout=5) as cancel:
                    cancel.sendall(packet)
                return False
            if code != PROTOCOL_3:
                return False
            break
        link.upstream.sendall(packet)
        while True:
            kind, message = read_message(upstream_in)
            if kind == b"K":
                (link.session_id,) = struct.unpack("!i", message[5:9])
            link.client.sendall(message)
            if kind == b"R" and struct.unpack("!i", message[5:9])[0] in _NEEDS_ANSWER:
                _, reply = read_message(client_in)
                link.upstream.sendall(reply)
            elif kind == b"E":
                return False
            elif kind == b"Z":
                link.in_transaction = message[5:6] != b"I"
                return True


@dataclass
class _InFlight:
    """A request the server has (or is getting), and its answer so far."""

    request: Request
    counted: bool  # the listener hears its answer
    syncs: int  # ReadyForQuery messages still to come for it
    error: tuple[str, str] | None = None
    tags: list[str] = field(default_factory=list)


_COPY_DATA = {b"d", b"c", b"f"}  # CopyData, CopyDone, CopyFail: inside a request's answer


class _Relay:
    """Requests one way, answers the other; the listener hears both in order.

    Requests in flight wait in a queue, oldest first, each answered by its own
    ReadyForQuery messages: a client that sends its next request before the last one's
    answer (psycopg's pipeline after its BEGIN, any pipelining driver) has that request
    held like any other, and each answer is heard as the answer of the request it ends.
    """

    def __init__(
        self, link: Link, listener: Listener, client_in: BinaryIO, upstream_in: BinaryIO
    ) -> None:
        self.link, self.listener = link, listener
        self.client_in, self.upstream_in = client_in, upstream_in
        self.prepared: dict[str, tuple[str, tuple[int, ...]]] = {}  # name -> SQL, param types
        self.changed = threading.Condition()
        self.in_flight: deque[_InFlight] = deque()

    def requests(self) -> None:
        pending: list[bytes] = []
        parsed = _Parsed()
        flushed: _InFlight | None = None  # let go at a Flush; the rest follows up to its Sync
        while True:
            kind, message = read_message(self.client_in)
            if kind in _COPY_DATA and not pending and flushed is None:
                self.link.upstream.sendall(message)  # COPY's data, for the request in flight
                continue
            if kind == b"H" and not pending and flushed is None:
                # a Flush of nothing new (psycopg's after a pipeline's Sync) asks for the
                # answers already owed: no request of its own, the next one is held as usual
                self.link.upstream.sendall(message)
                continue
            if flushed is not None and kind == b"B" and not flushed.request.statements:
                # the part before the Flush carried no statement (a Describe): the Bind
                # starts a round trip of its own, whose Sync answers both
                with self.changed:
                    self.in_flight.remove(flushed)
                flushed, parsed = None, _Parsed()
            self._read_into(parsed, kind, message)
            if flushed is not None:  # the rest of a request already let go
                if kind in (b"B", b"Q") and not flushed.counted:
                    # what went before the Flush was housekeeping, what follows may not be:
                    # the listener is asked again, and may hold it here
                    flushed.counted = self.listener.before(self.link, parsed.request())
                with self.changed:
                    if kind in (b"B", b"Q"):  # what the server is now asked too: its answer says so
                        flushed.request = parsed.request()
                    if kind in _ENDS_REQUEST:  # counted before it goes: its answer can be quicker
                        flushed.syncs += parsed.syncs
                self.link.upstream.sendall(message)
                if kind in _ENDS_REQUEST:
                    flushed, parsed = None, _Parsed()
                if kind == b"X":
                    return
                continue
            pending.append(message)
            if kind not in _ENDS_REQUEST and kind != b"H":
                continue
            request = parsed.request()
            counted = self.listener.before(self.link, request)
            entry = _InFlight(request, counted, parsed.syncs)
            with self.changed:
                self.in_flight.append(entry)
            self.link.upstream.sendall(b"".join(pending))
            pending = []
            if kind == b"H":  # answers come now; its Sync ends it
                flushed = entry
            else:
                parsed = _Parsed()
            if kind == b"X":
                return

    def _read_into(self, parsed: _Parsed, kind: bytes, message: bytes) -> None:
        body = message[5:]
        if kind == b"Q":
            parsed.statements.append(body.rstrip(b"\0").decode("utf-8", "replace"))
            parsed.params.append(())
            parsed.syncs += 1
        elif kind == b"P":
            name, sql = _cstrings(body)[:2]
            parsed.parsed.append(sql)
            at = body.index(b"\0", body.index(b"\0") + 1) + 1
            (count,) = struct.unpack("!h", body[at : at + 2])
            oids = struct.unpack(f"!{count}I", body[at + 2 : at + 2 + 4 * count])
            self.prepared[name] = (sql, oids)
        elif kind == b"B":
            parsed.statements.append(self._bound(body, parsed))
        elif kind in (b"S", b"F"):
            parsed.syncs += 1
        elif kind == b"X":
            parsed.closes = True

    def _bound(self, body: bytes, parsed: _Parsed) -> str:
        portal_end = body.index(b"\0")
        statement_end = body.index(b"\0", portal_end + 1)
        name = body[portal_end + 1 : statement_end].decode("utf-8", "replace")
        sql, oids = self.prepared.get(name, (f"<prepared statement {name!r}>", ()))
        at = statement_end + 1
        (formats,) = struct.unpack("!h", body[at : at + 2])
        codes = struct.unpack(f"!{formats}h", body[at + 2 : at + 2 + 2 * formats])
        at += 2 + 2 * formats
        (count,) = struct.unpack("!h", body[at : at + 2])
        at += 2
        values = []
        for i in range(count):
            (length,) = struct.unpack("!i", body[at : at + 4])
            at += 4
            data = None if length < 0 else body[at : at + length]
            at += max(length, 0)
            code = codes[i] if len(codes) > 1 else (codes[0] if codes else 0)
            values.append(_value(data, code == 0, oids[i] if i < len(oids) else 0))
        parsed.params.append(tuple(values))
        return sql

    def answers(self) -> None:
        try:
            while True:
                kind, message = read_message(self.upstream_in)
                if kind == b"E":
                    fields = _error_fields(message)
                    with self.changed:
                        head = self.in_flight[0] if self.in_flight else None
                        if head is not None and head.error is None:
                            head.error = (fields.get("C", "?"), fields.get("M", ""))
                elif kind == b"C":
                    with self.changed:
                        if self.in_flight:
                            tag = message[5:].rstrip(b"\0").decode("utf-8", "replace")
                            self.in_flight[0].tags.append(tag)
                elif kind == b"Z":
                    self._ready(message[5:6])
                self.link.client.sendall(message)
        except (Closed, OSError):
            self.link.close()

    def _ready(self, status: bytes) -> None:
        with self.changed:
            in_transaction = status != b"I"
            self.link.in_transaction = in_transaction
            if not self.in_flight:
                return
            head = self.in_flight[0]
            head.syncs -= 1
            if head.syncs > 0:
                return
            self.in_flight.popleft()
        if head.counted:  # before the client hears it: recorded first
            answer = Answer(head.error, tuple(head.tags), in_transaction)
            self.listener.after(self.link, head.request, answer)


def address_of(url: URL) -> Address:
    """libpq's rules: a ``host`` that starts with a slash is the socket's folder, in the
    URL's query (``postgresql://u@/db?host=/run/postgresql``, as the embedded server's
    URL is), and the socket is named after the port, ``.s.PGSQL.5432``."""
    query_host, query_port = url.query.get("host"), url.query.get("port")
    port = int(url.port or (query_port if isinstance(query_port, str) else None) or 5432)
    if isinstance(query_host, str) and query_host.startswith("/"):
        return f"{query_host.rstrip('/')}/.s.PGSQL.{port}"
    host = url.host or (query_host if isinstance(query_host, str) and query_host else None)
    return (host or "127.0.0.1", port)


PROTOCOL = WireProtocol("postgresql", 5432, PostgresWire, address_of)
