"""Names the command line shows before it loads anything heavy (``redpacket --help``), and
the lab's schemas, which listing the strategies names without a server."""

from __future__ import annotations

import enum

BACKENDS = ("auto", "url", "embedded", "docker", "mysql-local", "mysql-docker")
DEFAULT_LAB_DATABASE = "redpacket_lab"


class Schema(enum.Enum):
    """A schema of the lab database and the Alembic revision it is kept at."""

    UNCONSTRAINED = "unconstrained"
    CONSTRAINED = "constrained"

    @property
    def target_revision(self) -> str:
        return "0001" if self is Schema.UNCONSTRAINED else "head"

    @property
    def tables(self) -> tuple[str, ...]:
        base = ("red_packets", "orders")
        return (*base, "red_packet_duplicates") if self is Schema.CONSTRAINED else base

    @classmethod
    def for_revision(cls, revision: str) -> Schema:
        """The schema a strategy needing ``revision`` runs on."""
        return cls.UNCONSTRAINED if revision == "0001" else cls.CONSTRAINED
