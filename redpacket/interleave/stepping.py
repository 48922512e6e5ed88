"""One scheduled run in progress: where each session stands, and what happened so far.

The scheduler owns the connections; this owns a run's state. ``settle`` lets every
session go as far as its target allows, recording each statement when it
completes — or, when the observer sees it blocked, as a wait, and later as a
resume right where the releasing action left it.
"""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redpacket.database.observe import POLL_INTERVAL_S, blocking_pids
from redpacket.interleave.schedule import BEGIN, END
from redpacket.interleave.sessions import Session, StatementResult
from redpacket.interleave.timeline import Event, Kind
from redpacket.isolation import Isolation
from redpacket.retry import RetryPolicy, means_connection_lost
from redpacket.strategies import End, Ending, Outcome, Strategy, Walk, closes_with_commit

if TYPE_CHECKING:
    from redpacket.interleave.scheduler import Scheduler


class Stuck(Exception):
    """No session can make progress within the timeout."""


@dataclass
class SessionState:
    """Where one session stands in the run."""

    session: Session
    walk: Walk
    target: float = -1
    next_action: float = BEGIN  # 0 begin, k step k, steps + 1 the transaction's end
    attempt: int = 1
    statements: int = 0  # statements of the current attempt that took or used a snapshot
    pending: Future[StatementResult] | None = None
    pending_event: Event | None = None
    waiting_on: tuple[int, ...] = ()
    decided: End | None = None  # what the strategy decided in this attempt
    failure: Ending | None = None  # a statement failed: the transaction can only roll back
    outcome: Outcome | None = None  # set when the request is over
    reason: str | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    @property
    def number(self) -> int:
        return self.session.number


