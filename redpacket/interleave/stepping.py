"""A red-packet strategy at a schedule, as the steps of a spec the runner launches.

The spec runner (``redpacket.specs.runner``, isolationtester's algorithm) sends
each step, sees from the server whether it waits, and polls the waiting ones
after every step. This is its step source for a strategy: which session goes
next is the schedule's (``Ti:X`` targets, the current entry's session first);
what it sends is the strategy's (``Walk``: the next step follows from the rows
of the last, values written in as literals, so each step is plain spec SQL);
and each wait and completion becomes an event of the timeline, with what the
explanation needs: who waited on whom, which statement fixed the snapshot, how
the strategy decided, retries as new attempts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy.engine import Dialect

from redpacket.engines import Engine, Lock, LockConflict, Read
from redpacket.interleave.schedule import BEGIN, END, Schedule
from redpacket.interleave.timeline import Event, Kind
from redpacket.isolation import Isolation
from redpacket.retry import CONNECTION_LOST, RetryPolicy, means_connection_lost
from redpacket.specs.events import Failure, Result, Table
from redpacket.specs.literal import bound
from redpacket.specs.model import PermutationStep
from redpacket.specs.model import Step as SpecStep
from redpacket.specs.runner import Launch, Runner
from redpacket.specs.wire import SpecSession
from redpacket.strategies import End, Ending, Outcome, Strategy, Walk, closes_with_commit


@dataclass(frozen=True)
class StatementResult:
    """A step's answer as the strategy reads it: rows (None when it raised), or the
    engine's code (a SQLSTATE, MySQL's error number; 08006 when the session is gone)."""

    rows: tuple[tuple[Any, ...], ...] | None
    code: str | None = None
    message: str | None = None

    @classmethod
    def of(cls, results: Sequence[Result], session: SpecSession) -> StatementResult:
        for result in results:
            if isinstance(result, Failure):
                lost = session.lost()
                code = CONNECTION_LOST if lost else result.code or result.sqlstate or "?"
                return cls(None, code, result.message.splitlines()[0] if result.message else "")
        tables = [result for result in results if isinstance(result, Table)]
        if tables:
            return cls(tables[-1].rows)
        changed, inserted = session.changed()  # a write without RETURNING (MySQL)
        return cls(((inserted or changed,),) if changed > 0 else ())


@dataclass
class SessionState:
    """Where one session stands in the run."""

    index: int  # the runner's session
    walk: Walk
    target: float = -1
    next_action: float = BEGIN  # 0 begin, k step k, steps + 1 the transaction's end
    attempt: int = 1
    snapshot_taken: bool = False  # a statement of this attempt fixed the snapshot
    reached: set[int] = field(default_factory=set)  # steps issued in this attempt
    ending: Ending | None = None  # the attempt's end, kept while releasing what outlives it
    in_flight: Event | None = None  # the statement sent, as the timeline will record it
    launched: int = 0  # statements sent in the whole run (names the spec's steps)
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
        return self.index + 1


class Stepper:
    """One run's step source: session states, the schedule's progress, the events so far."""

    dynamic = True

    def __init__(
        self,
        runner: Runner,
        observer: Any,
        engine: Engine,
        dialect: Dialect,
        strategy: Strategy,
        levels: tuple[Isolation, ...],
        schedule: Schedule,
        retry: RetryPolicy,
        context: dict[str, Any],
        reconnected: Callable[[int], None],
    ) -> None:
        self.runner, self.observer, self.engine, self.dialect = runner, observer, engine, dialect
        self.strategy, self.levels, self.retry, self.context = strategy, levels, retry, context
        self.reconnected = reconnected
        self.states = [
            SessionState(index, Walk(strategy, dict(context))) for index in range(schedule.sessions)
        ]
        self.entries = list(schedule.entries)
        self.preferred: SessionState | None = None
        self.final = False
        self.events: list[Event] = []
        self.finish_number = len(strategy.steps) + 1
        self.release_number = len(strategy.steps) + 2  # after COMMIT/ROLLBACK: ``afterwards``
        self.blockers: dict[int, list[int]] = {}  # pid -> the backends it waits for

    # -- the runner's questions -------------------------------------------------------------

    def blocked(self, session: SpecSession) -> bool:
        """Waiting for any backend, not only the run's own (an outsider's lock is a wait
        the timeline shows, and one the run reports stuck on)."""
        waits_for = self.engine.blocked_by(self.observer, session.pid)
        self.blockers[session.pid] = waits_for
        return bool(waits_for)

    def next(self, busy: Sequence[bool]) -> Launch | None:
        """The next statement: the current entry's session first, until every session
        is waiting, finished or at its target; then the schedule's next entry."""
        while True:
            runnable = [
                s
                for s in self.states
                if not busy[s.index] and not s.finished and s.next_action <= s.target
            ]
            if runnable:
                return self._launch(self.preferred if self.preferred in runnable else runnable[0])
            if self.entries:
                entry = self.entries.pop(0)
                self.preferred = self.states[entry.session - 1]
                self.preferred.target = max(self.preferred.target, entry.target)
            elif not self.final:  # after the last entry every session runs to its end
                self.final, self.preferred = True, None
                for state in self.states:
                    state.target = END
            else:
                return None

    def waiting(self, launch: Launch) -> None:
        state = self.states[launch.step.session]
        pids = {self.runner.conns[s.index].session.pid: s.number for s in self.states}
        session = self.runner.conns[state.index].session
        state.waiting_on = tuple(pids.get(pid, 0) for pid in self.blockers.get(session.pid, ()))
        self._record(state, Kind.WAIT, None)

    def completed(self, launch: Launch, results: Sequence[Result]) -> None:
        state = self.states[launch.step.session]
        self._complete(state, StatementResult.of(results, self.runner.conns[state.index].session))

    def describe_waits(self) -> str:
        return ", ".join(
            f"T{s.number} waits for "
            + (", ".join(f"T{w}" if w else "another backend" for w in s.waiting_on) or "?")
            for s in self.states
            if s.waiting_on
        )

    # -- sending --------------------------------------------------------------------------

    def _launch(self, state: SessionState) -> Launch:
        level = self.levels[state.index]
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
            statements = (step.sql,)
            params = step.params(state.walk.context)
            role = self.strategy.roles[state.walk.index].value
            read = self.engine.read_of(level, step.sql, state.snapshot_taken)
            if read is Read.SNAPSHOT:
                state.snapshot_taken = True
            state.reached.add(state.walk.index)
        shown = "; ".join(statements) if number is None else self.strategy.steps[number - 1].sql
        state.in_flight = Event(
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
        sql = "; ".join(bound(s, params or {}, self.dialect) for s in statements)
        state.launched += 1
        label = f"t{state.number}_{state.launched}_{name}"  # a spec step's name, unique
        if state.attempt > 1:
            label += f"_attempt{state.attempt}"
        return Launch(PermutationStep(label), SpecStep(label, sql, state.index))

    def _afterwards(self, state: SessionState) -> tuple[str, ...]:
        """What outlives the transaction (a session-level lock), for the steps it reached."""
        steps = self.strategy.steps
        return tuple(sql for i in sorted(state.reached) if (sql := steps[i].afterwards) is not None)

    # -- what came back ---------------------------------------------------------------------

    def _deadlock_locks(self, state: SessionState, code: str | None) -> tuple[LockConflict, ...]:
        """The locks of the deadlock the server broke by refusing this session, as it
        reported them, holders named by the run's session numbers."""
        if code is None or means_connection_lost(code):
            return ()
        numbers = {self.runner.conns[s.index].session.pid: s.number for s in self.states}
        victim = self.runner.conns[state.index].session.pid
        conflicts = self.engine.deadlock_locks(self.observer, code, victim)

        def named(lock: Lock) -> Lock:
            return replace(lock, holder=numbers.get(lock.holder, 0))

        return tuple(
            LockConflict(numbers.get(c.waiting, 0), named(c.wanted), tuple(map(named, c.held)))
            for c in conflicts
        )

    def _record(
        self,
        state: SessionState,
        kind: Kind,
        result: StatementResult | None,
        decision: str | None = None,
    ) -> None:
        assert state.in_flight is not None
        event = state.in_flight
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
                sqlstate=None if result is None else result.code,
                message=None if result is None else result.message,
                decision=decision,
                role=event.role,
                read=event.read,
                params=event.params,
                locks=self._deadlock_locks(state, None if result is None else result.code),
            )
        )

    def _complete(self, state: SessionState, result: StatementResult) -> None:
        kind = Kind.RESUME if state.waiting_on else Kind.DONE
        action = state.next_action
        decision: End | None = None
        code = result.code
        if code is not None:
            state.errors.append(code)
        if means_connection_lost(code):  # the session is gone: nothing more can be sent
            self._end_attempt(state, Ending.connection_lost(action == self.finish_number))
        elif action == BEGIN:
            state.next_action = 1
        elif action == self.release_number:
            assert state.ending is not None
            self._end_attempt(state, state.ending)
        elif action == self.finish_number:
            failure = state.failure or Ending(state.decided)
            ending = Ending(sqlstate=code) if code else failure
            if self._afterwards(state):
                state.ending, state.next_action = ending, self.release_number
            else:
                self._end_attempt(state, ending)
        elif code is not None:
            decision = state.walk.error(code)
            state.decided = decision
            state.failure = Ending.after_error(decision, code)
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
        state.in_flight = None

    def _end_attempt(self, state: SessionState, ending: Ending) -> None:
        """The transaction is over: ``Ending`` says what the caller is told, or to try again."""
        if ending.worth_retrying(self.retry, state.attempt):
            if means_connection_lost(ending.sqlstate):
                self.runner.reopen(state.index)
                self.reconnected(state.index)
            state.attempt += 1
            state.walk = Walk(self.strategy, dict(self.context))
            state.next_action = BEGIN
            state.snapshot_taken = False
            state.reached = set()
            state.decided = state.failure = state.ending = None
            return
        state.outcome, state.reason = ending.outcome, ending.reason
        state.next_action = END
