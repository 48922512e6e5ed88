"""Run a strategy's steps in several sessions in an exact order, on the spec runner.

A red-packet strategy at a schedule is a spec generated as it runs: the steps are
the strategy's statements with their values written in, launched by the same
runner as ``redpacket spec`` (isolationtester's algorithm: send a step, give it
10 ms, else ask the server whether it waits for a lock; poll the waiting ones
after every step). ``interleave.stepping`` chooses each next step from the
schedule and the strategy's decisions and keeps the timeline. Whether a
statement waits is asked of the server (``pg_blocking_pids``, InnoDB's lock-wait
tables) from an observer connection: no sleep decides anything.
"""

from __future__ import annotations

from typing import Any

from redpacket.database.lab import Lab, Schema
from redpacket.database.observe import POLL_INTERVAL_S
from redpacket.errors import LabError
from redpacket.interleave.schedule import Schedule
from redpacket.interleave.stepping import Stepper
from redpacket.interleave.timeline import Run, SessionSummary
from redpacket.isolation import Isolation, Levels
from redpacket.retry import NO_RETRIES, RetryPolicy
from redpacket.service import DEFAULT_AMOUNT, DEFAULT_CAMPAIGN
from redpacket.specs.events import Event as SpecEvent
from redpacket.specs.events import Failure
from redpacket.specs.literal import bound_positional
from redpacket.specs.model import Session as SpecSessionModel
from redpacket.specs.model import Spec
from redpacket.specs.runner import Runner, SpecAborted, Stalled
from redpacket.strategies import Outcome, Strategy

DEFAULT_TIMEOUT_S = 10.0

__all__ = ["DEFAULT_TIMEOUT_S", "Scheduler"]


def _ignore(event: SpecEvent) -> None:
    """The runner's own events (isolationtester's lines): the timeline is the stepper's."""


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
        self.dialect = lab.sqlalchemy(Schema.UNCONSTRAINED).dialect
        self._observers: dict[Schema, Any] = {}
        self._runners: dict[Schema, Runner] = {}
        self.observer = self._observer(Schema.UNCONSTRAINED)  # fails fast if unreachable
        version, _ = self.engine.describe_server(self.observer)
        self.server = self.engine.server_label(version)

    def _observer(self, schema: Schema) -> Any:
        if schema not in self._observers:
            url = self.lab.url_of(schema)
            self._observers[schema] = self.engine.connect(url, autocommit=True)
        return self._observers[schema]

    def runner_for(self, schema: Schema) -> Runner:
        """Sessions T1..Tn in the schema, opened once: a spec with no steps of its own."""
        if schema not in self._runners:
            server = self.engine.spec_server(self.lab.url_of(schema))
            names = tuple(SpecSessionModel(f"T{n}", ()) for n in range(1, self.size + 1))
            try:
                runner = Runner(
                    Spec("redpacket", names), server, _ignore,
                    stall_s=self.timeout_s, poll_s=POLL_INTERVAL_S,
                )  # fmt: skip
            except BaseException:
                server.close()
                raise
            self._runners[schema] = runner
            for index in range(self.size):
                self._apply_settings(runner, index)
        return self._runners[schema]

    def _apply_settings(self, runner: Runner, index: int) -> None:
        session = runner.conns[index].session
        for name, value in self.settings:
            statement, values = self.engine.setting(name, value)
            result = session.execute(bound_positional(statement, values, self.dialect))
            if isinstance(result, Failure):
                raise LabError(f"the server refuses the setting {name}={value}: {result.message}")

    def close(self) -> None:
        for runner in self._runners.values():
            runner.close()
            runner.server.close()
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
        runner = self.runner_for(schema)
        order_id = self._new_order(observer)
        context = {"order_id": order_id, "campaign_id": campaign_id, "amount": DEFAULT_AMOUNT}
        stepper = Stepper(
            runner, observer, self.engine, self.dialect, strategy, levels, schedule, retry,
            context, reconnected=lambda index: self._apply_settings(runner, index),
        )  # fmt: skip
        runner.blocked = stepper.blocked
        spec_events: list[SpecEvent] = []
        runner.emit = spec_events.append
        stuck = None
        try:
            runner.drive(stepper)
        except Stalled as stall:
            if stall.launch is None:
                stuck = f"no progress in {self.timeout_s:g} s: {stepper.describe_waits()}"
            else:
                state = stepper.states[stall.launch.step.session]
                action = state.in_flight.action if state.in_flight else "statement"
                stuck = (
                    f"T{state.number}'s {action} ran {self.timeout_s:g} s"
                    " without finishing or blocking"
                )
        except SpecAborted as stop:
            stuck = str(stop)
        finally:
            runner.abandon()
            self._clean(runner)
        return Run(
            strategy=strategy.name,
            levels=levels,
            schedule=schedule.name,
            order_id=order_id,
            events=tuple(stepper.events),
            sessions=tuple(
                SessionSummary(
                    s.number,
                    Outcome.INTERRUPTED if s.outcome is None else s.outcome,
                    s.attempt,
                    s.reason,
                    tuple(s.errors),
                )
                for s in stepper.states
            ),
            red_packets=self._count(observer, order_id, campaign_id),
            retries=retry.retries,
            stuck=stuck,
            engine=self.engine.name,
            server=self.server,
            settings=tuple(f"{name}={value}" for name, value in self.settings),
            spec_events=tuple(spec_events),
        )

    def _clean(self, runner: Runner) -> None:
        """Leave no transaction open between runs, and a live session for the next."""
        reset = "; ".join(self.engine.session_reset)
        for index, conn in enumerate(runner.conns):
            if conn.session.lost():
                runner.reopen(index)
                self._apply_settings(runner, index)
            else:
                conn.session.execute(reset)

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