class Stepper:
    """The mutable part of one run: session states and the events recorded so far."""

    def __init__(
        self,
        scheduler: Scheduler,
        strategy: Strategy,
        levels: tuple[Isolation, ...],
        states: list[SessionState],
        retry: RetryPolicy,
        context: dict[str, Any],
    ) -> None:
        self.scheduler = scheduler
        self.strategy = strategy
        self.levels = levels
        self.states = states
        self.retry = retry
        self.context = context
        self.events: list[Event] = []
        self.finish_number = len(strategy.steps) + 1
        self.pids = {state.session.pid: state.number for state in states}

    def settle(self, preferred: SessionState | None, final: bool = False) -> None:
        """Run until every session is blocked, finished, or at its target."""
        while True:
            self._collect()
            runnable = [
                s
                for s in self.states
                if s.pending is None and not s.finished and s.next_action <= s.target
            ]
            if not runnable:
                break
            state = preferred if preferred in runnable else runnable[0]
            self._issue(state)
            self._await(state)
        if final:
            self._wait_for_the_blocked()

    def _wait_for_the_blocked(self) -> None:
        """At the end: sessions still blocked wait for each other (a deadlock the server
        will break) or for a backend outside the run; give up after the timeout."""
        deadline = time.monotonic() + self.scheduler.timeout_s
        while pending := [s.pending for s in self.states if s.pending is not None]:
            wait(pending, timeout=POLL_INTERVAL_S, return_when=FIRST_COMPLETED)
            for state in self.states:
                if state.pending is not None and state.pending.done():
                    self._await(state)
                    self.settle(preferred=None)
            if time.monotonic() > deadline and any(s.pending is not None for s in self.states):
                raise Stuck(f"no progress in {self.scheduler.timeout_s:g} s: {self._waits()}")

    def _waits(self) -> str:
        return ", ".join(
            f"T{s.number} waits for "
            + (", ".join(f"T{w}" if w else "another backend" for w in s.waiting_on) or "?")
            for s in self.states
            if s.pending is not None
        )

    def _collect(self) -> None:
        for state in self.states:
            if state.pending is not None:
                self._await(state)

    # -- issuing and completing actions ----------------------------------------------

    def _issue(self, state: SessionState) -> None:
        level = self.levels[state.number - 1]
        params: dict[str, Any] | None = None
        takes_snapshot = False
        role: str | None = None
        if state.next_action == BEGIN:
            name, number = "begin", None
            text = shown = level.begin_sql
        elif state.next_action == self.finish_number:
            commits = closes_with_commit(state.decided, aborted=state.failure is not None)
            name = "commit" if commits else "rollback"
            number, text, shown = None, name.upper(), name.upper()
        else:
            step = state.walk.step
            name, number = step.name, state.walk.index + 1
            text, shown = step.psycopg_sql, step.sql
            params = step.params(state.walk.context)
            role = self.strategy.roles[state.walk.index].value
            takes_snapshot = level is Isolation.READ_COMMITTED or state.statements == 0
            state.statements += 1
        state.pending_event = Event(
            session=state.number,
            attempt=state.attempt,
            action=name,
            step_number=number,
            sql=shown,
            kind=Kind.DONE,
            takes_snapshot=takes_snapshot,
            role=role,
        )
        state.pending = state.session.submit(text, params)

    def _await(self, state: SessionState) -> bool:
        """Wait until the pending statement completes (True) or is seen blocked (False)."""
        assert state.pending is not None
        deadline = time.monotonic() + self.scheduler.timeout_s
        while True:
            try:
                result = state.pending.result(timeout=POLL_INTERVAL_S)
            except FutureTimeout:
                blockers = blocking_pids(self.scheduler.observer, state.session.pid)
                if blockers:
                    if not state.waiting_on:
                        state.waiting_on = tuple(self.pids.get(pid, 0) for pid in blockers)
                        self._record(state, Kind.WAIT, None)
                    return False
                if time.monotonic() > deadline:
                    action = state.pending_event.action if state.pending_event else "statement"
                    raise Stuck(
                        f"T{state.number}'s {action} ran {self.scheduler.timeout_s:g} s"
                        " without finishing or blocking"
                    ) from None
                continue
            self._complete(state, result)
            return True

    def _record(
        self,
        state: SessionState,
        kind: Kind,
        result: StatementResult | None,
        decision: str | None = None,
    ) -> None:
        assert state.pending_event is not None
        event = state.pending_event
        self.events.append(
            Event(
                session=event.session,
                attempt=event.attempt,
                action=event.action,
                step_number=event.step_number,
                sql=event.sql,
                kind=kind,
                rows=None if result is None else result.rows,
                waited_on=state.waiting_on,
                takes_snapshot=event.takes_snapshot and kind is not Kind.RESUME,
                sqlstate=None if result is None else result.sqlstate,
                message=None if result is None else result.message,
                decision=decision,
                role=event.role,
            )
        )

    def _complete(self, state: SessionState, result: StatementResult) -> None:
        kind = Kind.RESUME if state.waiting_on else Kind.DONE
        state.pending = None
        action = state.next_action
        decision: End | None = None
        sqlstate = result.sqlstate
        if sqlstate is not None:
            state.errors.append(sqlstate)
        if means_connection_lost(sqlstate):  # the session is gone: nothing more can be sent
            self._end_attempt(state, Ending.connection_lost(action == self.finish_number))
        elif action == BEGIN:
            state.next_action = 1
        elif action == self.finish_number:
            failure = state.failure or Ending(state.decided)
            self._end_attempt(state, Ending(sqlstate=sqlstate) if sqlstate else failure)
        elif sqlstate is not None:
            decision = state.walk.error(sqlstate)
            state.decided = decision
            state.failure = Ending.after_error(decision, sqlstate)
            state.next_action = self.finish_number
        else:
            decision = state.walk.row(result.rows[0] if result.rows else None)
            if decision is None:
                state.next_action = state.walk.index + 1
            else:
                state.decided = decision
                state.next_action = self.finish_number
        self._record(state, kind, result, decision.value if decision else None)
        state.waiting_on = ()
        state.pending_event = None

    def _end_attempt(self, state: SessionState, ending: Ending) -> None:
        """The transaction is over: ``Ending`` says what the caller is told, or to try again."""
        if ending.worth_retrying(self.retry, state.attempt):
            if means_connection_lost(ending.sqlstate):
                self._reconnect(state)
            state.attempt += 1
            state.walk = Walk(self.strategy, dict(self.context))
            state.next_action = BEGIN
            state.statements = 0
            state.decided = state.failure = None
            return
        state.outcome, state.reason = ending.outcome, ending.reason
        state.next_action = END

    def _reconnect(self, state: SessionState) -> None:
        del self.pids[state.session.pid]
        state.session.reconnect()
        self.pids[state.session.pid] = state.number

    def abandon(self) -> None:
        """After a stuck run: cancel what still waits, so every session can roll back."""
        for state in self.states:
            if state.pending is not None:
                self.scheduler.observer.execute(
                    "SELECT pg_cancel_backend(%s)", (state.session.pid,)
                )
                state.pending.result(timeout=self.scheduler.timeout_s)
                state.pending = None
