"""Run the steps of several sessions in an exact order, like PostgreSQL's isolation tester.

Each session runs on its own connection; one statement is in flight at a time,
except statements that are blocked. Whether a statement is blocked is asked of the
server (the engine knows how: ``pg_blocking_pids``, InnoDB's lock-wait tables)
from a separate observer connection, polled every few milliseconds — no sleep
decides anything. A blocked session is marked as waiting and the schedule goes
on; after every action the scheduler collects the statements that were released,
so each completion is recorded where it happened.
"""

from __future__ import annotations

from typing import Any

from redpacket.database.lab import Lab, Schema
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
    """Sessions and an observer per schema of the lab, reusable across many runs."""

    def __init__(
        self,
        lab: Lab,
        sessions: int = 2,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        settings: tuple[tuple[str, str], ...] = (),
    ):
        self.lab = lab
        self.settings = settings
        self.engine = lab.engine
        self.timeout_s = timeout_s
        self.size = sessions
        self._observers: dict[Schema, Any] = {}
        self._sessions: dict[Schema, list[Session]] = {}
        self.observer = self._observer(Schema.UNCONSTRAINED)  # fails fast if unreachable
        version, _ = self.engine.describe_server(self.observer)
        self.server = self.engine.server_label(version)

    def _observer(self, schema: Schema) -> Any:
        if schema not in self._observers:
            url = self.lab.url_of(schema)
            self._observers[schema] = self.engine.connect(url, autocommit=True)
        return self._observers[schema]

    def sessions_for(self, schema: Schema) -> list[Session]:
        if schema not in self._sessions:
            url = self.lab.url_of(schema)
            self._sessions[schema] = [
                Session(n, self.engine, url, self.settings) for n in range(1, self.size + 1)
            ]
        return self._sessions[schema]

    def close(self) -> None:
        for sessions in self._sessions.values():
            for session in sessions:
                session.close()
        for observer in self._observers.values():
            observer.close()

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
        if schedule.sessions > self.size:
            raise ValueError(f"schedule needs {schedule.sessions} sessions")
        strategy = strategy.for_engine(self.engine.name, self.engine.label)
        levels = Levels.of(isolation).for_sessions(schedule.sessions)
        schema = Schema.for_revision(strategy.requires_revision)
        observer = self._observer(schema)
        self.observer = observer
        sessions = self.sessions_for(schema)[: schedule.sessions]
        order_id = self._new_order(observer)
        context = {"order_id": order_id, "campaign_id": campaign_id, "amount": DEFAULT_AMOUNT}
        states = [SessionState(session, Walk(strategy, dict(context))) for session in sessions]
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
            for session in sessions:
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
            red_packets=self._count(observer, order_id, campaign_id),
            retries=retry.retries,
            stuck=stuck,
            engine=self.engine.name,
            server=self.server,
            settings=tuple(f"{name}={value}" for name, value in self.settings),
        )

    @staticmethod
    def _new_order(observer: Any) -> int:
        """A new order for the run; only the observer creates orders, so max + 1 is free."""
        cursor = observer.cursor()
        cursor.execute("SELECT coalesce(max(id), 0) + 1 FROM orders")
        order_id = int(cursor.fetchone()[0])
        cursor.execute("INSERT INTO orders (id, user_id, amount) VALUES (%s, 0, 10)", (order_id,))
        cursor.close()
        return order_id

    @staticmethod
    def _count(observer: Any, order_id: int, campaign_id: str) -> int:
        cursor = observer.cursor()
        cursor.execute(
            "SELECT count(*) FROM red_packets WHERE order_id = %s AND campaign_id = %s",
            (order_id, campaign_id),
        )
        count = int(cursor.fetchone()[0])
        cursor.close()
        return count
