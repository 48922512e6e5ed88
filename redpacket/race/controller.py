"""Release the calls' statements in a schedule's order; see waits from the server.

The schedule language is ``explain``'s (``T1:1,T2:1,T1:end,T2:end`` or a named
schedule), counted in the calls' own statements: "let T1 run up to and including
its first statement". A released statement that does not come back within a few
milliseconds is looked up on the server (``pg_blocking_pids``; InnoDB's lock
waits): if it waits for a lock, the schedule moves on and the statement's
completion is recorded where it happens. Nothing sleeps to make an order happen.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from redpacket.database.url import URL, from_sqlalchemy
from redpacket.database.urls import engine_of
from redpacket.errors import LabError
from redpacket.interleave.schedule import Entry, parse_schedule
from redpacket.race.calls import Call, Calls, Participants, State, Statement
from redpacket.race.timeline import RaceEvent, RaceResult, with_values

POLL_S = 0.010
ANY_LENGTH = 10**6  # the calls' lengths are not known before they run


class RaceError(LabError):
    """A race that cannot be run as asked (a clear failure, not a hang)."""


def schedule_entries(schedule: str, calls: int) -> tuple[Entry, ...]:
    named = max((int(n) for n in re.findall(r"\b[Tt](\d+)\b", schedule)), default=0)
    if named > calls:
        raise RaceError(
            f"schedule {schedule!r} names T{named}, but the race has {calls}"
            f" call{'s' if calls != 1 else ''} (T1..T{calls})"
        )
    parsed = parse_schedule(schedule, ANY_LENGTH)
    if any(entry.target == 0 for entry in parsed.entries):
        raise RaceError(
            f"schedule {schedule!r} stops a call at 'begin', which is no statement of your code"
            " (a transaction starts with its first statement): use T2:1"
        )
    if parsed.sessions > calls:
        raise RaceError(
            f"schedule {schedule!r} names T{parsed.sessions}, but the race has {calls}"
            f" call{'s' if calls != 1 else ''} (T1..T{calls})"
        )
    return parsed.entries


@dataclass
class _Waiting:
    statement: Statement
    on: tuple[int, ...]


class Controller:
    """One race: the calls, the server's eye on them, and the timeline so far.

    The calls come from ``participants``, made afresh for each run: Python functions on
    a SQLAlchemy engine (``Calls``, what ``race.interleave`` races), or programs in any
    language behind the wire proxy (``redpacket race``). One scheduler serves both."""

    def __init__(
        self, url: URL, participants: Callable[[], Participants], calls: int, *,
        step_timeout: float = 30.0,
    ) -> None:  # fmt: skip
        if calls < 1:
            raise RaceError("a race needs at least one call")
        self.url = url
        self.database = engine_of(self.url)
        self.participants = participants
        self.count = calls
        self.step_timeout = step_timeout
        self.events: list[RaceEvent] = []
        self.waiting: dict[int, _Waiting] = {}  # call -> its statement the server holds

    # -- watching -----------------------------------------------------------------------

    def _record(
        self, call: Call, statement: Statement, kind: str, on: tuple[int, ...] = ()
    ) -> None:
        sql = with_values(statement.sql, statement.params)
        self.events.append(RaceEvent(len(self.events) + 1, call.number, statement.number,
                                     sql, kind, on, statement.error))  # fmt: skip

    def _holders(
        self, observer: Any, calls: Participants, statement: Statement
    ) -> tuple[int, ...] | None:
        """The calls (0: a backend outside the race) the statement waits for; None: not waiting."""
        if statement.session_id is None:
            return None
        pids = self.database.blocked_by(observer, statement.session_id)
        if not pids:
            return None
        ordered = sorted(calls.calls, key=lambda c: not c.finished)  # finished ones first
        by_pid = {c.current.session_id: c.number for c in ordered if c.current is not None}
        return tuple(sorted({by_pid.get(pid, 0) for pid in pids}))

    def _settle_one(
        self, calls: Participants, call: Call, statement: Statement, observer: Any
    ) -> None:
        """Wait for ``statement`` to end, or to be seen waiting for a lock."""
        started = time.monotonic()
        with calls.changed:
            while not statement.done:
                calls.changed.wait(POLL_S)
                if statement.done:
                    break
                on = self._holders(observer, calls, statement)
                if on is not None:
                    self.waiting[call.number] = _Waiting(statement, on)
                    self._record(call, statement, "wait", on)
                    return
                if time.monotonic() - started > self.step_timeout:
                    raise RaceError(
                        f"T{call.number}'s statement {statement.number}"
                        f" ({short_sql(statement.sql)})"
                        f" did not finish in {self.step_timeout:.0f} s and the server does not"
                        " show it waiting for a lock"
                    )
            self._record(call, statement, "error" if statement.error else "done")

    def _resumed(self, calls: Participants, observer: Any) -> bool:
        """Record the waiting statements the server has let go since the last look: each
        waiting statement is either back, or still seen waiting by the server (one that
        was let go but is still on its way is waited for), so what can move next does
        not depend on timing. True if any came back."""
        back = False
        started = time.monotonic()
        with calls.changed:
            for number, wait in list(self.waiting.items()):
                while not wait.statement.done:
                    if self._holders(observer, calls, wait.statement) is not None:
                        break
                    calls.changed.wait(POLL_S)
                    if time.monotonic() - started > self.step_timeout:
                        break
                if wait.statement.done:
                    del self.waiting[number]
                    kind = "resume-error" if wait.statement.error else "resume"
                    self._record(calls.calls[number - 1], wait.statement, kind, wait.on)
                    back = True
        return back

    def _park_or_finish(self, calls: Participants, call: Call) -> None:
        """Let the call's Python run until its next statement, or its end."""
        started = time.monotonic()
        with calls.changed:
            while call.state is State.RUNNING:
                calls.changed.wait(POLL_S)
                if time.monotonic() - started > self.step_timeout:
                    raise RaceError(
                        f"T{call.number} ran {self.step_timeout:.0f} s without reaching a"
                        " statement or its end"
                    )

    def _step(self, calls: Participants, call: Call, observer: Any) -> bool:
        """Release one statement of ``call``; False when it cannot move (ended or held)."""
        if call.number in self.waiting:
            return False
        self._park_or_finish(calls, call)
        if call.finished:
            return False
        with calls.changed:
            statement = call.current
            assert statement is not None
            call.allowed = call.started + 1
            calls.changed.notify_all()
        self._settle_one(calls, call, statement, observer)
        self._resumed(calls, observer)
        return True

    def _run_to(self, calls: Participants, call: Call, target: float, observer: Any) -> bool:
        moved = False
        while call.completed < target and not call.finished:
            if not self._step(calls, call, observer):
                break
            moved = True
        return moved

    # -- a whole race ---------------------------------------------------------------------

    def run(self, entries: Sequence[Entry]) -> RaceResult:
        observer = self.database.connect(self.url, autocommit=True)
        calls = self.participants()
        targets = [0.0] * self.count
        try:
            with calls:
                try:
                    for entry in entries:
                        targets[entry.session - 1] = max(targets[entry.session - 1], entry.target)
                        self._settle_all(calls, targets, observer, focus=entry.session)
                    targets = [math.inf] * self.count
                    self._settle_all(calls, targets, observer, focus=None, finish=True)
                except BaseException:
                    self._cancel_waiting(calls, observer)  # before the threads are joined
                    raise
        finally:
            observer.close()
        return RaceResult(tuple(self.events), tuple(calls.calls), self.database.label)

    def _settle_all(
        self, calls: Participants, targets: list[float], observer: Any, *, focus: int | None,
        finish: bool = False,
    ) -> None:  # fmt: skip
        """Move the focused call to its target, then let any call below its target move."""
        started = time.monotonic()
        while True:
            moved = False
            order = calls.calls if focus is None else [calls.calls[focus - 1], *calls.calls]
            for call in order:
                moved = self._run_to(calls, call, targets[call.number - 1], observer) or moved
            moved = self._resumed(calls, observer) or moved
            if not finish:
                if not moved:
                    return
                continue
            if all(call.finished for call in calls.calls):
                return
            if moved:
                started = time.monotonic()  # the time limit is for standing still
            else:
                self._check_stuck(calls, observer, started)

    def run_choices(self, choices: Sequence[int]) -> tuple[RaceResult, list[int], list[set[int]]]:
        """Release one statement at a time, of the call ``choices`` names while they last
        (then of the lowest-numbered call that can move); a call waiting for a lock
        cannot be chosen. Returns the race, the calls released in order, and at each
        point the calls that could have been."""
        observer = self.database.connect(self.url, autocommit=True)
        calls = self.participants()
        executed: list[int] = []
        available: list[set[int]] = []
        started = time.monotonic()
        try:
            with calls:
                try:
                    while True:
                        movable = self._movable(calls)
                        if not movable:
                            if all(call.finished for call in calls.calls):
                                break
                            if self._resumed(calls, observer):
                                started = time.monotonic()
                            else:
                                self._check_stuck(calls, observer, started)
                            continue
                        started = time.monotonic()
                        index = len(executed)
                        wanted = choices[index] if index < len(choices) else None
                        pick = wanted if wanted in movable else min(movable)
                        executed.append(pick)
                        available.append(movable)
                        self._step(calls, calls.calls[pick - 1], observer)
                        self._resumed(calls, observer)
                except BaseException:
                    self._cancel_waiting(calls, observer)  # before the threads are joined
                    raise
        finally:
            observer.close()
        result = RaceResult(tuple(self.events), tuple(calls.calls), self.database.label)
        return result, executed, available

    def _movable(self, calls: Participants) -> set[int]:
        movable = set()
        for call in calls.calls:
            if call.finished or call.number in self.waiting:
                continue
            self._park_or_finish(calls, call)
            if not call.finished:
                movable.add(call.number)
        return movable

    def _check_stuck(self, calls: Participants, observer: Any, started: float) -> None:
        with calls.changed:
            calls.changed.wait(POLL_S)
        self._resumed(calls, observer)
        if time.monotonic() - started <= self.step_timeout:
            return
        held = ", ".join(
            f"T{n} waits for "
            + ", ".join(f"T{o}" if o else "a backend outside the race" for o in w.on)
            for n, w in self.waiting.items()
        )
        raise RaceError(f"the race cannot go on: {held or 'no call can move'}")

    def _cancel_waiting(self, calls: Participants, observer: Any) -> None:
        for wait in self.waiting.values():
            if wait.statement.session_id is not None:
                self.database.cancel(observer, wait.statement.session_id)
        calls.release_all()


def for_engine(
    engine: Engine, fns: Sequence[Callable[[], Any]], *, step_timeout: float = 30.0
) -> Controller:
    """A race of Python functions on the application's SQLAlchemy engine."""
    for fn in fns:
        if not callable(fn):
            raise RaceError(f"{fn!r} is not callable: pass the functions themselves")
    url = from_sqlalchemy(engine.url)
    database = engine_of(url)

    def calls() -> Participants:
        return Calls(engine, database, list(fns))

    return Controller(url, calls, len(fns), step_timeout=step_timeout)


def short_sql(sql: str, width: int = 60) -> str:
    """SQL on one line, cut to ``width`` characters, for a one-line message."""
    flat = " ".join(sql.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."
