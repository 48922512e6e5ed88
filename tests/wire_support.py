"""What the wire tests share: the seed's database on each server, and a listener that
records what the proxy heard."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pymysql

from redpacket.database.backends import Server
from redpacket.database.url import URL
from redpacket.database.urls import engine_of
from redpacket.engines.postgresql import conninfo
from redpacket.wire.link import Answer, Link, PassThrough, Request
from redpacket.wire.proxy import Proxy


def mysql_connect(url: URL, **options: Any) -> pymysql.Connection[Any]:
    return pymysql.connect(
        host=url.host, port=int(url.port or 3306), user=url.username or "root",
        password=url.password or "", database=url.database, **options,
    )  # fmt: skip


PG_SESSIONS = (
    "SELECT coalesce(application_name, '') || ' ' || coalesce(state, '') || ': '"
    " || coalesce(query, '') FROM pg_stat_activity"
    " WHERE datname = %s AND pid <> pg_backend_pid()"
)
MYSQL_SESSIONS = (
    "SELECT concat(user, '@', host, ' ', command, ': ', coalesce(info, ''))"
    " FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()"
)


def sessions_left(url: URL, within_s: float = 10.0) -> list[str]:
    """The sessions still open on ``url``'s database, from the server's own view. A
    backend ends a moment after its client hangs up, so the server is asked again until
    none is left or ``within_s`` has passed: a half-open session stays in the answer."""
    deadline = time.monotonic() + within_s
    while True:
        if engine_of(url).name == "postgresql":
            with psycopg.connect(conninfo(url), autocommit=True) as conn:
                rows = conn.execute(PG_SESSIONS, (url.database,)).fetchall()
        else:
            with mysql_connect(url, autocommit=True) as conn, conn.cursor() as cursor:
                cursor.execute(MYSQL_SESSIONS, (url.database,))
                rows = list(cursor.fetchall())
        left = [str(row[0]) for row in rows]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)  # waiting for backends to exit, as seen from the server


def seed_database_pg(server: Server, name: str) -> Iterator[URL]:
    """A database ``name`` with the seed's two tables and order 7; dropped afterwards."""
    with psycopg.connect(conninfo(server.url), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    url = server.url.set(database=name)
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY)")
        conn.execute("CREATE TABLE red_packets (id serial PRIMARY KEY, order_id int NOT NULL)")
        conn.execute("INSERT INTO orders VALUES (7)")
    yield url
    left = sessions_left(url)
    with psycopg.connect(conninfo(server.url), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    assert left == [], f"sessions left open on {name}: {left}"


def seed_database_mysql(server: Server, name: str) -> Iterator[URL]:
    """The same on a MySQL-family server."""
    with mysql_connect(server.url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}")
        cur.execute(f"CREATE DATABASE {name}")
        cur.execute(f"USE {name}")
        cur.execute("CREATE TABLE orders (id int PRIMARY KEY)")
        cur.execute("CREATE TABLE red_packets (id int AUTO_INCREMENT PRIMARY KEY,"
                    " order_id int NOT NULL)")  # fmt: skip
        cur.execute("INSERT INTO orders VALUES (7)")
    url = server.url.set(database=name)
    yield url
    left = sessions_left(url)
    with mysql_connect(server.url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}")
    assert left == [], f"sessions left open on {name}: {left}"


class Heard(PassThrough):
    """Records what the proxy saw, holding nothing."""

    def __init__(self) -> None:
        self.requests: list[tuple[Link, Request]] = []
        self.answers: list[Answer] = []

    def before(self, link: Link, request: Request) -> bool:
        self.requests.append((link, request))
        return True

    def after(self, link: Link, request: Request, answer: Answer) -> None:
        self.answers.append(answer)


def proxied(url: URL) -> tuple[Proxy, Heard]:
    """A proxy in front of ``url`` (its engine's protocol), with a Heard listening."""
    proxy = Proxy(url, engine_of(url).wire_protocol()).start()
    heard = Heard()
    proxy.listener = heard
    return proxy, heard
