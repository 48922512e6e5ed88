"""A worker's state belongs to its request: a request that cannot even reconnect, cut
short, is interrupted, whatever the worker's previous request did.

Real servers, real failures: the previous request commits on the lab's server, the
session is dropped, and the reconnect goes to a port where nothing listens.
"""

from __future__ import annotations

from typing import cast

import pytest

from redpacket.database.lab import Lab, Schema
from redpacket.isolation import Isolation
from redpacket.strategies import STRATEGIES
from redpacket.strategies.ending import Outcome
from redpacket.stress.event_loop import EventLoop
from redpacket.stress.fast import build
from redpacket.stress.loop_engine import LoopEngine
from redpacket.stress.mysql_loop import MySQLLoop
from redpacket.stress.plan import StressPlan, Workload
from redpacket.stress.tally import Tally

pytestmark = pytest.mark.stress


def keep_going(_tally: Tally) -> bool:
    return True


def cut_short_while_reconnecting(lab: Lab) -> Tally:
    strategy = STRATEGIES["on_conflict"]
    plan = StressPlan(strategy, Isolation.READ_COMMITTED, workers=1, orders=2,
                      workload=Workload.HOT)  # fmt: skip
    lab.reset(plan.orders)
    url = lab.url_of(Schema.for_revision(strategy.requires_revision))
    target = url.render_as_string(hide_password=False)
    loop = cast(EventLoop, build(plan, lab.engine.name, target, 1, None, 1))
    loop.run(None, keep_going)  # both orders granted: the worker's last request committed
    worker = loop.workers[0]
    loop.disconnect(worker)
    if isinstance(loop, LoopEngine):  # the next reconnect goes where nothing listens
        loop.conninfo = b"host=127.0.0.1 port=1 connect_timeout=2"
    elif isinstance(loop, MySQLLoop):
        loop.url = url.set(port=1)
    loop.start_request(worker, (1,))
    loop.close()
    return loop.tally


def assert_interrupted_not_granted(tally: Tally) -> None:
    assert (tally.granted, tally.interrupted, tally.unknown) == (2, 1, 0)
    assert tally.history.outcome[-1] == Outcome.INTERRUPTED


def test_a_request_cut_short_before_it_reconnects_is_interrupted_on_postgresql(
    lab: Lab,
) -> None:
    assert_interrupted_not_granted(cut_short_while_reconnecting(lab))


def test_a_request_cut_short_before_it_reconnects_is_interrupted_on_innodb(
    mysql_lab: Lab,
) -> None:
    assert_interrupted_not_granted(cut_short_while_reconnecting(mysql_lab))
