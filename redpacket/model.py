"""The lab's tables as SQLAlchemy 2 models, matching the Alembic head revision.

Revision 0001 is the schema the bug lived in: an index on (order_id, campaign_id)
but no uniqueness. Revision 0002 is the fix as it ships: the unique constraint, and
an audit table for the duplicate grants the bug left behind.
``tests/test_migrations.py::test_models_match_the_head_revision`` proves models
and migrations agree.
"""

from __future__ import annotations

import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

UNIQUE_GRANT = "uq_red_packets_order_campaign"


class Base(DeclarativeBase):
    pass


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    red_packet_granted: Mapped[bool] = mapped_column(Boolean, server_default="false")
    version: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class RedPacket(Base):
    __tablename__ = "red_packets"
    __table_args__ = (UniqueConstraint("order_id", "campaign_id", name=UNIQUE_GRANT),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    order_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("orders.id"))
    campaign_id: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    created_at: Mapped[datetime.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp()
    )


class RedPacketDuplicate(Base):
    """Grants the bug made twice, moved aside (never deleted) by revision 0002."""

    __tablename__ = "red_packet_duplicates"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    order_id: Mapped[int] = mapped_column(BigInteger)
    campaign_id: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True))
    moved_at: Mapped[datetime.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


metadata = Base.metadata
