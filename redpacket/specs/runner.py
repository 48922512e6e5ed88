"""Run a spec's permutations exactly as PostgreSQL's isolationtester runs them.

The algorithm is the tester's (``run_permutation``, ``try_complete_step(s)``), so
a spec's output here can be diffed against its expected file: send a step, give
it 10 ms, and if no reply came ask the server whether the session waits for a lock
held by another session of the spec; if so report ``<waiting ...>`` and go on with
the next step, polling the waiting ones after each step; when a step's session is
still busy, wait for it (polling the others meanwhile). Blocker annotations hold a
step's completion back: ``(*)`` reports it waiting once whatever happens, ``(other)``
keeps it open while that step runs, ``(other notices N)`` until that session sent N
more notices. Nothing sleeps to make an order happen: every wait is the server's.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from redpacket.specs.events import (
    Event,
    Failure,
    Notice,
    Notify,
    PermutationStarted,
    Problem,
    Result,
    SendFailed,
    SetupResult,
    SpecParsed,
    StepCanceled,
    StepCompleted,
    StepResult,
    StepWaiting,
    Table,
)
from redpacket.specs.model import BlockerKind, Permutation, PermutationStep, Spec, Step
from redpacket.specs.parser import unused_steps
from redpacket.specs.wire import SpecServer, SpecSession, WireError

POLL_S = 0.010  # isolationtester checks for lock waits every 10 ms
DEFAULT_STEP_TIMEOUT_S = 300.0


class SpecAborted(Exception):
    """The run stopped where isolationtester exits (the reason is the last event)."""


class Stalled(Exception):
    """Nothing moved for the runner's ``stall_s``: ``launch`` ran that long without
    finishing or being seen waiting, or (None) no waiting step was released."""

    def __init__(self, launch: Launch | None) -> None:
        super().__init__(launch.step.name if launch is not None else "waiting steps")
        self.launch = launch


@dataclass(eq=False)
class Launch:
    """One step of a permutation, as launched (identity matters: a step can repeat)."""

    pstep: PermutationStep
    step: Step
    notice_targets: dict[int, int] = field(default_factory=dict)  # blocker index -> count


class StepSource(Protocol):
    """Where a run's steps come from, one at a time.

    A spec's permutation is fixed in advance (``PermutationSource``); a red-packet
    strategy walked at a schedule (``interleave.stepping``) chooses each session's next
    step from the results of its last, so it is told of every wait and completion.
    """

    dynamic: bool  # whether a completion can bring steps when ``next`` had none

    def next(self, busy: Sequence[bool]) -> Launch | None:
        """The next step to launch (``busy``: which sessions have a step in flight)."""
        ...

    def waiting(self, launch: Launch) -> None:
        """The server reported ``launch`` waiting for a lock."""
        ...

    def completed(self, launch: Launch, results: Sequence[Result]) -> None: ...


class PermutationSource:
    """A permutation's steps in its order; with ``defer_waiting``, the first whose
    session is not waiting for a lock, so the others go on as a person at two terminals
    would (Hermitage's way)."""

    dynamic = False

    def __init__(self, spec: Spec, permutation: Permutation, *, defer_waiting: bool) -> None:
        self.spec, self.defer_waiting = spec, defer_waiting
        self.pending = list(permutation.steps)

    def next(self, busy: Sequence[bool]) -> Launch | None:
        if not self.pending:
            return None
        chosen = 0
        if self.defer_waiting:
            chosen = next(
                (i for i, p in enumerate(self.pending) if not busy[self.spec.step(p.name).session]),
                0,
            )
        pstep = self.pending.pop(chosen)
        return Launch(pstep, self.spec.step(pstep.name))

    def waiting(self, launch: Launch) -> None:
        pass

    def completed(self, launch: Launch, results: Sequence[Result]) -> None:
        pass


@dataclass(eq=False)
class _Conn:
    name: str
    session: SpecSession
    active: Launch | None = None
    notices: int = 0


def step_timeout() -> float:
    """PGISOLATIONTIMEOUT (seconds), as isolationtester reads it."""
    value = os.environ.get("PGISOLATIONTIMEOUT")
    if value is None:
        return DEFAULT_STEP_TIMEOUT_S
    leading = re.match(r"\s*([+-]?\d+)", value)  # atoi(): the leading integer, else 0
    return float(int(leading.group(1))) if leading else 0.0


def all_permutations(spec: Spec) -> Iterator[Permutation]:
    """Every interleaving of the sessions' steps, in isolationtester's order."""
    piles = [list(session.steps) for session in spec.sessions]

    def recurse(taken: list[int], chosen: list[str]) -> Iterator[list[str]]:
        found = False
        for i, pile in enumerate(piles):
            if taken[i] < len(pile):
                found = True
                chosen.append(pile[taken[i]].name)
                taken[i] += 1
                yield from recurse(taken, chosen)
                taken[i] -= 1
                chosen.pop()
        if not found:
            yield list(chosen)

    for names in recurse([0] * len(piles), []):
        yield Permutation(tuple(PermutationStep(name) for name in names))


def permutations_of(spec: Spec) -> Iterator[Permutation]:
    return iter(spec.permutations) if spec.permutations else all_permutations(spec)


class Runner:
    """One spec on one server: sessions opened once, permutations run in turn."""

    def __init__(
        self,
        spec: Spec,
        server: SpecServer,
        emit: Callable[[Event], None],
        *,
        max_wait: float | None = None,
        defer_waiting: bool = False,
        clock: Callable[[], float] = time.monotonic,
        blocked: Callable[[SpecSession], bool] | None = None,
        stall_s: float | None = None,
        poll_s: float = POLL_S,
    ) -> None:
        """``blocked`` replaces the server's own wait test (a strategy's run counts waits
        for any backend); with ``stall_s``, a step that neither finishes nor waits, or
        waits that nothing releases, raise ``Stalled`` after that long instead of being
        cancelled and failed as isolationtester does."""
        self.spec, self.server, self.emit, self.clock = spec, server, emit, clock
        self.defer_waiting = defer_waiting
        self.blocked = blocked if blocked is not None else server.is_blocked
        self.stall_s = stall_s
        self.poll_s = poll_s  # how long a reply may take before the server is asked
        self._source: StepSource = PermutationSource(spec, Permutation(()), defer_waiting=False)
        self.max_wait = step_timeout() if max_wait is None else max_wait
        self.any_new_notice = False
        self.conns: list[_Conn] = []
        try:
            for session in spec.sessions:
                conn = _Conn(session.name, None)  # type: ignore[arg-type]
                conn.session = server.open(session.name, self._on_notice(conn))
                self.conns.append(conn)
        except BaseException:
            self.close()  # the sessions opened so far
            raise
        server.watch([conn.session for conn in self.conns])

    def _on_notice(self, conn: _Conn) -> Callable[[str], None]:
        def noticed(message: str) -> None:
            self.emit(Notice(conn.name, message))
            conn.notices += 1
            self.any_new_notice = True

        return noticed

    def close(self) -> None:
        for conn in self.conns:
            conn.session.close()

    # -- a whole spec -------------------------------------------------------------------

    def run(self, permutations: list[Permutation] | None = None) -> None:
        for name in unused_steps(self.spec):
            self.emit(Problem(f"unused step name: {name}"))
        self.emit(SpecParsed(len(self.spec.sessions)))
        chosen = permutations if permutations is not None else permutations_of(self.spec)
        for permutation in chosen:
            try:
                self.run_permutation(permutation)
            except SpecAborted:
                self._clean_up()
                raise

    def _clean_up(self) -> None:
        """After a stop, leave the spec database as the teardown would (isolationtester
        exits and leaves it to the next run to trip over): end the sessions, whose
        transactions roll back, then run the teardown block, printing nothing."""
        for conn in self.conns:
            conn.session.close()
        if self.spec.teardown is not None:
            self.server.control.execute(self.spec.teardown)

    def _fail(self, text: str) -> SpecAborted:
        self.emit(Problem(text, fatal=True))
        return SpecAborted(text)

    def _block(
        self, session: SpecSession, sql: str, label: str, *, fatal: bool, owner: str | None = None
    ) -> None:
        result = session.execute(sql)
        if isinstance(result, Table):
            self.emit(SetupResult(result, owner))
        elif isinstance(result, Failure):
            message = session.last_error()  # libpq's text, with its newline if it has one
            problem = Problem(f"{label}: {message.removesuffix(chr(10))}", fatal,
                              message.endswith("\n"))  # fmt: skip
            self.emit(problem)
            if fatal:
                raise SpecAborted(problem.text)

    def run_permutation(self, permutation: Permutation) -> None:
        self.emit(PermutationStarted(tuple(p.name for p in permutation.steps)))
        control = self.server.control
        for sql in self.spec.setup:
            self._block(control, sql, "setup failed", fatal=True)
        self._session_blocks("setup", fatal=True)
        self.drive(PermutationSource(self.spec, permutation, defer_waiting=self.defer_waiting))
        self._session_blocks("teardown", fatal=False)
        if self.spec.teardown is not None:
            self._block(control, self.spec.teardown, "teardown failed", fatal=False)

    def drive(self, source: StepSource) -> None:
        """Launch the source's steps in turn, as isolationtester's ``run_permutation``."""
        self._source = source
        waiting: list[Launch] = []
        while True:
            launch = source.next([conn.active is not None for conn in self.conns])
            if launch is None:
                if source.dynamic and waiting:  # a completion may bring the next steps
                    waiting = self._progress(waiting)
                    continue
                break
            pstep = launch.pstep
            conn = self.conns[launch.step.session]
            if conn.active is not None:
                started = self.clock()
                while conn.active is not None:
                    old = conn.active
                    if not self.try_complete(old, retry=True, nonblock=False):
                        waiting.remove(old)
                    waiting = self.try_complete_all(waiting, nonblock=True)
                    if conn.active is not None and self.clock() - started > 2 * self.max_wait:
                        active = " ".join(
                            c.active.pstep.name for c in self.conns if c.active is not None
                        )
                        seconds = int(self.clock() - started)
                        self.emit(Problem(f"step {conn.active.pstep.name} timed out after"
                                          f" {seconds} seconds"))  # fmt: skip
                        raise self._fail(f"active steps are: {active}")
            try:
                conn.session.send(launch.step.sql)
            except WireError as lost:  # isolationtester prints this one to stdout
                self.emit(SendFailed(launch.step.name, str(lost)))
                if not source.dynamic:
                    raise SpecAborted(f"failed to send query for step {launch.step.name}") from None
                source.completed(launch, [Failure(None, str(lost))])  # the step's answer
                continue
            conn.active = launch
            for j, blocker in enumerate(pstep.blockers):
                if blocker.kind is BlockerKind.NOTICES:
                    other = self.conns[self.spec.step(str(blocker.step)).session]
                    launch.notice_targets[j] = blocker.notices + other.notices
            must_wait = self.try_complete(launch, retry=False, nonblock=True)
            waiting = self.try_complete_all(waiting, nonblock=True)
            if must_wait:
                waiting.append(launch)
        waiting = self.try_complete_all(waiting, nonblock=False)
        if waiting:
            raise self._fail("failed to complete permutation due to mutually-blocking steps")

    def _progress(self, waiting: list[Launch]) -> list[Launch]:
        """Poll the waiting steps until one completes (a dynamic source has nothing else
        to launch until then)."""
        started = self.clock()
        while True:
            before = len(waiting)
            waiting = self.try_complete_all(waiting, nonblock=True)
            if len(waiting) < before:
                return waiting
            if self.stall_s is not None and self.clock() - started > self.stall_s:
                raise Stalled(None)

    def abandon(self) -> None:
        """Cancel the steps still in flight (a stalled run) and read their answers, so
        every session is idle again."""
        for conn in self.conns:
            if conn.active is not None:
                conn.session.cancel()
                for _ in conn.session.results():
                    pass
                conn.active = None

    def reopen(self, index: int) -> None:
        """A new session in place of one the server ended (a retry goes on in it)."""
        conn = self.conns[index]
        conn.session.close()
        conn.session = self.server.open(conn.name, self._on_notice(conn))
        conn.active = None
        self.server.watch([c.session for c in self.conns])

    def _session_blocks(self, kind: str, *, fatal: bool) -> None:
        """Each session's own setup (or teardown) block, in the spec's session order."""
        for conn, session in zip(self.conns, self.spec.sessions, strict=True):
            sql = session.setup if kind == "setup" else session.teardown
            if sql is not None:
                self._block(conn.session, sql, f"{kind} of session {conn.name} failed",
                            fatal=fatal, owner=conn.name)  # fmt: skip

    # -- isolationtester's try_complete_steps and try_complete_step ---------------------------

    def try_complete_all(self, waiting: list[Launch], *, nonblock: bool) -> list[Launch]:
        while True:
            self.any_new_notice = False
            before = len(waiting)
            have_blocker = False
            still = []
            for launch in waiting:
                if self.try_complete(launch, retry=True, nonblock=nonblock):
                    have_blocker = have_blocker or bool(launch.pstep.blockers)
                    still.append(launch)
            waiting = still
            if not (have_blocker and (len(waiting) < before or self.any_new_notice)):
                return waiting

    def _consume(self, session: SpecSession) -> None:
        try:
            session.consume()
        except WireError as lost:
            raise self._fail(f"PQconsumeInput failed: {str(lost).rstrip()}") from None

    def _has_blocker(self, launch: Launch) -> bool:
        for j, blocker in enumerate(launch.pstep.blockers):
            if blocker.kind is BlockerKind.OTHER_STEP:
                other = self.conns[self.spec.step(str(blocker.step)).session]
                if other.active is not None and other.active.step.name == blocker.step:
                    return True
            elif blocker.kind is BlockerKind.NOTICES:
                other = self.conns[self.spec.step(str(blocker.step)).session]
                if other.notices < launch.notice_targets.get(j, 0):
                    return True
        return False

    def try_complete(self, launch: Launch, *, retry: bool, nonblock: bool) -> bool:
        """True if the step is not complete (waiting, or held back by a blocker)."""
        step, conn = launch.step, self.conns[launch.step.session]
        session = conn.session
        if not retry and any(b.kind is BlockerKind.ONCE for b in launch.pstep.blockers):
            self.emit(StepWaiting(step.name, conn.name, step.sql, forced=True))
            return True
        started = self.clock()
        canceled = False
        while session.busy():
            if session.readable(self.poll_s):
                self._consume(session)
                continue
            if nonblock and self.blocked(session):
                self._consume(session)
                if not session.busy():
                    break
                if not retry:
                    self.emit(StepWaiting(step.name, conn.name, step.sql, forced=False))
                    self._source.waiting(launch)
                return True
            elapsed = self.clock() - started
            if self.stall_s is not None:
                if elapsed > self.stall_s:
                    raise Stalled(launch)
                continue
            if elapsed > self.max_wait and not canceled and session.cancel():
                self.emit(StepCanceled(step.name, int(elapsed)))
                canceled = True
            if elapsed > 2 * self.max_wait:
                raise self._fail(f"step {step.name} timed out after {int(elapsed)} seconds")
        if self._has_blocker(launch):
            if not retry:
                self.emit(StepWaiting(step.name, conn.name, step.sql, forced=True))
            return True
        self.emit(StepCompleted(step.name, conn.name, step.sql, after_wait=retry))
        results = []
        for result in session.results():
            self.emit(StepResult(step.name, conn.name, result))
            results.append(result)
        for note in session.notifications():
            sender = next(
                (c.name for c in self.conns if c.session.pid == note.sender_pid),
                f"PID {note.sender_pid}",
            )
            self.emit(Notify(conn.name, note.channel, note.payload, sender))
        conn.active = None
        self._source.completed(launch, results)
        return False
