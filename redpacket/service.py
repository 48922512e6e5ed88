"""grant(): one transaction of a strategy at an isolation level, with retries.

This is the lab's model of the production service: SQLAlchemy 2, one connection,
the isolation level set before the transaction begins, the strategy's steps run
back to back. The same steps are what the scheduler interleaves and the stress
harness runs at load.
"""

from __future__ import annotations

import enum
import random
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from redpacket.database.lab import Lab, Schema, translate_connect_errors
from redpacket.errors import LabError
from redpacket.isolation import Isolation
from redpacket.retry import NO_RETRIES, RetryPolicy
from redpacket.strategies import End, Strategy, Walk

DEFAULT_CAMPAIGN = "double11"
DEFAULT_AMOUNT = Decimal("8.88")
MAX_CAMPAIGN_LENGTH = 64


class Outcome(enum.Enum):
    GRANTED = "granted"
    ALREADY_GRANTED = "already_granted"
    FAILED = "failed"


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
class AttemptResult:
    """One transaction's end: how the strategy ended it, or the SQLSTATE that ended it."""

    end: End | None
    sqlstate: str | None = None
    red_packet_id: int | None = None

    @property
    def reason(self) -> str | None:
        """Why the attempt did not commit a decision: a SQLSTATE or the strategy's own end."""
        if self.end is None:
            return self.sqlstate
        return None if self.end.commits else self.end.value


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


def sqlstate_of(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


def attempt(
    conn: Connection, strategy: Strategy, isolation: Isolation, context: dict[str, Any]
) -> AttemptResult:
    """Run one transaction of ``strategy``; commit only when the strategy decided."""
    conn.execution_options(isolation_level=isolation.sql)
    walk = Walk(strategy, context)
    transaction = conn.begin()
    try:
        while True:
            step = walk.step
            try:
                row = conn.execute(step.statement, step.params(walk.context)).first()
            except DBAPIError as exc:
                if exc.connection_invalidated:
                    raise
                transaction.rollback()
                sqlstate = sqlstate_of(exc)
                return AttemptResult(walk.error(sqlstate), sqlstate)
            end = walk.row(None if row is None else tuple(row))
            if end is not None:
                break
        if end.commits:
            transaction.commit()
        else:
            transaction.rollback()
    except DBAPIError as exc:  # COMMIT itself can fail: 40001 at serializable
        if exc.connection_invalidated:
            raise
        if transaction.is_active:
            transaction.rollback()
        return AttemptResult(None, sqlstate_of(exc))
    red_packet_id = walk.context.get("red_packet_id")
    return AttemptResult(end, None, int(red_packet_id) if red_packet_id is not None else None)


def grant_on(
    conn: Connection,
    strategy: Strategy,
    isolation: Isolation,
    request: GrantRequest,
    retry: RetryPolicy = NO_RETRIES,
    rng: random.Random | None = None,
) -> GrantResult:
    """Grant on an open connection, retrying what the policy says is worth retrying."""
    errors: list[str] = []
    attempts = 0
    while True:
        attempts += 1
        result = attempt(conn, strategy, isolation, request.context())
        if result.sqlstate:
            errors.append(result.sqlstate)
        if result.end is End.LOST_RACE:
            errors.append(End.LOST_RACE.value)
        reason = result.reason
        if reason is None or not retry.should_retry(reason, attempts):
            break
        time.sleep(retry.delay_s(attempts, rng))
    if reason is not None:
        outcome = Outcome.FAILED
    elif result.end is End.GRANTED:
        outcome = Outcome.GRANTED
    else:
        outcome = Outcome.ALREADY_GRANTED
    return GrantResult(
        outcome=outcome,
        strategy=strategy.name,
        isolation=isolation.value,
        order_id=request.order_id,
        campaign_id=request.campaign_id,
        attempts=attempts,
        reason=reason,
        red_packet_id=result.red_packet_id if outcome is Outcome.GRANTED else None,
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
    engine = lab.engine(Schema.for_revision(strategy.requires_revision))
    with translate_connect_errors(lab.url), engine.connect() as conn:
        return grant_on(conn, strategy, isolation, request, retry)
