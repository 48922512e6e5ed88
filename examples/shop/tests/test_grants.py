"""One red packet per order and campaign, however the requests interleave."""

from __future__ import annotations

from types import ModuleType

from conftest import forget_grants, red_packets
from shop.models import Order, Session
from sqlalchemy import Engine

CAMPAIGN = "double11"


def test_two_requests_in_the_seeds_order_grant_once(race, grants: ModuleType, order: int) -> None:
    def request() -> str:
        return grants.grant(order, CAMPAIGN)

    # both read the order, then the first finishes, then the second (the production order)
    race.interleave(request, request, schedule="T1:1,T2:1,T1:end,T2:end")
    assert red_packets(order) == 1


def test_no_order_of_two_requests_grants_twice(race, grants: ModuleType, order: int) -> None:
    def request() -> str:
        return grants.grant(order, CAMPAIGN)

    def one_red_packet() -> None:
        assert red_packets(order) == 1, f"{red_packets(order)} red packets"

    found = race.explore(request, request, check=one_red_packet, reset=lambda: forget_grants(order))
    assert found.complete
    assert found.shortest is None, f"a failing schedule: {found.shortest}"


def test_sixteen_clients_hammering_grant_once_per_order(
    race, grants: ModuleType, redpacket_engine: Engine
) -> None:
    orders = list(range(10_001, 10_011))
    with Session.begin() as session:
        session.add_all(Order(id=order_id) for order_id in orders)
    turn = iter(range(10**9))

    def request() -> str:
        return grants.grant(orders[next(turn) % len(orders)], CAMPAIGN)

    def once_each() -> None:
        counts = {order_id: red_packets(order_id) for order_id in orders}
        assert set(counts.values()) == {1}, f"red packets per order: {counts}"

    found = race.hammer(request, workers=16, times=10, check=once_each)
    assert not found.unknown
