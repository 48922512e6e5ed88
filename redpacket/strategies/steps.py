"""A strategy is a short sequence of named steps, each exactly one SQL statement.

The service, the interleaving scheduler and the stress harness all run the same
steps, so a strategy is defined once. A step is data plus a small decision: its
SQL (named parameters, compiled once), and what comes next given whether the
statement returned a row or raised a given SQLSTATE. Every step's statement
returns rows (``RETURNING`` on writes), so "a row came back" is always defined.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from redpacket.errors import LabError

if TYPE_CHECKING:
    from sqlalchemy import TextClause
from redpacket.isolation import Isolation


class End(enum.Enum):
    """How a transaction of a strategy ends, as the strategy sees it."""

    # Members are singletons: hash them by identity, in C (Enum's own __hash__ is a Python
    # call, paid on every lookup of an end in a dict: millions in a stress run)
    __hash__ = object.__hash__

    GRANTED = "granted"
    ALREADY_GRANTED = "already_granted"
    UNKNOWN_ORDER = "unknown_order"
    LOST_RACE = "lost_race"  # a concurrent grant won; roll back, may retry
    NOT_LOCKED = "lock_not_obtained"  # a user-level lock timed out: nothing may be decided

    @property
    def commits(self) -> bool:
        return self in COMMITTING


COMMITTING = frozenset({End.GRANTED, End.ALREADY_GRANTED})  # the ends a transaction commits


class Role(enum.Enum):
    """What a step is for in the race, so explanations read roles, never step names."""

    READ = "read"  # a plain read (of the order): fixes or uses the snapshot, locks nothing
    LOCK = "lock"  # takes a lock that orders competing grants (FOR UPDATE, an advisory lock)
    CHECK = "check"  # asks whether the red packet exists
    CLAIM = "claim"  # a conditional write that is itself the check (UPDATE ... WHERE NOT ...)
    INSERT = "insert"  # writes the red packet (plainly, or only when absent)
    BUMP = "bump"  # an update that proves nobody changed the row since it was read (version)


_LOCKING = re.compile(
    r"\bfor\s+(update|share|no\s+key\s+update|key\s+share)\b|lock\s+in\s+share\s+mode"
    r"|advisory|\bget_lock\s*\(",
    re.I,
)


def infer_role(sql: str, captured: frozenset[str] = frozenset()) -> Role:
    """The role of a statement whose step does not say: read off the statement itself.

    Lets strategy files written before steps had roles keep working. An UPDATE that
    compares with a value captured earlier is a version bump; any other, a claim.
    """
    text = " ".join(sql.split()).lower()
    if text.startswith("select") and "red_packets" in text:
        return Role.CHECK  # a check, locking or not
    if _LOCKING.search(text):
        return Role.LOCK
    if text.startswith("insert"):
        return Role.INSERT
    if text.startswith("update"):
        names = set(re.findall(r"(?<!:):(\w+)", text))
        return Role.BUMP if names & captured else Role.CLAIM
    return Role.READ


@dataclass(frozen=True)
class Go:
    """Continue with the named step, or with the next one in order when ``step`` is None."""

    step: str | None = None


NEXT = Go()
GRANT_PARAMETERS = frozenset({"order_id", "campaign_id", "amount"})  # what every step may use


@functools.cache
def _dialect(paramstyle: str) -> Any:
    """SQLAlchemy's compiler for a step's placeholders, loaded when a step is first compiled:
    listing or checking strategies needs no SQLAlchemy (``redpacket strategies``)."""
    from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

    return PGDialect_psycopg(paramstyle=paramstyle)  # type: ignore[no-untyped-call]


Then = End | Go


@dataclass(frozen=True)
class Step:
    name: str
    sql: str
    on_row: Then = NEXT
    on_no_row: Then = NEXT
    capture: str | None = None  # keep the row's first column under this name
    on_error: Mapping[str, End] = field(default_factory=dict)  # SQLSTATE -> how it ends
    role: Role | None = None  # what the step is for; read off the SQL when not given
    # The step on another engine, where the dialects differ: its SQL there ("mysql": "..."),
    # or a whole Step when the decision differs too; None: no SQL for that engine. Engines
    # not named run ``sql`` as it is.
    dialects: Mapping[str, str | Step | None] = field(default_factory=dict)
    # Run after the transaction ends, however it ends: to release a session-level lock
    # (MySQL's GET_LOCK outlives the transaction). Executors run it for every step reached.
    afterwards: str | None = None

    def on(self, engine: str) -> Step | None:
        """This step as ``engine`` runs it; None when the strategy has no SQL for it there."""
        if engine not in self.dialects:
            return self
        variant = self.dialects[engine]
        if variant is None:
            return None
        if isinstance(variant, str):
            return replace(self, sql=variant, dialects={})
        return replace(variant, name=self.name, role=variant.role or self.role, dialects={})

    @cached_property
    def statement(self) -> TextClause:
        from sqlalchemy import text

        return text(self.sql)

    @cached_property
    def afterwards_statement(self) -> TextClause | None:
        from sqlalchemy import text

        return text(self.afterwards) if self.afterwards else None

    @property
    def decides(self) -> bool:
        """Whether the client must see this step's result before sending the next statement.

        A step that goes on to the next one whatever it returns (an advisory lock)
        can be sent together with its successor without changing the transaction.
        """
        return bool(self.on_row != NEXT or self.on_no_row != NEXT or self.capture or self.on_error)

    @property
    def always_commits(self) -> bool:
        """Whether every way this step can succeed ends the transaction with COMMIT."""
        return all(isinstance(t, End) and t.commits for t in (self.on_row, self.on_no_row))

    @cached_property
    def numbered_sql(self) -> tuple[str, tuple[str, ...]]:
        """The statement with ``$1..$n`` placeholders (libpq's own form), and the names in order."""
        compiled = self.statement.compile(dialect=_dialect("numeric_dollar"))
        return compiled.string, tuple(compiled.positiontup or ())

    @cached_property
    def pyformat_sql(self) -> str:
        """The statement as DB-API drivers take it (``%(name)s``: psycopg, mysqlclient)."""
        return self.statement.compile(dialect=_dialect("pyformat")).string

    @cached_property
    def pyformat_afterwards(self) -> str | None:
        if self.afterwards_statement is None:
            return None
        return self.afterwards_statement.compile(dialect=_dialect("pyformat")).string

    @cached_property
    def param_names(self) -> tuple[str, ...]:
        return tuple(self.statement._bindparams)

    def params(self, context: Mapping[str, Any]) -> dict[str, Any]:
        return {name: context[name] for name in self.param_names}


class Race(enum.Enum):
    """What a strategy does when two grants for one order race, at one isolation level."""

    CORRECT = "correct"  # one red packet, and no grant fails
    CORRECT_WITH_RETRIES = "correct with retries"  # one red packet; the loser needs a retry
    DUPLICATE = "duplicate"  # two red packets: the bug


@dataclass(frozen=True)
class Expected:
    """A strategy's declared verdict at one level; the interleaving tests hold it to the server."""

    race: Race
    note: str = ""  # who fails how, or why it duplicates

    def __str__(self) -> str:
        return f"{self.race.value} ({self.note})" if self.note else self.race.value


@dataclass(frozen=True)
class Strategy:
    name: str
    summary: str
    steps: tuple[Step, ...]
    requires_revision: str  # "0001": the bug's schema; "0002": with the unique constraint
    verdicts: Mapping[Isolation, Expected]  # what happens under a race, per level
    doc: str = ""
    origin: str = ""  # the file a user's strategy was loaded from; "" for the built-in ones
    # Verdicts on another engine, where they differ from ``verdicts`` ("mysql": {...}).
    engine_verdicts: Mapping[str, Mapping[Isolation, Expected]] = field(default_factory=dict)

    def for_engine(self, engine: str, label: str = "") -> Strategy:
        """The strategy with every step as ``engine`` runs it; refused in one line if it cannot.

        A strategy is still one module: where the dialects differ, a step carries the
        other engine's SQL (``Step.dialects``); the verdicts are declared per engine too.
        """
        steps = []
        for step in self.steps:
            resolved = step.on(engine)
            if resolved is None:
                raise LabError(
                    f"strategy {self.name!r} has no SQL for {label or engine}"
                    f" (step {step.name}); run it on another engine"
                )
            steps.append(resolved)
        verdicts = self.engine_verdicts.get(engine, self.verdicts)
        return replace(self, steps=tuple(steps), verdicts=verdicts, engine_verdicts={})

    @cached_property
    def roles(self) -> tuple[Role, ...]:
        """Each step's role: as given, else read off its statement."""
        captured: set[str] = set()
        found = []
        for step in self.steps:
            found.append(step.role or infer_role(step.sql, frozenset(captured)))
            if step.capture:
                captured.add(step.capture)
        return tuple(found)

    def index_of(self, step_name: str) -> int:
        for index, step in enumerate(self.steps):
            if step.name == step_name:
                return index
        raise KeyError(step_name)

    def problems(self) -> list[str]:
        """What would make this strategy fail half-way through a run, found before it runs.

        The built-in strategies are held to this by the tests; a strategy loaded from
        a user's file is refused with the first problem, instead of a KeyError in a
        worker thousands of requests into a stress run.
        """
        found = []
        if not self.name.isidentifier():
            found.append(f"its name {self.name!r} must be a Python identifier")
        if not self.steps:
            found.append("it has no steps")
        names = [step.name for step in self.steps]
        if len(names) != len(set(names)):
            found.append(f"step names repeat: {', '.join(names)}")
        if self.requires_revision not in ("0001", "0002"):
            found.append(
                f"requires_revision must be '0001' (the bug's schema) or '0002' (with the"
                f" unique constraint), got {self.requires_revision!r}"
            )
        missing = [level.value for level in Isolation if level not in self.verdicts]
        if missing:
            found.append(f"verdicts omit {', '.join(missing)}")
        known = set(GRANT_PARAMETERS)
        for step in self.steps:
            if ";" in step.sql.strip().rstrip(";"):
                found.append(f"step {step.name} holds more than one statement")
            unknown = sorted(set(step.param_names) - known)
            if unknown:
                found.append(
                    f"step {step.name} uses :{', :'.join(unknown)}, which neither the grant"
                    f" ({', '.join(sorted(GRANT_PARAMETERS))}) nor an earlier capture provides"
                )
            for then in (step.on_row, step.on_no_row):
                if isinstance(then, Go) and then.step is not None and then.step not in names:
                    found.append(f"step {step.name} goes to {then.step!r}, which is no step")
            if step.capture:
                known.add(step.capture)
        return found
