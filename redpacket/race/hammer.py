"""Hammer: N workers released at a barrier, each calling the user's function K times.

No pausing here: the point is real contention. Each call's outcome is kept as
``stress`` keeps a request's: it returned, it failed with the server's code (the
engine names it), or its outcome is unknown (the connection was lost, or it raised
something that is not the database's), since a lost COMMIT may or may not have
committed.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from redpacket.database.urls import engine_of
from redpacket.race.calls import describe
from redpacket.race.controller import RaceError


@dataclass
class Hammered:
    workers: int
    times: int
    returned: int = 0
    failed: Counter[str] = field(default_factory=Counter)  # the server's code -> calls
    unknown: list[str] = field(default_factory=list)  # why each unknown outcome is unknown
    seconds: float = 0.0

    @property
    def calls(self) -> int:
        return self.workers * self.times

    def summary(self) -> str:
        failed = ", ".join(f"{code}: {n}" for code, n in sorted(self.failed.items())) or "none"
        return (
            f"{self.calls} calls ({self.workers} workers x {self.times}) in {self.seconds:.2f} s:"
            f" {self.returned} returned; failed by code: {failed}; unknown outcome:"
            f" {len(self.unknown)}" + (f" (first: {self.unknown[0]})" if self.unknown else "")
        )


def hammer(
    engine: Engine, fn: Callable[[], Any], *, workers: int = 16, times: int = 100,
    timeout: float = 300.0,
) -> Hammered:  # fmt: skip
    """Run it; a hammer still going after ``timeout`` seconds (a call stuck on a lock held
    outside it) is a ``RaceError``, not a hang: its threads are left to the process's end."""
    if not callable(fn):
        raise RaceError(f"{fn!r} is not callable: pass the function itself")
    if workers < 1 or times < 1:
        raise RaceError("hammer needs workers >= 1 and times >= 1")
    database = engine_of(engine.url)
    found = Hammered(workers, times)
    lock = threading.Lock()
    barrier = threading.Barrier(workers, timeout=timeout)

    def work() -> None:
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            return
        for _ in range(times):
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
                continue
            except BaseException as exc:  # the user's code failed: its outcome is unknown
                with lock:
                    found.unknown.append(f"{type(exc).__name__}: {exc}")
                continue
            with lock:
                found.returned += 1

    threads = [threading.Thread(target=work, name=f"redpacket-hammer-{n}", daemon=True)
               for n in range(workers)]  # fmt: skip
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, timeout - (time.perf_counter() - started)))
    found.seconds = time.perf_counter() - started
    running = sum(thread.is_alive() for thread in threads)
    if running:
        raise RaceError(
            f"the hammer did not finish in {timeout:.0f} s: {running} of {workers} workers"
            " are still in a call (a lock held outside the race?)"
        )
    return found
