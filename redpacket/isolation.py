"""The three isolation levels PostgreSQL really implements, under the lab's names.

PostgreSQL maps READ UNCOMMITTED to READ COMMITTED, so the lab does not offer it.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from redpacket.errors import LabError


class Isolation(enum.Enum):
    READ_COMMITTED = "read-committed"
    REPEATABLE_READ = "repeatable-read"
    SERIALIZABLE = "serializable"

    @property
    def sql(self) -> str:
        """The level as SQL spells it (``BEGIN ISOLATION LEVEL ...``, SQLAlchemy's option)."""
        return self.value.replace("-", " ").upper()

    @property
    def begin_sql(self) -> str:
        """The statement that opens a transaction at this level (one of three constants)."""
        return "BEGIN ISOLATION LEVEL " + self.sql

    @property
    def takes_snapshot_per_transaction(self) -> bool:
        """True where one snapshot, taken by the first statement, serves the whole transaction."""
        return self is not Isolation.READ_COMMITTED

    @classmethod
    def parse(cls, name: str) -> Isolation:
        normalised = name.strip().lower().replace("_", "-").replace(" ", "-")
        for level in cls:
            if level.value == normalised:
                return level
        valid = ", ".join(level.value for level in cls)
        raise LabError(f"unknown isolation level {name!r}; choose one of: {valid}")


ISOLATION_NAMES = tuple(level.value for level in Isolation)


@dataclass(frozen=True)
class Levels:
    """The isolation level of each session in a schedule: one for all, or one per session.

    Mixed levels are a real production situation: one service instance still runs
    with the old setting while the others have the new one. ``per_session`` empty
    means every session runs at ``level``.
    """

    level: Isolation
    per_session: tuple[Isolation, ...] = ()

    @classmethod
    def of(cls, value: Isolation | Levels) -> Levels:
        return value if isinstance(value, Levels) else cls(value)

    @classmethod
    def parse(cls, text: str) -> Levels:
        """``repeatable-read``, or ``T1=repeatable-read,T2=read-committed``."""
        if "=" not in text:
            return cls(Isolation.parse(text))
        given: dict[int, Isolation] = {}
        for item in text.split(","):
            match = re.fullmatch(r"\s*[Tt](\d+)\s*=\s*([\w -]+?)\s*", item)
            if not match or int(match.group(1)) < 1:
                raise LabError(
                    f"bad isolation entry {item.strip()!r}; write one level, or one per session"
                    " like T1=repeatable-read,T2=read-committed"
                )
            session = int(match.group(1))
            if session in given:
                raise LabError(f"isolation for T{session} is given twice")
            given[session] = Isolation.parse(match.group(2))
        missing = [f"T{n}" for n in range(1, max(given) + 1) if n not in given]
        if missing:
            raise LabError(f"isolation names no level for {', '.join(missing)}")
        levels = tuple(given[n] for n in sorted(given))
        return cls(levels[0], levels)

    def for_sessions(self, sessions: int) -> tuple[Isolation, ...]:
        """One level per session; a schedule with more sessions than were named is refused."""
        if not self.per_session:
            return (self.level,) * sessions
        if sessions > len(self.per_session):
            raise LabError(
                f"the schedule runs T{sessions}, but --isolation {self.label} names levels"
                f" for T1..T{len(self.per_session)} only"
            )
        return self.per_session[:sessions]

    @property
    def label(self) -> str:
        if not self.per_session:
            return self.level.value
        return ",".join(f"T{n}={level.value}" for n, level in enumerate(self.per_session, 1))

    def __str__(self) -> str:
        return self.label
