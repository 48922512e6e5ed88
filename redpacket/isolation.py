"""The three isolation levels PostgreSQL really implements, under the lab's names.

PostgreSQL maps READ UNCOMMITTED to READ COMMITTED, so the lab does not offer it.
"""

from __future__ import annotations

import enum

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
