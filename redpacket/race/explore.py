"""Every schedule, not a sample: all orders of the calls' statements, up to a bound.

Stateless model checking, the simple way: run the calls with a prefix of choices
("release T2's next statement"), let the lowest-numbered call go on after it, and
note at every point which other calls could have moved; each alternative is a new
prefix to run. Two calls of n and m statements give C(n+m, n) orders; a call
waiting for a lock cannot be chosen, so orders that only differ inside a wait are
not run twice. Every run starts from the user's ``reset`` and ends in their
``check``. The failing schedule reported is the one with the fewest switches
between calls, written in the schedule language ``interleave`` takes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from redpacket.race.controller import Controller, RaceError, for_engine
from redpacket.race.timeline import RaceResult


@dataclass(frozen=True)
class Failing:
    schedule: str
    switches: int
    message: str
    result: RaceResult = field(repr=False)

    def __str__(self) -> str:
        return f"{self.schedule}: {self.message.splitlines()[0] if self.message else ''}"


@dataclass
class Exploration:
    runs: int = 0
    complete: bool = True  # False: stopped at the bound before every order ran
    failing: list[Failing] = field(default_factory=list)

    def __repr__(self) -> str:
        shortest = self.shortest
        return (
            f"<{len(self.failing)} of {self.runs} schedules break the invariant"
            + (f"; shortest {shortest.schedule}" if shortest else "")
            + ("" if self.complete else "; stopped at the bound")
            + ">"
        )

    @property
    def shortest(self) -> Failing | None:
        return min(self.failing, key=lambda f: (f.switches, f.schedule), default=None)


def as_schedule(executed: Sequence[int]) -> tuple[str, int]:
    """(schedule text, number of switches) for a sequence of released calls."""
    runs: list[list[int]] = []
    for call in executed:
        if runs and runs[-1][0] == call:
            runs[-1][1] += 1
        else:
            runs.append([call, 1])
    done: dict[int, int] = {}
    last_run = {call: i for i, (call, _) in enumerate(runs)}
    entries = []
    for i, (call, count) in enumerate(runs):
        done[call] = done.get(call, 0) + count
        entries.append(f"T{call}:end" if last_run[call] == i else f"T{call}:{done[call]}")
    return ",".join(entries), max(0, len(runs) - 1)


def verdict(check: Callable[[], Any]) -> str | None:
    """None if the invariant holds; else why not. A check that crashes is the user's
    bug, not a failing schedule: it ends the exploration."""
    try:
        answer = check()
    except AssertionError as failed:
        return str(failed) or "the check's assertion failed"
    except Exception as exc:
        raise RaceError(f"the check raised {type(exc).__name__}: {exc}") from exc
    if answer is False:
        return "the check returned False"
    return None


def explore(
    engine: Engine,
    fns: Sequence[Callable[[], Any]],
    check: Callable[[], Any],
    reset: Callable[[], Any] | None = None,
    *,
    max_runs: int = 1000,
    step_timeout: float = 30.0,
) -> Exploration:
    where = engine.url.render_as_string(hide_password=True)
    return explore_with(
        lambda: for_engine(engine, fns, step_timeout=step_timeout), check, reset,
        max_runs=max_runs, idle_hint=f"on the engine the race watches ({where}); pass the"
        " engine your code uses",
    )  # fmt: skip


def explore_with(
    new_controller: Callable[[], Controller],
    check: Callable[[], Any],
    reset: Callable[[], Any] | None = None,
    *,
    max_runs: int = 1000,
    idle_hint: str | Callable[[int], str] = "",
    progress: Callable[[int, int], None] | None = None,
) -> Exploration:
    """Every order, each run on a controller of its own (Python calls or programs behind
    the proxy alike); ``progress(runs, known)`` after each run. ``idle_hint``: what to
    add when a call ran without a statement, or who says why call N had none."""
    if not callable(check):
        raise RaceError("explore needs check=, a function that asserts the invariant")
    found = Exploration()
    todo: list[list[int]] = [[]]
    seen: set[tuple[int, ...]] = set()
    while todo:
        if found.runs >= max_runs:
            found.complete = False
            break
        prefix = todo.pop()
        if reset is not None:
            reset()
        controller = new_controller()
        result, executed, available = controller.run_choices(prefix)
        found.runs += 1
        if found.runs == 1 and any(not call.statements for call in result.calls):
            idle = next(call.number for call in result.calls if not call.statements)
            if callable(idle_hint):
                raise RaceError(idle_hint(idle))
            raise RaceError(f"T{idle} ran without a statement {idle_hint}".rstrip())
        seen.add(tuple(executed))
        problem = verdict(check)
        if problem is not None:
            schedule, switches = as_schedule(executed)
            found.failing.append(Failing(schedule, switches, problem, result))
        for index in range(len(prefix), len(executed)):
            for other in sorted(available[index] - {executed[index]}, reverse=True):
                branch = [*executed[:index], other]
                if tuple(branch) not in seen:
                    todo.append(branch)
        if progress is not None:
            progress(found.runs, found.runs + len(todo))
    return found
