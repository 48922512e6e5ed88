from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from redpacket.database import migrate
from redpacket.database.backends import Server
from redpacket.database.lab import Lab, Schema
from redpacket.engines.postgresql import conninfo
from redpacket.model import metadata


@pytest.fixture
def scratch(server: Server, worker_id_suffix: str) -> Iterator[Lab]:
    """An empty lab database of its own, for walking migrations up and down."""
    lab = Lab(server, f"redpacket_scratch_{worker_id_suffix}")
    lab.drop()
    lab.ensure()
    yield lab
    lab.drop()


def _diff(lab: Lab, schema: Schema) -> list[str]:
    with lab.sqlalchemy(schema).connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return sorted(_describe(op) for op in compare_metadata(context, metadata))


def _describe(op: object) -> str:
    if isinstance(op, list):  # column-level changes come as lists of tuples
        return " ".join(_describe(item) for item in op)
    if isinstance(op, tuple):
        kind, obj = op[0], op[1] if len(op) > 1 else None
        name = getattr(obj, "name", None)
        if kind in ("add_table", "remove_table"):
            return f"{kind} {name}"
        return f"{kind} {name}"
    return repr(op)


def test_models_match_the_head_revision(scratch: Lab) -> None:
    migrate.upgrade(scratch, Schema.CONSTRAINED, "head")
    assert _diff(scratch, Schema.CONSTRAINED) == []


def test_revision_0001_is_the_unconstrained_schema_of_the_bug(scratch: Lab) -> None:
    migrate.upgrade(scratch, Schema.UNCONSTRAINED, "0001")
    assert _diff(scratch, Schema.UNCONSTRAINED) == [
        "add_constraint uq_red_packets_order_campaign",
        "add_table red_packet_duplicates",
        "remove_index ix_red_packets_order_campaign",
    ]


def _tables(lab: Lab, schema: Schema) -> set[str]:
    with psycopg.connect(conninfo(lab.url_of(schema))) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema.value,)
        ).fetchall()
    return {str(row[0]) for row in rows}


def test_migrations_go_down_and_up_again(scratch: Lab) -> None:
    schema = Schema.CONSTRAINED
    migrate.upgrade(scratch, schema, "head")
    assert migrate.current_revision(scratch, schema) == "0002"
    migrate.downgrade(scratch, schema, "0001")
    assert migrate.current_revision(scratch, schema) == "0001"
    assert "red_packet_duplicates" not in _tables(scratch, schema)
    migrate.downgrade(scratch, schema, "base")
    assert _tables(scratch, schema) == {"alembic_version"}
    migrate.upgrade(scratch, schema, "head")
    assert _tables(scratch, schema) >= {"orders", "red_packets", "red_packet_duplicates"}
    assert _diff(scratch, schema) == []


GRANTS = [  # (order, campaign, amount), in insertion order: earliest first per pair
    (1, "a", 1),
    (1, "a", 2),
    (2, "a", 3),
    (1, "a", 4),
    (2, "b", 5),
    (2, "a", 6),
    (3, "a", 7),
]


def test_upgrade_moves_duplicate_grants_to_the_audit_table(scratch: Lab) -> None:
    schema = Schema.CONSTRAINED
    migrate.upgrade(scratch, schema, "0001")
    scratch_conninfo = conninfo(scratch.url_of(schema))
    with psycopg.connect(scratch_conninfo) as conn:
        conn.execute(
            "INSERT INTO orders (id, user_id, amount) SELECT g, g, 10 FROM generate_series(1, 3) g"
        )
        for order_id, campaign, amount in GRANTS:
            conn.execute(
                "INSERT INTO red_packets (order_id, campaign_id, amount) VALUES (%s, %s, %s)",
                (order_id, campaign, amount),
            )
        before = conn.execute(
            "SELECT id, order_id, campaign_id, amount, created_at FROM red_packets ORDER BY id"
        ).fetchall()

    migrate.upgrade(scratch, schema, "head")
    with psycopg.connect(scratch_conninfo) as conn:
        kept = conn.execute(
            "SELECT id, order_id, campaign_id, amount, created_at FROM red_packets ORDER BY id"
        ).fetchall()
        moved = conn.execute(
            "SELECT id, order_id, campaign_id, amount, created_at, moved_at IS NOT NULL"
            " FROM red_packet_duplicates ORDER BY id"
        ).fetchall()
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "INSERT INTO red_packets (order_id, campaign_id, amount) VALUES (1, 'a', 9)"
            )
    # exactly the earliest grant per (order, campaign) remains
    assert [(row[1], row[2], int(row[3])) for row in kept] == [
        (1, "a", 1),
        (2, "a", 3),
        (2, "b", 5),
        (3, "a", 7),
    ]
    # the others are in the audit table, every column intact
    assert [row[:5] for row in moved] == [row for row in before if row not in kept]
    assert all(row[5] for row in moved)
    assert len(kept) + len(moved) == len(before) == len(GRANTS)

    migrate.downgrade(scratch, schema, "0001")
    with psycopg.connect(scratch_conninfo) as conn:
        restored = conn.execute(
            "SELECT id, order_id, campaign_id, amount, created_at FROM red_packets ORDER BY id"
        ).fetchall()
    assert restored == before

    migrate.upgrade(scratch, schema, "head")
    with psycopg.connect(scratch_conninfo) as conn:
        again = conn.execute("SELECT count(*) FROM red_packets").fetchone()
        audited = conn.execute("SELECT count(*) FROM red_packet_duplicates").fetchone()
    assert (again, audited) == ((4,), (3,))
