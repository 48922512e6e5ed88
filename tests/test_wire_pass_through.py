"""The proxy's pass-through mode (``redpacket proxy --pass-through``): after start-up a
connection's bytes go through one event loop unread. What a load test relies on: every
byte arrives in order, a slow reader holds the server back instead of the proxy's memory,
hang-ups on either side end the other, and nothing is left open on the server."""

from __future__ import annotations

import hashlib
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import psycopg
import pytest

from redpacket.database.backends import Server
from redpacket.database.url import URL
from redpacket.database.urls import engine_of
from redpacket.engines.postgresql import conninfo
from redpacket.wire.link import Link, PassThrough
from redpacket.wire.proxy import Proxy
from tests.wire_support import mysql_connect, seed_database_mysql, seed_database_pg

BIG = "SELECT repeat(md5(i::text), 64) AS v FROM generate_series(1, 40000) AS i"  # 82 MB
BIG_MYSQL = "SELECT REPEAT(MD5(seq), 64) AS v FROM seq_1_to_20000"  # MariaDB's SEQUENCE
BIG_DIGEST = (  # the same rows' count and the md5 of their values in order, on the server
    "SELECT count(*), md5(string_agg(v, '' ORDER BY i)) FROM (SELECT i,"
    " repeat(md5(i::text), 64) AS v FROM generate_series(1, 40000) AS i) AS big"
)
BIG_MYSQL_DIGEST = (  # GROUP_CONCAT stops at 1 MB: the md5 of the rows' md5s, in order
    "SELECT COUNT(*), MD5(GROUP_CONCAT(MD5(v) ORDER BY seq SEPARATOR '')) FROM"
    " (SELECT seq, REPEAT(MD5(seq), 64) AS v FROM seq_1_to_20000) AS big"
)
T = TypeVar("T")


@pytest.fixture(scope="module")
def pg_db(server: Server, worker_id_suffix: str) -> Iterator[URL]:
    yield from seed_database_pg(server, f"redpacket_pass_{worker_id_suffix}")


@pytest.fixture(scope="module")
def mysql_db(mysql_server: Server, worker_id_suffix: str) -> Iterator[URL]:
    yield from seed_database_mysql(mysql_server, f"redpacket_pass_{worker_id_suffix}")


class Ends(PassThrough):
    """Counts the links the proxy says have ended."""

    def __init__(self) -> None:
        self.ended: list[Link] = []

    def closed(self, link: Link) -> None:
        self.ended.append(link)


def pass_through(url: URL) -> tuple[Proxy, Ends]:
    proxy = Proxy(url, engine_of(url).wire_protocol(), pass_through=True).start()
    ends = Ends()
    proxy.listener = ends
    return proxy, ends


def sessions_named(url: URL, application: str) -> list[tuple[int, str, str | None]]:
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid, state, wait_event FROM pg_stat_activity WHERE application_name = %s",
            (application,),
        ).fetchall()
    return [(int(pid), str(state), wait) for pid, state, wait in rows]


def until(predicate: Callable[[], T], what: str, timeout: float = 20.0) -> T:
    """Polls the server's own view until it says ``what``: no timer stands for an event."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"the server never showed {what}")


def test_queries_go_through_unread_and_the_session_is_known(pg_db: URL) -> None:
    proxy, ends = pass_through(pg_db)
    try:
        with psycopg.connect(conninfo(proxy.url()), autocommit=True) as conn:
            (pid,) = conn.execute("SELECT pg_backend_pid()").fetchone() or (None,)
            assert conn.execute("SELECT %s::int + 1", (41,)).fetchone() == (42,)
            with pytest.raises(psycopg.errors.UniqueViolation):
                conn.execute("INSERT INTO orders VALUES (7)")
            assert conn.execute("SELECT count(*) FROM orders").fetchone() == (1,)
        assert [link.session_id for link in proxy.links] == [pid]
        until(lambda: ends.ended, "the link's end")
        assert proxy.links[0].closed
    finally:
        proxy.close()


def _startup(sock: socket.socket, url: URL, application: str) -> None:
    """A client that speaks the protocol by hand, so it can stop reading at will."""
    params = b"".join(
        key + b"\0" + value.encode() + b"\0"
        for key, value in (
            (b"user", url.username or "postgres"),
            (b"database", str(url.database)),
            (b"application_name", application),
        )
    )
    body = struct.pack("!i", 196608) + params + b"\0"
    sock.sendall(struct.pack("!i", len(body) + 4) + body)
    seen = b""
    while not seen.endswith(b"Z\x00\x00\x00\x05I"):
        part = sock.recv(65536)
        assert part, "the proxy hung up during start-up"
        seen += part


def test_a_reader_that_stops_holds_the_server_back_and_gets_every_byte(
    pg_db: URL, worker_id_suffix: str
) -> None:
    """82 MB asked (more than the sockets between can hold), nothing read: were the proxy
    to read on regardless, the server would finish sending into the proxy's memory; it
    must instead wait on its socket (its own wait_event ClientWrite), then the client
    reads all of it, byte for byte."""
    application = f"redpacket-slow-reader-{worker_id_suffix}"
    proxy, _ = pass_through(pg_db)
    try:
        with socket.create_connection((proxy.host, proxy.port)) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)  # > a few MSS
            _startup(sock, pg_db, application)
            sql = BIG.encode() + b"\0"
            sock.sendall(b"Q" + struct.pack("!i", len(sql) + 4) + sql)
            held = until(
                lambda: [s for s in sessions_named(pg_db, application) if s[2] == "ClientWrite"],
                "the query waiting to write to its client",
            )
            assert held[0][1] == "active"
            received = bytearray()
            while not received.endswith(b"Z\x00\x00\x00\x05I"):
                part = sock.recv(1 << 20)
                assert part, "the proxy hung up mid-result"
                received += part
        rows, digest = _rows_and_digest(bytes(received))
        with psycopg.connect(conninfo(pg_db)) as conn:
            expected = conn.execute(BIG_DIGEST).fetchone()
        assert (rows, digest) == expected
    finally:
        proxy.close()


def _rows_and_digest(answer: bytes) -> tuple[int, str]:
    """The DataRow messages of a simple query's answer: how many, and the md5 of their
    one column's values in order."""
    at, rows, digest = 0, 0, hashlib.md5()
    while at < len(answer):
        kind = answer[at : at + 1]
        (length,) = struct.unpack("!i", answer[at + 1 : at + 5])
        if kind == b"D":
            (size,) = struct.unpack("!i", answer[at + 7 : at + 11])
            digest.update(answer[at + 11 : at + 11 + size])
            rows += 1
        at += 1 + length
    return rows, digest.hexdigest()


