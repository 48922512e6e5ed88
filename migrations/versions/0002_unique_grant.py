"""the fix as it ships: UNIQUE (order_id, campaign_id) on a table that may hold duplicates

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

A live table that lived with the bug holds duplicate grants, and a unique index
cannot be built over them. So: move every grant but the earliest per (order,
campaign) into ``red_packet_duplicates`` (all columns kept, plus when it moved),
build the unique index CONCURRENTLY (no long write lock on a live table), then
attach it as the constraint. The buggy service may still insert a duplicate while
the index builds; the build then fails and leaves an invalid index, so the move
and the build are retried a few times. The old non-unique index is redundant once
the constraint exists and is dropped. The downgrade moves the audited rows back,
so a round trip loses nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.exc import IntegrityError

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNIQUE = "uq_red_packets_order_campaign"
BUILD_ATTEMPTS = 5

DROP_INVALID_UNIQUE = "DROP INDEX IF EXISTS uq_red_packets_order_campaign"
BUILD_UNIQUE = (
    "CREATE UNIQUE INDEX CONCURRENTLY uq_red_packets_order_campaign"
    " ON red_packets (order_id, campaign_id)"
)
ATTACH_UNIQUE = (
    "ALTER TABLE red_packets ADD CONSTRAINT uq_red_packets_order_campaign"
    " UNIQUE USING INDEX uq_red_packets_order_campaign"
)
DROP_OLD_INDEX = "DROP INDEX CONCURRENTLY IF EXISTS ix_red_packets_order_campaign"
RESTORE_OLD_INDEX = (
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_red_packets_order_campaign"
    " ON red_packets (order_id, campaign_id)"
)
MOVE_DUPLICATES = sa.text(
    """
    WITH ranked AS (
        SELECT id, row_number() OVER (
            PARTITION BY order_id, campaign_id ORDER BY created_at, id
        ) AS position
        FROM red_packets
    ), moved AS (
        DELETE FROM red_packets AS r USING ranked
        WHERE r.id = ranked.id AND ranked.position > 1
        RETURNING r.id, r.order_id, r.campaign_id, r.amount, r.created_at
    )
    INSERT INTO red_packet_duplicates (id, order_id, campaign_id, amount, created_at)
    SELECT id, order_id, campaign_id, amount, created_at FROM moved
    """
)


def upgrade() -> None:
    op.create_table(
        "red_packet_duplicates",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("order_id", sa.BigInteger, nullable=False),
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("amount", sa.Numeric(12, 2), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "moved_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    with op.get_context().autocommit_block():
        for attempt in range(1, BUILD_ATTEMPTS + 1):
            op.execute(MOVE_DUPLICATES)
            op.execute(DROP_INVALID_UNIQUE)  # an invalid leftover of a failed build
            try:
                op.execute(BUILD_UNIQUE)
                break
            except IntegrityError:
                if attempt == BUILD_ATTEMPTS:
                    raise
        op.execute(ATTACH_UNIQUE)
        op.execute(DROP_OLD_INDEX)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute(RESTORE_OLD_INDEX)
    op.drop_constraint(UNIQUE, "red_packets", type_="unique")
    op.execute(
        "INSERT INTO red_packets (id, order_id, campaign_id, amount, created_at)"
        " OVERRIDING SYSTEM VALUE"
        " SELECT id, order_id, campaign_id, amount, created_at FROM red_packet_duplicates"
    )
    op.drop_table("red_packet_duplicates")
