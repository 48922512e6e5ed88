"""What a scheduled run did, step by step, and what it amounted to."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from redpacket import vocabulary
from redpacket.isolation import Isolation, Levels
from redpacket.retry import LOST_RACE
from redpacket.strategies import Outcome

if TYPE_CHECKING:
    from redpacket.engines.base import LockConflict


class Verdict(enum.Enum):
    """How the race ended, in the lab's one vocabulary (``redpacket.vocabulary``)."""

    CORRECT = vocabulary.CORRECT
    DUPLICATE = vocabulary.DUPLICATE
    MISSING = vocabulary.MISSING
    REFUSED = vocabulary.REFUSED
    LOST_RACE = vocabulary.LOST_RACE
    STUCK = vocabulary.STUCK


class Kind(enum.Enum):
    DONE = "done"  # issued and completed without waiting
    WAIT = "wait"  # issued, then seen blocked on the server
    RESUME = "resume"  # a waiting statement completed (after whatever released it)


@dataclass(frozen=True)
class Event:
    session: int
    attempt: int
    action: str  # "begin", a step name, "commit" or "rollback"
    step_number: int | None  # the strategy's step number; None for begin/commit/rollback
    sql: str
    kind: Kind
    rows: tuple[tuple[Any, ...], ...] | None = None  # None until completed
    waited_on: tuple[int, ...] = ()  # the sessions it waited for (0: a backend outside the run)
    takes_snapshot: bool = False  # this statement's start fixed the snapshot it reads with
    sqlstate: str | None = None
    message: str | None = None
    decision: str | None = None  # how the strategy ended the attempt here, if it did
    role: str | None = None  # the step's role (read, lock, check, claim, insert, bump)
    read: str | None = None  # how it read rows: snapshot, uses snapshot, current read, none
    params: tuple[tuple[str, Any], ...] = ()  # the values bound to ``sql``'s :names
    # A deadlock's locks as the server reported them, holders as session numbers (0: not
    # the run's); empty where the server named none
    locks: tuple[LockConflict, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.step_number}. {self.action}" if self.step_number else self.action


@dataclass(frozen=True)
class SessionSummary:
    session: int
    outcome: Outcome  # interrupted: the schedule got stuck before the request ended
    attempts: int
    reason: str | None = None
    errors: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"outcome": self.outcome.label}


@dataclass(frozen=True)
class Run:
    strategy: str
    levels: tuple[Isolation, ...]  # each session's level, T1 first
    schedule: str
    order_id: int
    events: tuple[Event, ...]
    sessions: tuple[SessionSummary, ...]
    red_packets: int
    retries: int = 0
    stuck: str | None = None
    engine: str = "postgresql"  # the engine it ran on (redpacket.engines)
    server: str = ""  # the server it ran on, as people name it: "MariaDB 10.11.19"
    settings: tuple[str, ...] = ()  # session settings asked for: "innodb_snapshot_isolation=ON"
    # The run as the spec runner saw it (redpacket.specs.events): the steps it launched,
    # values written in, its waits and results, as ``redpacket spec`` records a spec's
    spec_events: tuple[Any, ...] = field(default=(), compare=False, repr=False)
    errors: tuple[str, ...] = field(init=False)
    verdict: Verdict = field(init=False)

    def __post_init__(self) -> None:
        errors = tuple(e for s in self.sessions for e in s.errors)
        object.__setattr__(self, "errors", errors)
        object.__setattr__(self, "verdict", judge(self))

    @property
    def isolation(self) -> str:
        """The level, or ``T1=...,T2=...`` when the sessions ran at different levels."""
        return Levels(self.levels[0], self.levels if len(set(self.levels)) > 1 else ()).label

    def level_of(self, session: int) -> Isolation:
        return self.levels[session - 1]

    @property
    def failed_sqlstates(self) -> tuple[str, ...]:
        return tuple(s.reason for s in self.sessions if s.outcome is Outcome.FAILED and s.reason)

    def summary(self) -> dict[str, Any]:
        """The matrix's view of a run: no events."""
        return {
            "strategy": self.strategy,
            "isolation": self.isolation,
            "schedule": self.schedule,
            "retries": self.retries,
            "red_packets": self.red_packets,
            "errors": list(self.errors),
            "failed": list(self.failed_sqlstates),
            "verdict": self.verdict.value,
            "stuck": self.stuck,
            "engine": self.engine,
            "server": self.server,
            "settings": list(self.settings),
        }

    def to_json(self) -> dict[str, Any]:
        data = self.summary() | {"order_id": self.order_id}
        data["levels"] = [level.value for level in self.levels]
        data["sessions"] = [s.to_json() for s in self.sessions]
        data["events"] = [
            asdict(e) | {"kind": e.kind.value, "params": dict(e.params)} for e in self.events
        ]
        return data


def judge(run: Run) -> Verdict:
    """Duplicates first (the bug), then refusals (the data is right), then a silent loss."""
    if run.stuck:
        return Verdict.STUCK
    if run.red_packets > 1:
        return Verdict.DUPLICATE
    reasons = [s.reason for s in run.sessions if s.outcome is Outcome.FAILED]
    if reasons:
        return Verdict.LOST_RACE if set(reasons) == {LOST_RACE} else Verdict.REFUSED
    if run.red_packets == 0:
        return Verdict.MISSING
    return Verdict.CORRECT
