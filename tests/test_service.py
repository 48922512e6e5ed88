from __future__ import annotations

import threading

import psycopg
import pytest
from sqlalchemy import Connection, event

from redpacket.database.lab import Lab, Schema
from redpacket.database.observe import wait_for_waiter
from redpacket.engines.postgresql import conninfo
from redpacket.errors import LabError
from redpacket.isolation import Isolation
from redpacket.retry import RetryPolicy
from redpacket.service import GrantRequest, GrantResult, grant
from redpacket.strategies import STRATEGIES, Outcome, Strategy

ALL = [(s, level) for s in STRATEGIES.values() for level in Isolation]


def red_packets(lab: Lab, strategy: Strategy, order_id: int) -> int:
    schema = Schema.for_revision(strategy.requires_revision)
    with psycopg.connect(conninfo(lab.url_of(schema))) as conn:
        row = conn.execute(
            "SELECT count(*) FROM red_packets WHERE order_id = %s", (order_id,)
        ).fetchone()
    assert row is not None
    return int(str(row[0]))


@pytest.mark.parametrize(
    ("strategy", "isolation"), ALL, ids=[f"{s.name}-{level.value}" for s, level in ALL]
)
def test_two_grants_in_sequence_grant_exactly_once(
    fresh_lab: Lab, strategy: Strategy, isolation: Isolation
) -> None:
    first = grant(fresh_lab, strategy, isolation, GrantRequest(3))
    second = grant(fresh_lab, strategy, isolation, GrantRequest(3))
    assert (first.outcome, first.attempts, first.reason) == (Outcome.GRANTED, 1, None)
    assert first.red_packet_id is not None
    assert (second.outcome, second.attempts) == (Outcome.ALREADY_GRANTED, 1)
    assert red_packets(fresh_lab, strategy, 3) == 1
    other_campaign = grant(fresh_lab, strategy, isolation, GrantRequest(4, "spring"))
    assert other_campaign.outcome is Outcome.GRANTED


@pytest.mark.parametrize(
    ("strategy", "isolation"), ALL, ids=[f"{s.name}-{level.value}" for s, level in ALL]
)
def test_unknown_order_fails_cleanly_and_is_not_retried(
    fresh_lab: Lab, strategy: Strategy, isolation: Isolation
) -> None:
    result = grant(fresh_lab, strategy, isolation, GrantRequest(999), RetryPolicy(5))
    assert result.outcome is Outcome.FAILED
    assert result.reason in {"unknown_order", "23503"}
    assert result.attempts == 1
    assert red_packets(fresh_lab, strategy, 999) == 0


@pytest.mark.parametrize(
    ("order_id", "campaign", "message"),
    [(-1, "c", "positive integer"), (0, "c", "positive integer"), (1, " ", "must not be empty")],
)
def test_bad_requests_are_refused(order_id: int, campaign: str, message: str) -> None:
    with pytest.raises(LabError, match=message):
        GrantRequest(order_id, campaign)


def _grant_while_row_is_held(
    lab: Lab, strategy: Strategy, isolation: Isolation, retries: int
) -> GrantResult:
    """Grant order 5 while another session holds an uncommitted update of it.

    The grant blocks on that row; as soon as the server shows it waiting, the
    holder commits. What the grant meets then depends on strategy and level.
    """
    results: list[GrantResult] = []
    errors: list[BaseException] = []
    with (
        psycopg.connect(conninfo(lab.url_of(Schema.UNCONSTRAINED))) as holder,
        psycopg.connect(conninfo(lab.url_of(Schema.UNCONSTRAINED)), autocommit=True) as observer,
    ):
        holder.execute("UPDATE orders SET version = version + 1 WHERE id = 5")
        worker = threading.Thread(
            target=_collect,
            args=(results, errors, lab, strategy, isolation, RetryPolicy(retries)),
        )
        worker.start()
        try:
            wait_for_waiter(observer, holder.info.backend_pid)
        finally:
            holder.commit()
            worker.join(timeout=30)
    assert not errors, errors
    return results[0]


def _collect(
    results: list[GrantResult],
    errors: list[BaseException],
    lab: Lab,
    strategy: Strategy,
    isolation: Isolation,
    policy: RetryPolicy,
) -> None:
    try:
        results.append(grant(lab, strategy, isolation, GrantRequest(5), policy))
    except BaseException as exc:  # reported to the test thread
        errors.append(exc)


def test_serialization_failure_is_retried_and_counted(fresh_lab: Lab) -> None:
    strategy = STRATEGIES["conditional_update"]
    result = _grant_while_row_is_held(fresh_lab, strategy, Isolation.REPEATABLE_READ, retries=3)
    assert (result.outcome, result.attempts, result.errors) == (Outcome.GRANTED, 2, ("40001",))
    assert red_packets(fresh_lab, strategy, 5) == 1


def test_serialization_failure_without_retries_fails(fresh_lab: Lab) -> None:
    strategy = STRATEGIES["conditional_update"]
    result = _grant_while_row_is_held(fresh_lab, strategy, Isolation.REPEATABLE_READ, retries=0)
    assert (result.outcome, result.attempts, result.reason) == (Outcome.FAILED, 1, "40001")
    assert red_packets(fresh_lab, strategy, 5) == 0


def test_lost_optimistic_race_is_retried(fresh_lab: Lab) -> None:
    strategy = STRATEGIES["optimistic"]
    result = _grant_while_row_is_held(fresh_lab, strategy, Isolation.READ_COMMITTED, retries=2)
    assert (result.outcome, result.attempts, result.errors) == (
        Outcome.GRANTED,
        2,
        ("lost_race",),
    )
    assert red_packets(fresh_lab, strategy, 5) == 1


def test_a_connection_lost_during_commit_is_unknown_and_never_retried(fresh_lab: Lab) -> None:
    """Nobody can know whether a COMMIT the connection died under took effect."""
    strategy = STRATEGIES["lock_first"]
    engine = fresh_lab.sqlalchemy(Schema.for_revision(strategy.requires_revision))
    observer = psycopg.connect(conninfo(fresh_lab.url_of(Schema.UNCONSTRAINED)), autocommit=True)

    def kill_before_commit(conn: Connection) -> None:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        observer.execute("SELECT pg_terminate_backend(%s)", (pid,))

    event.listen(engine, "commit", kill_before_commit)
    try:
        result = grant(
            fresh_lab, strategy, Isolation.READ_COMMITTED, GrantRequest(6), RetryPolicy(3)
        )
    finally:
        event.remove(engine, "commit", kill_before_commit)
        observer.close()
    assert (result.outcome, result.attempts, result.reason) == (Outcome.UNKNOWN, 1, None)
    assert result.errors == ("08006",)
    assert red_packets(fresh_lab, strategy, 6) == 0  # this time it had not committed
