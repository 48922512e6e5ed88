"""``redpacket race --hammer N``: N attempts of every command at once, through the proxy.

Each attempt resets, starts every command together and holds the first step of each
participant's connection at a barrier until all have arrived, then lets them go
together, so the attempts really contend (a command that starts late would otherwise
often run alone: the fixture's hammer found the same with threads). Participants are
named in the order their first steps arrive. Nothing else is held; faults apply as in
a schedule. After each attempt the check runs; the figures say how many attempts
broke the invariant, how many were gated (every first step released together), how the
commands exited, and every cut whose outcome the client could not know.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redpacket.race.wire_calls import Finished, stop_commands
from redpacket.race.wire_faults import Cut, Fault, Injector
from redpacket.wire.housekeeping import is_housekeeping
from redpacket.wire.link import Answer, Link, PassThrough, Request
from redpacket.wire.proxy import Proxy

GATE_S = 5.0  # how long the first steps of an attempt wait for each other


@dataclass
class WireHammered:
    attempts: int
    commands: int
    broken: list[int] = field(default_factory=list)  # attempts (1-based) whose check failed
    first_broken: tuple[tuple[Any, ...], ...] = ()  # the rows of the first failed check
    gated: int = 0  # attempts whose first steps were all released together
    outcomes: Counter[str] = field(default_factory=Counter)  # "exited 0", "returned", "raised X"
    last_failure: str = ""  # the last line a failing command printed, or what a call raised
    cuts: list[tuple[int, Cut]] = field(default_factory=list)  # (attempt, cut)
    seconds: float = 0.0

    def summary(self) -> str:
        exits = ", ".join(f"{n} {how}" for how, n in sorted(self.outcomes.items()))
        gated = "" if self.gated == self.attempts else f" ({self.gated} released together)"
        broke = f"{len(self.broken)} of {self.attempts} attempts broke the invariant"
        cut = (
            f"; {len(self.cuts)} cut(s) with an outcome the client could not know"
            if self.cuts
            else ""
        )
        return f"{broke}{gated}; participants: {exits}{cut}; {self.seconds:.1f} s"


class _Gate(PassThrough):
    """One attempt's listener: first steps meet at the barrier, faults applied."""

    def __init__(self, count: int, faults: Sequence[Fault]) -> None:
        self.count = count
        self.faults = Injector(faults)
        self.numbers: dict[int, int] = {}  # link number -> participant, in order of arrival
        self.steps: Counter[int] = Counter()
        self.changed = threading.Condition()
        self.open = False
        self.timed_out = False

    def before(self, link: Link, request: Request) -> bool:
        if is_housekeeping(request.statements, link.in_transaction) or request.closes:
            return False
        with self.changed:
            number = self.numbers.get(link.number)
            first = number is None and len(self.numbers) < self.count
            if first:
                number = self.numbers[link.number] = len(self.numbers) + 1
                if len(self.numbers) == self.count:
                    self.open = True
                    self.changed.notify_all()
                deadline = time.monotonic() + GATE_S
                while not self.open and time.monotonic() < deadline:
                    self.changed.wait(deadline - time.monotonic())
                if not self.open:
                    self.open = self.timed_out = True  # a command never came: stop gating
                    self.changed.notify_all()
            elif number is None and (number := self.faults.reconnected()) is not None:
                self.numbers[link.number] = number
            if number is None:
                return False
            self.steps[number] += 1
            step = self.steps[number]
        return self.faults.before(number, step, link, request) is None

    def after(self, link: Link, request: Request, answer: Answer) -> None:
        number = self.numbers.get(link.number)
        if number is not None:
            self.faults.after(number, self.steps[number], link, request, answer)


def hammer(
    proxy: Proxy, runners: Sequence[Callable[[], Any]], attempts: int, faults: Sequence[Fault],
    reset: Callable[[], None], broken: Callable[[], tuple[tuple[Any, ...], ...]],
    progress: Callable[[int, int], None] | None = None,
) -> WireHammered:  # fmt: skip
    result = WireHammered(attempts, len(runners))
    started = time.monotonic()
    for attempt in range(1, attempts + 1):
        reset()
        gate = _Gate(len(runners), faults)
        proxy.listener = gate
        try:
            outcomes = _run_together(runners)
        finally:
            proxy.listener = PassThrough()
        result.gated += not gate.timed_out and len(gate.numbers) >= len(runners)
        for outcome in outcomes:
            how, failure = _outcome(outcome)
            result.outcomes[how] += 1
            result.last_failure = failure or result.last_failure
        result.cuts += [(attempt, cut) for cut in gate.faults.cuts]
        rows = broken()
        if rows:
            result.broken.append(attempt)
            result.first_broken = result.first_broken or rows
        if progress is not None:
            progress(attempt, attempts)
    result.seconds = time.monotonic() - started
    return result


def _outcome(outcome: Any) -> tuple[str, str]:
    """How a participant ended, and what it said if it failed."""
    if isinstance(outcome, Finished):
        return f"exited {outcome.status}", outcome.last_line if outcome.status else ""
    if isinstance(outcome, BaseException):
        return f"raised {type(outcome).__name__}", f"{type(outcome).__name__}: {outcome}"
    return "returned", ""


def _run_together(runners: Sequence[Callable[[], Any]]) -> list[Any]:
    """Start every participant at once (a thread each) and wait for all of them: each one's
    return value, or the exception it raised."""
    outcomes: list[Any] = [None] * len(runners)

    def run(index: int) -> None:
        try:
            outcomes[index] = runners[index]()
        except BaseException as exc:  # the participant's outcome, counted
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(runners))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except BaseException:  # Ctrl-C
        stop_commands(runners)
        raise
    return outcomes
