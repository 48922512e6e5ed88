from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from redpacket.database import migrate
from redpacket.database.backends import Server
from redpacket.database.lab import Lab, Schema
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
    with lab.engine(schema).connect() as conn:
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
    with psycopg.connect(lab.conninfo(schema)) as conn:
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
