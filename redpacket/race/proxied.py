"""The race fixture for any Python driver: the proxy in front of the test database.

``race.interleave`` holds statements through SQLAlchemy's events; code on asyncpg,
psycopg2, Django's ORM or anything else never passes there. Through the proxy it does
not need to: the functions connect to ``proxied.url`` (or ``host``/``port``) with their
own driver, each in a thread of its own, and the proxy holds their round trips as it
holds a program's in ``redpacket race``. The functions start one at a time, so the
first connection that sends a step after function *i* started is T*i*'s. The
scheduler is the one both other kinds of race use (``Controller``, ``explore_with``),
the barrier the one ``redpacket race --hammer`` uses.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

from redpacket.database.url import URL
from redpacket.database.urls import engine_of
from redpacket.errors import LabError
from redpacket.race.controller import Controller, RaceError, schedule_entries
from redpacket.race.explore import Exploration, explore_with, verdict
from redpacket.race.timeline import RaceResult
from redpacket.race.wire_calls import WireCalls
from redpacket.race.wire_faults import Fault, parse_fault
from redpacket.race.wire_hammer import WireHammered, hammer
from redpacket.wire.proxy import Proxy

T = TypeVar("T")
HINT = "through the proxy: does it connect to proxied.url?"


def _misused(method: Callable[..., T]) -> Callable[..., T]:
    """A LabError (how the race was asked for) goes to ``on_misuse``: one line, no chain."""

    @functools.wraps(method)
    def run(self: ProxiedRace, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except LabError as error:
            if self.on_misuse is None:
                raise
            problem = error
        self.on_misuse(problem)

    return run


class ProxiedRace:
    """The proxy, up for the ``with`` block; interleave, explore and hammer through it."""

    def __init__(
        self, upstream: URL, *, step_timeout: float = 30.0,
        on_misuse: Callable[[LabError], NoReturn] | None = None,
        on_notes: Callable[[list[str]], None] | None = None,
        listen: tuple[str, int] = ("127.0.0.1", 0),
    ) -> None:  # fmt: skip
        self.on_misuse = on_misuse  # the fixture: fail the test in one line
        self.on_notes = on_notes  # the fixture: the notes a failing test's report shows
        self.upstream = upstream
        self.database = engine_of(upstream)
        self.step_timeout = step_timeout
        self.proxy = Proxy(upstream, self.database.wire_protocol(), listen)
        self.last: RaceResult | None = None
        self.notes: list[str] = []  # what a failing test's report shows

    def __enter__(self) -> ProxiedRace:
        self.proxy.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.proxy.close()

    @property
    def url(self) -> str:
        """What the functions connect to: ``postgresql://user@127.0.0.1:PORT/db`` or
        ``mysql://...``, as asyncpg, psycopg2 or any driver reads it (password included)."""
        return self.proxy.url().render_as_string(hide_password=False)

    @property
    def host(self) -> str:
        return self.proxy.host

    @property
    def port(self) -> int:
        return self.proxy.port

    def _note(self, notes: list[str]) -> None:
        self.notes = notes
        if self.on_notes is not None:
            self.on_notes(notes)

    def _faults(self, faults: Sequence[str], count: int) -> list[Fault]:
        return [parse_fault(text, count) for text in faults]

    def _controller(
        self, fns: Sequence[Callable[[], Any]], faults: list[Fault],
        made: list[WireCalls] | None = None,
    ) -> Controller:  # fmt: skip
        for fn in fns:
            if not callable(fn):
                raise RaceError(f"{fn!r} is not callable: pass the functions themselves")
        names = [getattr(fn, "__name__", repr(fn)) for fn in fns]

        def participants() -> WireCalls:
            calls = WireCalls(
                self.proxy, self.database, fns, names, start_timeout=self.step_timeout,
                faults=faults, hint=HINT,
            )  # fmt: skip
            if made is not None:
                made.append(calls)
            return calls

        return Controller(self.upstream, participants, len(fns), step_timeout=self.step_timeout)

    @_misused
    def interleave(
        self, *fns: Callable[[], Any], schedule: str = "t2-first-read", faults: Sequence[str] = ()
    ) -> RaceResult:
        """Each function in its own thread, their round trips released in ``schedule``."""
        entries = schedule_entries(schedule, len(fns))
        made: list[WireCalls] = []
        result = self._controller(fns, self._faults(faults, len(fns)), made).run(entries)
        self.last = result
        idle = [call.number for call in result.calls if not call.statements]
        if idle:
            raise RaceError(made[-1].why_idle(idle[0]))
        self._note([f"schedule {schedule} (through the proxy)", result.timeline])
        return result

    @_misused
    def explore(
        self, *fns: Callable[[], Any], check: Callable[[], Any],
        reset: Callable[[], Any] | None = None, max_runs: int = 1000,
    ) -> Exploration:  # fmt: skip
        """Every order of the functions' round trips, ``reset`` before and ``check`` after each."""
        made: list[WireCalls] = []
        found = explore_with(
            lambda: self._controller(fns, [], made), check, reset, max_runs=max_runs,
            idle_hint=lambda number: made[-1].why_idle(number),
        )  # fmt: skip
        shortest = found.shortest
        if shortest is not None:
            self.last = shortest.result
            self._note(
                [
                    f"{len(found.failing)} of {found.runs} schedules break the invariant; the"
                    f" shortest: {shortest.schedule}",
                    shortest.message,
                    shortest.result.timeline,
                ]
            )
        return found

    @_misused
    def hammer(
        self, fn: Callable[[], Any], *, workers: int = 8, times: int = 20,
        check: Callable[[], Any] | None = None, reset: Callable[[], Any] | None = None,
        faults: Sequence[str] = (),
    ) -> WireHammered:  # fmt: skip
        """``times`` attempts of ``workers`` calls of ``fn``, their first round trips released
        together at the proxy; ``check`` after each attempt. Raises AssertionError naming
        the attempts whose check failed."""
        if workers < 2:
            raise RaceError("a hammer needs two workers or more")
        problems: list[str] = []

        def broken() -> tuple[tuple[Any, ...], ...]:
            problem = None if check is None else verdict(check)
            if problem is not None:
                problems.append(problem)
                return ((problem,),)
            return ()

        found = hammer(self.proxy, [fn] * workers, times, self._faults(faults, workers),
                       reset or (lambda: None), broken)  # fmt: skip
        self._note([found.summary()])
        if found.broken:
            attempts = ", ".join(map(str, found.broken[:10]))
            raise AssertionError(
                f"after attempt {attempts} of the hammer ({len(found.broken)} of {times}):"
                f" {problems[0]}\n{found.summary()}"
            )
        return found
