"""Names the command line shows before it loads anything heavy (``redpacket --help``), and
the lab's schemas, which listing the strategies names without a server."""

from __future__ import annotations

import enum
import re

BACKENDS = ("auto", "url", "embedded", "docker", "mysql-local", "mysql-docker")
DEFAULT_LAB_DATABASE = "redpacket_lab"
# The longest name the lab derives from its own: PostgreSQL cuts identifiers at 63 bytes,
# and a cut name would be another database (MySQL allows 64).
_LONGEST_SUFFIX = len("_unconstrained")
LAB_NAME_LIMIT = 63 - _LONGEST_SUFFIX
_LAB_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def lab_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be the lab's database, or None. Checked before it reaches any
    SQL: the lab creates and drops databases by this name and the names made from it."""
    if not _LAB_NAME.fullmatch(name):
        return (
            f"lab database name {name!r} must be letters, digits and underscores,"
            " not starting with a digit"
        )
    if len(name) > LAB_NAME_LIMIT:
        return f"lab database name {name!r} is longer than {LAB_NAME_LIMIT} characters"
    return None


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


def migrate_command(lab_name: str) -> str:
    """The command that creates and migrates this lab, as a user would type it."""
    if lab_name == DEFAULT_LAB_DATABASE:
        return "redpacket migrate"
    return f"redpacket --lab-database {lab_name} migrate"
