"""The shop's engine is the one the race watches; each test gets a fresh order."""

from __future__ import annotations

import importlib
import itertools
import os
from collections.abc import Iterator
from types import ModuleType

import pytest
from shop import db
from shop.models import Base, Order, RedPacket, Session
from sqlalchemy import Engine, delete, func, select

_orders = itertools.count(1)


@pytest.fixture(scope="session")
def grants() -> ModuleType:
    return importlib.import_module(os.environ.get("SHOP_GRANTS", "shop.grants"))


@pytest.fixture(scope="session")
def redpacket_engine(request: pytest.FixtureRequest, grants: ModuleType) -> Iterator[Engine]:
    """The application's own engine (the race fixture watches it)."""
    from redpacket.database.urls import parse_url

    url = request.config.getoption("--redpacket-url") or os.environ["REDPACKET_URL"]
    engine = db.make_engine(parse_url(url).render_as_string(hide_password=False))
    Base.metadata.drop_all(engine)
    grants.prepare(engine)
    db.configure(engine)
    yield engine
    Base.metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture
def order(redpacket_engine: Engine) -> int:
    order_id = next(_orders)
    with Session.begin() as session:
        session.add(Order(id=order_id))
    return order_id


def red_packets(order_id: int) -> int:
    with Session() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(RedPacket).where(RedPacket.order_id == order_id)
            )
            or 0
        )


def forget_grants(order_id: int) -> None:
    with Session.begin() as session:
        session.execute(delete(RedPacket).where(RedPacket.order_id == order_id))
