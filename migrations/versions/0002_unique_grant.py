"""the fix as it ships: UNIQUE (order_id, campaign_id) on a table that may hold duplicates

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

A live table that lived with the bug holds duplicate grants, and a unique index
cannot be built over them. So: move every grant but the earliest per (order,
campaign) into ``red_packet_duplicates`` (all columns kept, plus when it moved),
then build the unique index online — PostgreSQL: CREATE UNIQUE INDEX CONCURRENTLY,
then attach it as the constraint; MySQL: ALTER TABLE ... ADD UNIQUE KEY with
ALGORITHM=INPLACE, LOCK=NONE — so writes go on while it builds. The buggy service
may still insert a duplicate meanwhile; the build then fails, so the move and the
build are retried a few times. The old non-unique index is redundant once the key
exists and is dropped. The downgrade moves the audited rows back, so a round trip
loses nothing.
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

COPY_DUPLICATES = sa.text(
    "INSERT INTO red_packet_duplicates (id, order_id, campaign_id, amount, created_at)"
    " SELECT r.id, r.order_id, r.campaign_id, r.amount, r.created_at FROM red_packets r"
    " JOIN (SELECT id, row_number() OVER ("
    "   PARTITION BY order_id, campaign_id ORDER BY created_at, id) AS position"
    " FROM red_packets) ranked ON ranked.id = r.id WHERE ranked.position > 1"
)
DELETE_COPIED = sa.text(
    "DELETE FROM red_packets WHERE id IN (SELECT id FROM red_packet_duplicates)"
)
# Per dialect: (drop a leftover of a failed build, build online, after the build) and
# (restore the old index, drop the key) for the downgrade.
BUILD = {
    "postgresql": (
        "DROP INDEX IF EXISTS uq_red_packets_order_campaign",
        "CREATE UNIQUE INDEX CONCURRENTLY uq_red_packets_order_campaign"
        " ON red_packets (order_id, campaign_id)",
        (
            "ALTER TABLE red_packets ADD CONSTRAINT uq_red_packets_order_campaign"
            " UNIQUE USING INDEX uq_red_packets_order_campaign",
            "DROP INDEX CONCURRENTLY IF EXISTS ix_red_packets_order_campaign",
        ),
    ),
    "mysql": (
        None,  # a failed ALTER TABLE leaves nothing behind
        "ALTER TABLE red_packets ADD UNIQUE KEY uq_red_packets_order_campaign"
        " (order_id, campaign_id), ALGORITHM=INPLACE, LOCK=NONE",
        (
            "ALTER TABLE red_packets DROP INDEX ix_red_packets_order_campaign,"
            " ALGORITHM=INPLACE, LOCK=NONE",
        ),
    ),
}
UNDO = {
    "postgresql": (
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_red_packets_order_campaign"
        " ON red_packets (order_id, campaign_id)",
        "ALTER TABLE red_packets DROP CONSTRAINT uq_red_packets_order_campaign",
        "INSERT INTO red_packets (id, order_id, campaign_id, amount, created_at)"
        " OVERRIDING SYSTEM VALUE"
        " SELECT id, order_id, campaign_id, amount, created_at FROM red_packet_duplicates",
    ),
    "mysql": (
        "ALTER TABLE red_packets ADD INDEX ix_red_packets_order_campaign"
        " (order_id, campaign_id), ALGORITHM=INPLACE, LOCK=NONE",
        "ALTER TABLE red_packets DROP INDEX uq_red_packets_order_campaign",
        "INSERT INTO red_packets (id, order_id, campaign_id, amount, created_at)"
        " SELECT id, order_id, campaign_id, amount, created_at FROM red_packet_duplicates",
    ),
}


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
    drop_leftover, build, after = BUILD[op.get_bind().dialect.name]
    with op.get_context().autocommit_block():
        for attempt in range(1, BUILD_ATTEMPTS + 1):
            # Not atomic, and need not be: only rows already copied are deleted, and a
            # duplicate inserted in between waits for the next attempt.
            op.execute(COPY_DUPLICATES)
            op.execute(DELETE_COPIED)
            if drop_leftover:
                op.execute(drop_leftover)  # an invalid leftover of a failed build
            try:
                op.execute(build)
                break
            except IntegrityError:
                if attempt == BUILD_ATTEMPTS:
                    raise
        for statement in after:
            op.execute(statement)


def downgrade() -> None:
    restore, drop_key, move_back = UNDO[op.get_bind().dialect.name]
    with op.get_context().autocommit_block():
        op.execute(restore)
    op.execute(drop_key)
    op.execute(move_back)
    op.drop_table("red_packet_duplicates")
