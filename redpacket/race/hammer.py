"""Hammer: N workers call the user's function together, round after round.

No pausing here: the point is real contention. A race on one key is decided in
the first microseconds of a round, so one barrier at the start is not enough:
threads drift apart after their first call, and cold connections spend the first
round connecting (a one-key check-then-insert hammered that way was reported
correct in about one full run of six). So every round starts all workers at a
barrier, the connections are opened and warmed (one round trip each) before the
first round, ``reset`` (optional) runs between rounds and ``check`` after each
of them when there is a reset (else once, at the end), and the result says how
many rounds really overlapped: at least two calls in flight at one instant.

A barrier before the call still lets the first thread the barrier wakes run its
whole transaction while the last is being woken (the GIL hands the threads on one
by one): a one-key race was missed in about 3 runs of 100. So the calls of a round
meet once more, at their first statement (SQLAlchemy's ``before_cursor_execute``
on the engine), and the first statements go to the server together. A call that
sends no statement through the engine would keep the others waiting: after the
first round in which not every call arrived within ``GATE_S``, the hammer stops
gating, and says so.

Each call's outcome is kept as ``stress`` keeps a request's: it returned, it
failed with the server's code (the engine names it), or its outcome is unknown
(the connection was lost, or it raised something that is not the database's),
since a lost COMMIT may or may not have committed.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool, QueuePool

from redpacket.database.url import from_sqlalchemy
from redpacket.database.urls import engine_of
from redpacket.race.calls import describe
from redpacket.race.controller import RaceError

GATE_S = 1.0  # how long the calls of a round wait for each other at their first statement


@dataclass
class Hammered:
    workers: int
    times: int  # rounds: each worker calls once a round
    returned: int = 0
    failed: Counter[str] = field(default_factory=Counter)  # the server's code -> calls
    unknown: list[str] = field(default_factory=list)  # why each unknown outcome is unknown
    seconds: float = 0.0
    overlapped: int = 0  # rounds in which two calls or more were in flight at one instant
    broken_rounds: list[int] = field(default_factory=list)  # rounds whose check failed (1-based)
    first_problem: str | None = None  # what the first failed check said
    warmed: int = 0  # connections opened and warmed before the first round
    gated: int = 0  # rounds whose calls all sent their first statement together

    @property
    def calls(self) -> int:
        return self.workers * self.times

    def summary(self) -> str:
        failed = ", ".join(f"{code}: {n}" for code, n in sorted(self.failed.items())) or "none"
        cold = (
            ""
            if self.warmed >= self.workers
            else f"; the engine's pool keeps {self.warmed} connections warm, so"
            f" {self.workers - self.warmed} workers connect anew in every round"
        )
        gate = (
            ""
            if self.gated == self.times or self.workers == 1
            else f" ({self.gated} with every first statement sent together)"
        )
        return (
            f"{self.calls} calls ({self.workers} workers x {self.times} rounds) in"
            f" {self.seconds:.2f} s, {self.overlapped} of {self.times} rounds"
            f" overlapped{gate}{cold}:"
            f" {self.returned} returned; failed by code: {failed}; unknown outcome:"
            f" {len(self.unknown)}" + (f" (first: {self.unknown[0]})" if self.unknown else "")
        )


def overlapping(spans: list[tuple[float, float]]) -> bool:
    """Whether two of the (start, end) spans share an instant."""
    ordered = sorted(spans)
    latest_end = float("-inf")
    for start, end in ordered:
        if start < latest_end:
            return True
        latest_end = max(latest_end, end)
    return False


def warm(engine: Engine, workers: int) -> int:
    """Open as many pooled connections as the pool keeps idle (up to ``workers``) at once,
    one round trip each, and give them back for the rounds: how many stay warm. A
    QueuePool closes what it opened beyond its size when it is given back, NullPool
    everything."""
    pool = engine.pool
    if isinstance(pool, NullPool):
        return 0
    kept = min(workers, pool.size()) if isinstance(pool, QueuePool) else workers
    conns = []
    try:
        for _ in range(kept):
            conn = engine.connect()
            conns.append(conn)
            conn.execute(text("SELECT 1"))
            conn.rollback()
    finally:
        for conn in conns:
            conn.close()
    return kept


def hammer(
    engine: Engine, fn: Callable[[], Any], *, workers: int = 16, times: int = 100,
    reset: Callable[[], Any] | None = None, check: Callable[[], str | None] | None = None,
    timeout: float = 300.0,
) -> Hammered:  # fmt: skip
    """Run it; a hammer still going after ``timeout`` seconds (a call stuck on a lock held
    outside it) is a ``RaceError``, not a hang: its threads are left to the process's end.
    ``check`` returns what is wrong (None: nothing); with ``reset`` it runs after every
    round, else after the last."""
    if not callable(fn):
        raise RaceError(f"{fn!r} is not callable: pass the function itself")
    if reset is not None and not callable(reset):
        raise RaceError(f"reset={reset!r} is not callable: pass the function itself")
    if workers < 1 or times < 1:
        raise RaceError("hammer needs workers >= 1 and times >= 1")
    database = engine_of(from_sqlalchemy(engine.url))
    found = Hammered(workers, times)
    found.warmed = warm(engine, workers)
    lock = threading.Lock()
    spans: list[tuple[float, float]] = []
    round_number = 0

    failures: list[BaseException] = []

    def between_rounds() -> None:
        """Run by the last worker to reach the barrier, before the others are released; a
        reset or check that raises breaks the barrier, and the hammer raises it."""
        try:
            next_round()
        except BaseException as exc:
            failures.append(exc)
            raise

    def next_round() -> None:
        nonlocal round_number
        if round_number > 0:
            next_gate()
            found.overlapped += overlapping(spans)
            spans.clear()
            if reset is not None and check is not None:
                problem = check()
                if problem is not None:
                    found.broken_rounds.append(round_number)
                    found.first_problem = found.first_problem or problem
        if reset is not None and round_number < times:
            reset()
        round_number += 1

    barrier = threading.Barrier(workers, action=between_rounds, timeout=timeout)
    gate = threading.Barrier(workers)
    gating = workers > 1
    mine = threading.local()

    def first_statement(*_args: Any) -> None:
        """Hold a round's first statement of each call until every call has one to send."""
        if getattr(mine, "waiting", False):
            mine.waiting = False
            if gating:
                with contextlib.suppress(threading.BrokenBarrierError):
                    gate.wait(GATE_S)

    def next_gate() -> None:
        nonlocal gating
        if gate.broken:
            gating = False  # a call that sends nothing here, or one far slower
        elif gating:
            found.gated += 1
        gate.reset()

    def call() -> None:
        started = time.perf_counter()
        mine.waiting = True
        try:
            fn()
        except DBAPIError as exc:
            code, message = describe(database, exc)
            error = database.error_of(exc.orig) if exc.orig is not None else None
            with lock:
                if error is not None and error.lost:
                    found.unknown.append(message)
                elif code == "?":
                    found.unknown.append(str(exc).splitlines()[0])
                else:
                    found.failed[code] += 1
        except BaseException as exc:  # the user's code failed: its outcome is unknown
            with lock:
                found.unknown.append(f"{type(exc).__name__}: {exc}")
        else:
            with lock:
                found.returned += 1
        mine.waiting = False
        with lock:
            spans.append((started, time.perf_counter()))

    def work() -> None:
        try:
            for _ in range(times):
                barrier.wait()
                call()
            barrier.wait()  # the last round's spans and check
        except threading.BrokenBarrierError:
            return
        except BaseException as exc:  # the reset or check this thread ran: raised below
            if exc not in failures:
                raise

    threads = [threading.Thread(target=work, name=f"redpacket-hammer-{n}", daemon=True)
               for n in range(workers)]  # fmt: skip
    event.listen(engine, "before_cursor_execute", first_statement)
    started = time.perf_counter()
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, timeout - (time.perf_counter() - started)))
    finally:
        event.remove(engine, "before_cursor_execute", first_statement)
    found.seconds = time.perf_counter() - started
    running = sum(thread.is_alive() for thread in threads)
    if running:
        barrier.abort()
        raise RaceError(
            f"the hammer did not finish in {timeout:.0f} s: {running} of {workers} workers"
            " are still in a call (a lock held outside the race?)"
        )
    if failures:
        raise failures[0]
    return found
