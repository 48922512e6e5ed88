from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from redpacket.database import migrate
from redpacket.database.backends import Server
from redpacket.database.connect import connect
from redpacket.database.lab import Lab, Schema
from redpacket.database.ownership import OWNER_MARK
from redpacket.engines.postgresql import conninfo
from redpacket.errors import LabError


@pytest.fixture
def foreign_db(
    server: Server, svcconn: psycopg.Connection[tuple[object, ...]], worker_id_suffix: str
) -> Iterator[str]:
    """A database the lab did not create, holding a user's own ``orders`` table."""
    name = f"shop_{worker_id_suffix}"
    svcconn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    svcconn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with connect(server.url.set(database=name), autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO orders VALUES (1, 'a real customer order')")
    yield name
    svcconn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _foreign_rows(server: Server, name: str) -> list[tuple[object, ...]]:
    with connect(server.url.set(database=name)) as conn:
        return list(conn.execute("SELECT * FROM orders").fetchall())


@pytest.mark.parametrize("action", ["ensure", "drop", "reset", "require"])
def test_lab_refuses_a_database_it_did_not_create(
    server: Server, foreign_db: str, action: str
) -> None:
    lab = Lab(server, foreign_db)
    call = (lambda: lab.reset(5)) if action == "reset" else getattr(lab, action)
    with pytest.raises(LabError, match="was not created by redpacket; refusing"):
        call()
    assert _foreign_rows(server, foreign_db) == [(1, "a real customer order")]


def test_migrate_refuses_a_foreign_database(server: Server, foreign_db: str) -> None:
    with pytest.raises(LabError, match="not created by redpacket"):
        migrate.migrate(Lab(server, foreign_db))
    assert _foreign_rows(server, foreign_db) == [(1, "a real customer order")]


def test_lab_creates_marks_and_drops_only_its_own_database(
    server: Server, svcconn: psycopg.Connection[tuple[object, ...]], worker_id_suffix: str
) -> None:
    lab = Lab(server, f"redpacket_owned_{worker_id_suffix}")
    lab.drop()
    assert lab.ensure() is True
    assert lab.ensure() is False
    row = svcconn.execute(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
        (lab.name,),
    ).fetchone()
    assert row == (OWNER_MARK,)
    assert lab.drop() is True
    assert lab.drop() is False
    assert not lab.exists()


def test_reset_loads_the_orders_into_every_schema(lab: Lab) -> None:
    lab.reset(7)
    for schema in Schema:
        with psycopg.connect(conninfo(lab.url_of(schema))) as conn:
            assert conn.execute("SELECT count(*), min(id), max(id) FROM orders").fetchone() == (
                7,
                1,
                7,
            )
            assert conn.execute("SELECT count(*) FROM red_packets").fetchone() == (0,)


def test_reset_empties_red_packets(lab: Lab) -> None:
    lab.reset(3)
    with psycopg.connect(conninfo(lab.url_of(Schema.UNCONSTRAINED))) as conn:
        conn.execute("INSERT INTO red_packets (order_id, campaign_id, amount) VALUES (1, 'c', 1)")
    lab.reset(3)
    with psycopg.connect(conninfo(lab.url_of(Schema.UNCONSTRAINED))) as conn:
        assert conn.execute("SELECT count(*) FROM red_packets").fetchone() == (0,)


def test_reset_before_migrate_says_what_to_run(server: Server, worker_id_suffix: str) -> None:
    lab = Lab(server, f"redpacket_unmigrated_{worker_id_suffix}")
    lab.drop()
    lab.ensure()
    try:
        with pytest.raises(LabError, match=f"run `redpacket --lab-database {lab.name} migrate`"):
            lab.reset(3)
    finally:
        lab.drop()
