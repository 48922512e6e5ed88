"""The ``race`` object a test gets: interleave, explore and hammer the user's functions.

It keeps every race it ran, so a failing test's report can show the last timeline
(``pytest_plugin``). Errors in how a race is asked for are ``RaceError``: one clear
line, never a hang.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from sqlalchemy import Engine

from redpacket.database.url import from_sqlalchemy
from redpacket.errors import LabError
from redpacket.race.controller import RaceError, for_engine, schedule_entries
from redpacket.race.explore import Exploration, explore
from redpacket.race.hammer import Hammered, hammer
from redpacket.race.timeline import RaceResult

if TYPE_CHECKING:
    from redpacket.race.proxied import ProxiedRace


def _raise(error: LabError) -> NoReturn:
    raise error


class Race:
    def __init__(
        self, engine: Engine, *, step_timeout: float = 30.0,
        on_misuse: Callable[[LabError], NoReturn] = _raise,
    ) -> None:  # fmt: skip
        self.engine = engine
        self.step_timeout = step_timeout
        self.on_misuse = on_misuse  # pytest_plugin: fail the test in one line
        self.last: RaceResult | None = None
        self.notes: list[str] = []  # what a failing test's report shows

    def psycopg_connect(self, **kwargs: Any) -> Any:
        """A psycopg 3 connection to the race's database whose statements the race pauses
        (for code that uses psycopg without SQLAlchemy; PostgreSQL only)."""
        from redpacket.engines.postgresql import conninfo
        from redpacket.race.psycopg_hooks import connect

        if not self.engine.url.drivername.startswith("postgresql"):
            raise RaceError("psycopg_connect needs a PostgreSQL engine")
        return connect(conninfo(from_sqlalchemy(self.engine.url), "redpacket race"), **kwargs)

    def through_proxy(self, port: int = 0) -> ProxiedRace:
        """The proxy in front of the race's database, for code on any driver (asyncpg,
        psycopg2, Django): ``with race.through_proxy() as proxied:`` connect the functions
        to ``proxied.url``, then ``proxied.interleave`` / ``explore`` / ``hammer``. ``port``:
        a fixed one on 127.0.0.1, for settings read once (Django's DATABASES); 0: a free one."""
        from redpacket.race.proxied import ProxiedRace

        def take(notes: list[str]) -> None:
            self.notes = notes

        return ProxiedRace(from_sqlalchemy(self.engine.url), step_timeout=self.step_timeout,
                           on_misuse=self.on_misuse, on_notes=take,
                           listen=("127.0.0.1", port))  # fmt: skip

    def _interleave(
        self, *fns: Callable[[], Any], schedule: str = "t2-first-read", engine: Engine | None = None
    ) -> RaceResult:
        """Run each function in its own thread, their statements released in ``schedule``
        (explain's named schedules, or ``T1:1,T2:1,T1:end,T2:end``)."""
        watched = engine or self.engine
        entries = schedule_entries(schedule, len(fns))
        with watched.connect():  # the dialect's first-connect queries run here, not in a call
            pass
        result = for_engine(watched, fns, step_timeout=self.step_timeout).run(entries)
        self.last = result
        idle = [call.number for call in result.calls if not call.statements]
        if idle:
            raise RaceError(
                f"T{idle[0]} ran to its end without a statement on the engine the race watches"
                f" ({watched.url.render_as_string(hide_password=True)}): pass the engine your"
                " code uses (race.interleave(..., engine=...) or a redpacket_engine fixture)"
            )
        self.notes = [f"schedule {schedule}", result.timeline]
        return result

    def _explore(
        self, *fns: Callable[[], Any], check: Callable[[], Any],
        reset: Callable[[], Any] | None = None, max_runs: int = 1000,
        engine: Engine | None = None,
    ) -> Exploration:  # fmt: skip
        """Every order of the calls' statements (up to ``max_runs``); ``check`` after each."""
        watched = engine or self.engine
        with watched.connect():
            pass
        found = explore(watched, fns, check, reset, max_runs=max_runs,
                        step_timeout=self.step_timeout)  # fmt: skip
        shortest = found.shortest
        if shortest is not None:
            self.last = shortest.result
            self.notes = [
                f"{len(found.failing)} of {found.runs} schedules break the invariant; the"
                f" shortest: {shortest.schedule}",
                shortest.message,
                shortest.result.timeline,
            ]
        return found

    def _hammer(
        self, fn: Callable[[], Any], *, workers: int, times: int,
        check: Callable[[], Any] | None, reset: Callable[[], Any] | None,
        engine: Engine | None,
    ) -> Hammered:  # fmt: skip
        from redpacket.race.explore import verdict

        judged = None if check is None else (lambda: verdict(check))
        found = hammer(engine or self.engine, fn, workers=workers, times=times, reset=reset,
                       check=judged, timeout=max(60.0, self.step_timeout * 10))  # fmt: skip
        self.notes = [found.summary()]
        if found.broken_rounds:
            rounds = ", ".join(map(str, found.broken_rounds[:10]))
            raise AssertionError(
                f"after round {rounds} of the hammer ({len(found.broken_rounds)} of"
                f" {times}): {found.first_problem}\n{found.summary()}"
            )
        if check is not None and reset is None:
            problem = verdict(check)
            if problem is not None:
                raise AssertionError(f"after the hammer: {problem}\n{found.summary()}")
        return found

    def interleave(
        self, *fns: Callable[[], Any], schedule: str = "t2-first-read", engine: Engine | None = None
    ) -> RaceResult:
        """Run each function in its own thread, their statements released in ``schedule``
        (explain's named schedules, or ``T1:1,T2:1,T1:end,T2:end``); returns each call's
        result or exception, and the timeline."""
        try:
            return self._interleave(*fns, schedule=schedule, engine=engine)
        except LabError as error:
            problem = error
        self.on_misuse(problem)  # outside the handler: the report shows one line, no chain

    def explore(
        self, *fns: Callable[[], Any], check: Callable[[], Any],
        reset: Callable[[], Any] | None = None, max_runs: int = 1000,
        engine: Engine | None = None,
    ) -> Exploration:  # fmt: skip
        """Every order of the calls' statements (up to ``max_runs``), ``reset`` before and
        ``check`` after each; the failing ones, the shortest first."""
        try:
            return self._explore(*fns, check=check, reset=reset, max_runs=max_runs, engine=engine)
        except LabError as error:
            problem = error
        self.on_misuse(problem)  # outside the handler: the report shows one line, no chain

    def hammer(
        self, fn: Callable[[], Any], *, workers: int = 16, times: int = 100,
        check: Callable[[], Any] | None = None, reset: Callable[[], Any] | None = None,
        engine: Engine | None = None,
    ) -> Hammered:  # fmt: skip
        """``times`` rounds of ``workers`` calls released together at a barrier; ``check``
        after every round when ``reset`` runs between them, else after the last."""
        try:
            return self._hammer(
                fn, workers=workers, times=times, check=check, reset=reset, engine=engine
            )
        except LabError as error:
            problem = error
        self.on_misuse(problem)  # outside the handler: the report shows one line, no chain
