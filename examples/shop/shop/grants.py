"""Grant an order its red packet for a campaign: the code as it shipped, with the bug.

It locks the order before checking, which looks as if it serialised the grants; but
the first statement (a plain read) fixed the snapshot at REPEATABLE READ, so a
second request that waited for the lock still checks in its old snapshot, finds
nothing, and inserts a second red packet.
"""

from __future__ import annotations

from sqlalchemy import Engine, select

from shop.models import Base, Order, RedPacket, Session


def prepare(engine: Engine) -> None:
    Base.metadata.create_all(engine)


def grant(order_id: int, campaign: str) -> str:
    with Session.begin() as session:
        session.get(Order, order_id)
        session.execute(select(Order).where(Order.id == order_id).with_for_update())
        found = session.scalar(
            select(RedPacket.id).where(
                RedPacket.order_id == order_id, RedPacket.campaign == campaign
            )
        )
        if found is not None:
            return "already granted"
        session.add(RedPacket(order_id=order_id, campaign=campaign))
    return "granted"
