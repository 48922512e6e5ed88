"""Run the steps of several sessions in an exact order, like PostgreSQL's isolation tester.

Each session runs on its own connection; one statement is in flight at a time,
except statements that are blocked. Whether a statement is blocked is asked of the
server (``pg_blocking_pids``) from a separate observer connection, polled every
few milliseconds — no sleep decides anything. A blocked session is marked as
waiting and the schedule goes on; after every action the scheduler collects the
statements that were released, so each completion is recorded where it happened.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from redpacket.database.connect import CONNECT_TIMEOUT_S
from redpacket.database.lab import Schema
from redpacket.interleave.schedule import END, Schedule
from redpacket.interleave.sessions import Session
from redpacket.interleave.stepping import SessionState, Stepper, Stuck
from redpacket.interleave.timeline import Run, SessionSummary
from redpacket.isolation import Isolation, Levels
from redpacket.retry import NO_RETRIES, RetryPolicy
from redpacket.service import DEFAULT_AMOUNT, DEFAULT_CAMPAIGN
from redpacket.strategies import Outcome, Strategy, Walk

DEFAULT_TIMEOUT_S = 10.0

__all__ = ["DEFAULT_TIMEOUT_S", "Scheduler", "Stuck"]


class Scheduler:
    """Sessions and an observer on the lab database, reusable across many runs."""

    def __init__(self, conninfo: str, sessions: int = 2, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.timeout_s = timeout_s
        self.observer = psycopg.connect(
            conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
        )
        self.sessions = [Session(n, conninfo) for n in range(1, sessions + 1)]

    def close(self) -> None:
        for session in self.sessions:
            session.close()
        self.observer.close()

    def __enter__(self) -> Scheduler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one run ---------------------------------------------------------------------

    def run(
        self,
        strategy: Strategy,
        isolation: Isolation | Levels,
        schedule: Schedule,
        retry: RetryPolicy = NO_RETRIES,
        campaign_id: str = DEFAULT_CAMPAIGN,
    ) -> Run:
        """Run ``schedule`` on a fresh order; ``isolation`` may differ per session."""
        if schedule.sessions > len(self.sessions):
            raise ValueError(f"schedule needs {schedule.sessions} sessions")
        levels = Levels.of(isolation).for_sessions(schedule.sessions)
        schema = Schema.for_revision(strategy.requires_revision)
        self._use_schema(schema)
        order_id = self._new_order()
        context = {"order_id": order_id, "campaign_id": campaign_id, "amount": DEFAULT_AMOUNT}
        states = [
            SessionState(session, Walk(strategy, dict(context)))
            for session in self.sessions[: schedule.sessions]
        ]
        run = Stepper(self, strategy, levels, states, retry, context)
        stuck = None
        try:
            for entry in schedule.entries:
                state = states[entry.session - 1]
                state.target = max(state.target, entry.target)
                run.settle(preferred=state)
            for state in states:
                state.target = END
            run.settle(preferred=None, final=True)
        except Stuck as exc:
            stuck = str(exc)
            run.abandon()
        finally:
            for session in self.sessions:
                session.clean()
        return Run(
            strategy=strategy.name,
            levels=levels,
            schedule=schedule.name,
            order_id=order_id,
            events=tuple(run.events),
            sessions=tuple(
                SessionSummary(
                    s.number,
                    Outcome.INTERRUPTED if s.outcome is None else s.outcome,
                    s.attempt,
                    s.reason,
                    tuple(s.errors),
                )
                for s in states
            ),
            red_packets=self._count(order_id, campaign_id),
            retries=retry.retries,
            stuck=stuck,
        )

    def _use_schema(self, schema: Schema) -> None:
        statement = sql.SQL("SET search_path TO {}").format(sql.Identifier(schema.value))
        self.observer.execute(statement)
        for session in self.sessions:
            session.use_schema(schema.value)

    def _new_order(self) -> int:
        row = self.observer.execute(
            "INSERT INTO orders (id, user_id, amount)"
            " SELECT coalesce(max(id), 0) + 1, 0, 10 FROM orders RETURNING id"
        ).fetchone()
        assert row is not None
        return int(row[0])

    def _count(self, order_id: int, campaign_id: str) -> int:
        row = self.observer.execute(
            "SELECT count(*) FROM red_packets WHERE order_id = %s AND campaign_id = %s",
            (order_id, campaign_id),
        ).fetchone()
        assert row is not None
        return int(row[0])
