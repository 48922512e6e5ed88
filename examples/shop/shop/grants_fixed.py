"""The fix as it shipped: a unique key on (order, campaign), the losing insert caught.

The check stays (it spares most requests an insert), but the database decides: a
second insert of the same grant waits for the first, then fails with a duplicate
key (23505 on PostgreSQL, 1062 on MySQL) at any isolation level, and the request
answers "already granted".
"""

from __future__ import annotations

from sqlalchemy import Engine, Index, select
from sqlalchemy.exc import IntegrityError

from shop.models import Base, Order, RedPacket, Session

UNIQUE_GRANT = Index(
    "uq_shop_red_packets_grant", RedPacket.order_id, RedPacket.campaign, unique=True
)


def prepare(engine: Engine) -> None:
    Base.metadata.create_all(engine)


def grant(order_id: int, campaign: str) -> str:
    try:
        with Session.begin() as session:
            session.get(Order, order_id)
            found = session.scalar(
                select(RedPacket.id).where(
                    RedPacket.order_id == order_id, RedPacket.campaign == campaign
                )
            )
            if found is not None:
                return "already granted"
            session.add(RedPacket(order_id=order_id, campaign=campaign))
    except IntegrityError:
        return "already granted"
    return "granted"