def test_a_server_that_ends_the_session_is_heard_by_the_client(pg_db: URL) -> None:
    proxy, ends = pass_through(pg_db)
    try:
        conn = psycopg.connect(conninfo(proxy.url()), autocommit=True)
        (pid,) = conn.execute("SELECT pg_backend_pid()").fetchone() or (None,)
        with psycopg.connect(conninfo(pg_db), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(psycopg.OperationalError, match="terminating connection"):
            conn.execute("SELECT 1")
        conn.close()
        until(lambda: ends.ended, "the link's end")
    finally:
        proxy.close()


def test_closing_the_proxy_ends_every_session_on_the_server(
    pg_db: URL, worker_id_suffix: str
) -> None:
    application = f"redpacket-pass-close-{worker_id_suffix}"
    proxy, ends = pass_through(pg_db)
    clients = [
        psycopg.connect(conninfo(proxy.url()), autocommit=True, application_name=application)
        for _ in range(5)
    ]
    try:
        assert len(sessions_named(pg_db, application)) == 5
        proxy.close()
        until(lambda: not sessions_named(pg_db, application), "the sessions gone")
        assert len(ends.ended) == 5
        with pytest.raises(psycopg.OperationalError):
            clients[0].execute("SELECT 1")
    finally:
        for client in clients:
            client.close()


def test_a_client_that_hangs_up_leaves_no_session(pg_db: URL, worker_id_suffix: str) -> None:
    application = f"redpacket-pass-hangup-{worker_id_suffix}"
    proxy, ends = pass_through(pg_db)
    try:
        for _ in range(3):
            with psycopg.connect(conninfo(proxy.url()), application_name=application) as conn:
                conn.execute("SELECT 1")  # in a transaction: the client drops it unended
        until(lambda: not sessions_named(pg_db, application), "the sessions gone")
        until(lambda: len(ends.ended) == 3, "three ends")
    finally:
        proxy.close()


def test_mysql_through_pass_through_with_a_big_result(mysql_db: URL) -> None:
    proxy, ends = pass_through(mysql_db)
    try:
        with mysql_connect(proxy.url(), autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("SELECT CONNECTION_ID()")
            (session,) = cur.fetchone() or (None,)
            cur.execute(BIG_MYSQL)
            rows = [row[0] for row in cur.fetchall()]
            cur.execute(BIG_MYSQL_DIGEST)
            counted, digest = cur.fetchone() or (None, None)
        assert [link.session_id for link in proxy.links] == [session]
        assert len(rows) == counted == 20000
        mine = "".join(hashlib.md5(row.encode()).hexdigest() for row in rows)
        assert hashlib.md5(mine.encode()).hexdigest() == digest
        until(lambda: ends.ended, "the link's end")
    finally:
        proxy.close()


def test_the_proxy_command_passes_through_and_stops_on_ctrl_c(pg_db: URL) -> None:
    command = [sys.executable, "-m", "redpacket", "proxy", "--pass-through",
               "--upstream", pg_db.render_as_string(hide_password=False)]  # fmt: skip
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as process:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert "(pass-through: nothing traced)" in line, line
        url = line.split(" at ", 1)[1].split(" (pass-through")[0]
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM orders").fetchone() == (1,)
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0
        assert process.stderr.read() == ""
