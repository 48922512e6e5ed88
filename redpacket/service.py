"""grant(): one transaction of a strategy at an isolation level, with retries.

This is the lab's model of the production service: SQLAlchemy 2, one connection,
the isolation level set before the transaction begins, the strategy's steps run
back to back. The same steps are what the scheduler interleaves and the stress
harness runs at load.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

from sqlalchemy import Connection, CursorResult
from sqlalchemy.exc import DBAPIError

from redpacket.database.connect import translate_connect_errors
from redpacket.database.lab import Lab, Schema
from redpacket.engines import engine_named
from redpacket.errors import LabError
from redpacket.isolation import Isolation
from redpacket.retry import CONNECTION_LOST, NO_RETRIES, RetryPolicy, means_connection_lost
from redpacket.strategies import End, Ending, Outcome, Step, Strategy, Walk, closes_with_commit

DEFAULT_CAMPAIGN = "double11"
DEFAULT_AMOUNT = Decimal("8.88")
MAX_CAMPAIGN_LENGTH = 64


@dataclass(frozen=True)
class GrantRequest:
    """What a caller asks for; validated here so every entry point refuses the same input."""

    order_id: int
    campaign_id: str = DEFAULT_CAMPAIGN
    amount: Decimal = DEFAULT_AMOUNT

    def __post_init__(self) -> None:
        if self.order_id < 1:
            raise LabError(f"order id must be a positive integer, got {self.order_id}")
        if not self.campaign_id.strip():
            raise LabError("campaign must not be empty")
        if len(self.campaign_id) > MAX_CAMPAIGN_LENGTH:
            raise LabError(f"campaign must be at most {MAX_CAMPAIGN_LENGTH} characters")
        try:
            valid_amount = self.amount > 0
        except InvalidOperation:
            valid_amount = False
        if not valid_amount:
            raise LabError(f"amount must be a positive number, got {self.amount}")

    def context(self) -> dict[str, Any]:
        return {"order_id": self.order_id, "campaign_id": self.campaign_id, "amount": self.amount}


@dataclass(frozen=True)
class GrantResult:
    outcome: Outcome
    strategy: str
    isolation: str
    order_id: int
    campaign_id: str
    attempts: int
    reason: str | None = None  # why it failed: a SQLSTATE, unknown_order or lost_race
    red_packet_id: int | None = None
    errors: tuple[str, ...] = field(default_factory=tuple)  # every SQLSTATE met, in order

    @property
    def retries(self) -> int:
        return self.attempts - 1


def _lost_or_failed(conn: Connection, exc: DBAPIError) -> str | None:
    """The code of a statement the server answered with an error; None if the session died.

    A failure that is neither (the server cannot be reached to reconnect) is not a
    grant's outcome: it propagates, and ``grant`` says so in one line.
    """
    error = engine_named(conn.dialect.name).error_of(exc.orig) if exc.orig else None
    if exc.connection_invalidated or (error is not None and error.lost):
        return None
    if error is None or means_connection_lost(error.code):
        raise exc
    return error.code


def _row(result: CursorResult[Any]) -> tuple[Any, ...] | None:
    """The step's answer: its first row, or for a write with no rows, whether it wrote."""
    if result.returns_rows:
        row = result.first()
        return None if row is None else tuple(row)
    if result.rowcount is None or result.rowcount <= 0:
        return None
    return (result.lastrowid or result.rowcount,)


class Attempt(NamedTuple):
    """One transaction: how it ended, the SQLSTATE it met (even one the strategy handled)."""

    ending: Ending
    met: str | None
    red_packet_id: int | None


def attempt(
    conn: Connection, strategy: Strategy, isolation: Isolation, context: dict[str, Any]
) -> Attempt:
    """Run one transaction of ``strategy``; how it ends is ``Ending``'s decision, not ours."""
    walk = Walk(strategy, context)
    reached: list[Step] = []
    try:
        return _transaction(conn, walk, isolation, reached)
    finally:
        _release(conn, reached, walk.context)


def _transaction(
    conn: Connection, walk: Walk, isolation: Isolation, reached: list[Step]
) -> Attempt:
    conn.execution_options(isolation_level=isolation.sql)
    transaction = conn.begin()
    end: End | None = None
    try:
        while end is None:
            step = walk.step
            reached.append(step)
            end = walk.row(_row(conn.execute(step.statement, step.params(walk.context))))
    except DBAPIError as exc:
        sqlstate = _lost_or_failed(conn, exc)
        transaction.rollback()
        if sqlstate is None:
            reached.clear()  # a dead session holds no lock
            return Attempt(Ending.connection_lost(commit_in_flight=False), CONNECTION_LOST, None)
        return Attempt(Ending.after_error(walk.error(sqlstate), sqlstate), sqlstate, None)
    if not closes_with_commit(end, aborted=False):
        transaction.rollback()
        return Attempt(Ending(end), None, None)
    try:
        transaction.commit()
    except DBAPIError as exc:  # COMMIT itself can fail: 40001 at serializable
        sqlstate = _lost_or_failed(conn, exc)
        transaction.rollback()  # a failed COMMIT still leaves the Transaction to close
        if sqlstate is None:
            reached.clear()
            return Attempt(Ending.connection_lost(commit_in_flight=True), CONNECTION_LOST, None)
        return Attempt(Ending(sqlstate=sqlstate), sqlstate, None)
    red_packet_id = walk.context.get("red_packet_id")
    return Attempt(Ending(end), None, int(red_packet_id) if red_packet_id is not None else None)


def _release(conn: Connection, reached: list[Step], context: dict[str, Any]) -> None:
    """Run what outlives the transaction (a session-level lock's release), whatever its end."""
    for step in reached:
        if step.afterwards_statement is not None:
            conn.execute(step.afterwards_statement, step.params(context))
            conn.commit()


def grant_on(
    conn: Connection,
    strategy: Strategy,
    isolation: Isolation,
    request: GrantRequest,
    retry: RetryPolicy = NO_RETRIES,
    rng: random.Random | None = None,
) -> GrantResult:
    """Grant on an open connection, retrying what ``Ending`` says is worth retrying.

    A connection lost before COMMIT was sent is retried like any other retryable
    failure: SQLAlchemy gives the invalidated ``Connection`` a new DBAPI connection
    on its next use.
    """
    database = engine_named(conn.dialect.name)
    strategy = strategy.for_engine(database.name, database.label)
    errors: list[str] = []
    attempts = 0
    while True:
        attempts += 1
        result = attempt(conn, strategy, isolation, request.context())
        ending = result.ending
        if result.met:
            errors.append(result.met)
        if ending.end is End.LOST_RACE:
            errors.append(End.LOST_RACE.value)
        if not ending.worth_retrying(retry, attempts):
            break
        time.sleep(retry.delay_s(attempts, rng))
    return GrantResult(
        outcome=ending.outcome,
        strategy=strategy.name,
        isolation=isolation.value,
        order_id=request.order_id,
        campaign_id=request.campaign_id,
        attempts=attempts,
        reason=ending.reason,
        red_packet_id=result.red_packet_id if ending.outcome is Outcome.GRANTED else None,
        errors=tuple(errors),
    )


def grant(
    lab: Lab,
    strategy: Strategy,
    isolation: Isolation,
    request: GrantRequest,
    retry: RetryPolicy = NO_RETRIES,
) -> GrantResult:
    """One grant on a connection of its own, on the schema the strategy needs."""
    engine = lab.sqlalchemy(Schema.for_revision(strategy.requires_revision))
    with translate_connect_errors(lab.url), engine.connect() as conn:
        return grant_on(conn, strategy, isolation, request, retry)
