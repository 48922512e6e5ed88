"""orders and red_packets, as the buggy service had them: no unique grant constraint

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _insert_time() -> sa.sql.elements.ColumnElement[sa.DateTime]:
    """When each grant was inserted: PostgreSQL's clock (now() is the transaction's start)."""
    if op.get_bind().dialect.name == "postgresql":
        return sa.func.clock_timestamp()
    return sa.func.now()


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("amount", sa.Numeric(12, 2), nullable=False),
        sa.Column("red_packet_granted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("version", sa.Integer, nullable=False, server_default="0"),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_table(
        "red_packets",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("order_id", sa.BigInteger, sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("amount", sa.Numeric(12, 2), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=_insert_time(),
        ),
    )
    # The index the service had: it makes the existence check fast, and nothing more.
    op.create_index("ix_red_packets_order_campaign", "red_packets", ["order_id", "campaign_id"])


def downgrade() -> None:
    op.drop_index("ix_red_packets_order_campaign", table_name="red_packets")
    op.drop_table("red_packets")
    op.drop_table("orders")
