"""Faults from outside the workers, and the history checker that must see through them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from redpacket.database.lab import Lab, Schema
from redpacket.engines.postgresql import conninfo
from redpacket.isolation import Isolation
from redpacket.strategies import STRATEGIES
from redpacket.stress.faults import BackendKiller
from redpacket.stress.plan import StressPlan, Workload
from redpacket.stress.result import StressResult
from redpacket.stress.runner import run_stress

pytestmark = pytest.mark.stress

RC = Isolation.READ_COMMITTED


def stress(
    lab: Lab, strategy: str, level: Isolation, reset: bool = True, **options: object
) -> StressResult:
    plan = StressPlan(STRATEGIES[strategy], level, **options)  # type: ignore[arg-type]
    return run_stress(lab, plan, reset=reset)


@pytest.mark.parametrize("strategy", ["on_conflict", "conditional_update", "lock_first"])
def test_killed_backends_lose_and_duplicate_nothing(
    lab: Lab, strategy: str, pipe_wire: str
) -> None:
    result = stress(lab, strategy, RC, workers=16, orders=200, retries=20, kill_rate=50.0, seed=7)
    faults = result.faults
    assert faults["backends_killed"] > 0
    # a backend killed after its worker's last request is never noticed
    assert 0 < faults["connections_lost"] <= faults["backends_killed"]
    assert 0 < faults["reconnects"] <= faults["connections_lost"]
    assert result.check is not None
    assert (result.check.duplicate_orders, result.check.missing_orders) == (0, 0)
    history = result.history_check
    assert history is not None
    assert history.ok, [v.describe() for v in history.violations]
    assert history.requests == 3200 == result.tally.attempts
    assert history.unknown == result.tally.unknown
    assert history.unknown_committed + history.unknown_not_committed == history.unknown
    outcomes = result.tally.granted + result.tally.already_granted + result.tally.unknown
    assert outcomes + sum(result.tally.failed.values()) == 3200
    assert result.tally.granted + history.unknown_committed == 200


def test_orders_granted_in_opposite_order_deadlock_and_recover(lab: Lab) -> None:
    result = stress(
        lab, "lock_first", RC, workers=4, orders=10, workload=Workload.CROSSED, retries=30,
        deadlock_timeout_ms=10,
    )  # fmt: skip
    assert result.faults["deadlocks"] > 0
    assert result.correct
    assert result.tally.granted == 10
    assert result.tally.attempts == 40  # 4 workers x 5 pairs x 2 orders


@contextmanager
def orders_locked_elsewhere(lab: Lab, orders: int) -> Iterator[None]:
    """Load ``orders`` and hold a row lock on every one from a connection outside the run."""
    lab.reset(orders)
    with psycopg.connect(conninfo(lab.url_of(Schema.UNCONSTRAINED)), autocommit=True) as holder:
        # if the run under test ignored its timeouts it would wait on this lock for ever:
        # the server ends the holder's idle transaction instead, and the test fails with
        # IdleInTransactionSessionTimeout
        holder.execute("SET idle_in_transaction_session_timeout = '10s'")
        with holder.transaction():
            holder.execute("SELECT id FROM orders FOR UPDATE").fetchall()
            yield


def test_lock_timeout_fails_every_request_blocked_past_it(lab: Lab) -> None:
    with orders_locked_elsewhere(lab, 5):
        result = stress(lab, "lock_first", RC, workers=4, orders=5, lock_timeout_ms=20, reset=False)
    assert dict(result.tally.failed) == {"55P03": 20}
    assert result.faults["lock_timeouts"] == 20
    assert result.tally.granted == 0
    assert result.check is not None
    assert (result.check.duplicate_orders, result.check.missing_orders) == (0, 5)
    assert result.history_check is not None
    assert result.history_check.ok


def test_statement_timeout_fails_every_request_blocked_past_it(lab: Lab) -> None:
    with orders_locked_elsewhere(lab, 5):
        result = stress(
            lab, "lock_first", RC, workers=4, orders=5, statement_timeout_ms=20, reset=False
        )
    assert dict(result.tally.failed) == {"57014": 20}
    assert result.faults["statement_timeouts"] == 20
    assert result.tally.granted == 0
    assert result.history_check is not None
    assert result.history_check.ok


def test_lock_timeouts_under_crossed_grants_leave_no_duplicate(lab: Lab) -> None:
    result = stress(
        lab, "lock_first", RC, workers=4, orders=10, workload=Workload.CROSSED,
        lock_timeout_ms=5,
    )  # fmt: skip
    assert set(result.tally.failed) <= {"55P03", "40P01"}, (
        dict(result.tally.failed),
        result.tally.errors,
    )
    assert result.check is not None
    assert result.check.duplicate_orders == 0
    assert result.history_check is not None
    assert result.history_check.ok


def test_a_tiny_statement_timeout_hits_the_workload_not_the_setup(lab: Lab) -> None:
    # the workers prepare their statements before the timeout applies: a 1 ms limit
    # cancels grant statements, never the run itself
    result = stress(lab, "lock_first", RC, workers=8, orders=20, statement_timeout_ms=1)
    assert result.error is None
    assert result.tally.attempts == 160
    assert set(result.tally.failed) <= {"57014"}
    assert result.tally.failed["57014"] <= result.faults["statement_timeouts"]
    # a timeout that fires after a batch's last statement, before its Sync, arrives as
    # an error nobody asked for: it aborts the transaction, it does not end the session
    assert result.faults["connections_lost"] == 0
    assert result.check is not None
    assert result.check.duplicate_orders == 0
    assert result.history_check is not None
    assert result.history_check.ok


def test_fault_options_need_the_loop_engine() -> None:
    from redpacket.errors import LabError
    from redpacket.stress.plan import Engine

    with pytest.raises(LabError, match="need --engine loop"):
        StressPlan(STRATEGIES["seed"], RC, kill_rate=1.0, engine=Engine.SERVICE)


def test_a_timed_run_kills_only_while_it_starts_requests(lab: Lab) -> None:
    """After ``--duration`` the run drains: killing on would aim every kill at the last
    requests in flight until one ran out of retries (seen as a failed 08006 on CI)."""
    lab.reset(1)
    url = conninfo(lab.url_of(Schema.UNCONSTRAINED))
    with psycopg.connect(url) as early:
        early.execute("SELECT 1")  # a transaction open while the window is
        killer = BackendKiller(lab, Schema.UNCONSTRAINED, rate=200.0, window_s=2.0)
        killer.start()
        killer.join(timeout=30)
        assert not killer.is_alive()  # it ended on its own when the window closed
        assert killer.killed >= 1
        with pytest.raises(psycopg.OperationalError):
            early.execute("SELECT 1")
    with psycopg.connect(url) as late:
        late.execute("SELECT 1")  # in a transaction once the window has closed
        assert late.execute("SELECT 2").fetchone() == (2,)  # nobody came for it
