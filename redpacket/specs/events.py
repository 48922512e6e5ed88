"""What happened while a spec ran, in the order it happened.

A run is a flat list of events, because isolationtester's output interleaves them:
a notice can arrive before the step line that produced it, or between two result
tables of one step. The text writer (``output``) turns each event into the bytes
PostgreSQL's tester prints; ``--json`` and ``--html`` show the same list.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Table:
    """A result with columns (rows as the server sent them as text; None is NULL)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str | None, ...], ...]


@dataclass(frozen=True)
class Failure:
    """An error the server (or the client library) returned for a statement."""

    severity: str | None  # "ERROR", "FATAL"; None when the client made it up
    message: str  # the primary message, or the client's whole text when severity is None
    sqlstate: str | None = None
    code: str | None = None  # the engine's own code (engine.faults): SQLSTATE, MySQL's number


Result = Table | Failure


@dataclass(frozen=True)
class SpecParsed:
    sessions: int


@dataclass(frozen=True)
class PermutationStarted:
    steps: tuple[str, ...]


@dataclass(frozen=True)
class SetupResult:
    """A table a setup or teardown block returned (isolationtester prints it)."""

    table: Table
    session: str | None  # None: the control connection


@dataclass(frozen=True)
class StepWaiting:
    step: str
    session: str
    sql: str
    forced: bool  # by a ``(*)`` or unfinished blockers, not a wait the server reported


@dataclass(frozen=True)
class StepCompleted:
    step: str
    session: str
    sql: str
    after_wait: bool  # printed as "<... completed>"


@dataclass(frozen=True)
class StepResult:
    step: str
    session: str
    result: Result


@dataclass(frozen=True)
class Notice:
    session: str
    text: str  # as the client library formats it: "NOTICE:  message\n"


@dataclass(frozen=True)
class Notify:
    session: str  # who received it
    channel: str
    payload: str
    sender: str  # a session's name, or "PID n"


@dataclass(frozen=True)
class StepCanceled:
    """A step cancelled after the step timeout."""

    step: str
    seconds: int


@dataclass(frozen=True)
class SendFailed:
    """A step the client could not send (its session is gone); the run stops here."""

    step: str
    message: str  # the client library's, with its newline


@dataclass(frozen=True)
class Problem:
    """A line isolationtester writes to stderr: a warning, or why a run stopped."""

    text: str
    fatal: bool = False
    newline: bool = True  # False: the client's message had none (an empty setup block's)


Event = (
    SpecParsed | PermutationStarted | SetupResult | StepWaiting | StepCompleted | StepResult
    | Notice | Notify | StepCanceled | SendFailed | Problem
)  # fmt: skip
