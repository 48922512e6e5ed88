"""What the wire tests share: the seed's database on each server, and a listener that
records what the proxy heard."""

from __future__ import annotations

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
    with psycopg.connect(conninfo(server.url), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


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
    yield server.url.set(database=name)
    with mysql_connect(server.url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}")


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
