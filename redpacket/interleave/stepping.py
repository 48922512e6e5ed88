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

from redpacket.database.observe import POLL_INTERVAL_S
from redpacket.engines import Read
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
    snapshot_taken: bool = False  # a statement of this attempt fixed the snapshot
    reached: set[int] = field(default_factory=set)  # steps issued in this attempt
    ending: Ending | None = None  # the attempt's end, kept while releasing what outlives it
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
        self.release_number = len(strategy.steps) + 2  # after COMMIT/ROLLBACK: ``afterwards``
        self.engine = scheduler.engine
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
        read: Read | None = None
        role: str | None = None
        number: int | None = None
        if state.next_action == BEGIN:
            name = "begin"
            statements = self.engine.begin(level)
        elif state.next_action == self.finish_number:
            commits = closes_with_commit(state.decided, aborted=state.failure is not None)
            name = "commit" if commits else "rollback"
            statements = (name.upper(),)
        elif state.next_action == self.release_number:
            name, statements = "release", self._afterwards(state)
            params = state.walk.context
        else:
            step = state.walk.step
            name, number = step.name, state.walk.index + 1
            statements = (step.pyformat_sql,)
            params = step.params(state.walk.context)
            role = self.strategy.roles[state.walk.index].value
            read = self.engine.read_of(level, step.sql, state.snapshot_taken)
            if read is Read.SNAPSHOT:
                state.snapshot_taken = True
            state.reached.add(state.walk.index)
        shown = "; ".join(statements) if number is None else self.strategy.steps[number - 1].sql
        state.pending_event = Event(
            session=state.number,
            attempt=state.attempt,
            action=name,
            step_number=number,
            sql=shown,
            kind=Kind.DONE,
            takes_snapshot=read is Read.SNAPSHOT,
            role=role,
            read=read.value if read is not None else None,
            params=tuple(sorted((params or {}).items())) if number is not None else (),
        )
        state.pending = state.session.submit(statements, params)

    def _afterwards(self, state: SessionState) -> tuple[str, ...]:
        """What outlives the transaction (a session-level lock), for the steps it reached."""
        steps = self.strategy.steps
        return tuple(
            sql for i in sorted(state.reached) if (sql := steps[i].pyformat_afterwards) is not None
        )

    def _await(self, state: SessionState) -> bool:
        """Wait until the pending statement completes (True) or is seen blocked (False)."""
        assert state.pending is not None
        deadline = time.monotonic() + self.scheduler.timeout_s
        while True:
            try:
                result = state.pending.result(timeout=POLL_INTERVAL_S)
            except FutureTimeout:
                blockers = self.engine.blocked_by(self.scheduler.observer, state.session.pid)
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
                read=event.read,
                params=event.params,
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
        elif action == self.release_number:
            assert state.ending is not None
            self._end_attempt(state, state.ending)
        elif action == self.finish_number:
            failure = state.failure or Ending(state.decided)
            ending = Ending(sqlstate=sqlstate) if sqlstate else failure
            if self._afterwards(state):
                state.ending, state.next_action = ending, self.release_number
            else:
                self._end_attempt(state, ending)
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
            state.snapshot_taken = False
            state.reached = set()
            state.decided = state.failure = state.ending = None
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
                self.engine.cancel(self.scheduler.observer, state.session.pid)
                state.pending.result(timeout=self.scheduler.timeout_s)
                state.pending = None
