"""Which database is the lab's: created and marked by it, and the only one it will change.

The mark is a comment on the database. ``ensure`` creates and marks the lab's
database; ``drop``, ``require`` and (through ``require``) ``reset`` and ``migrate``
refuse any database without the mark, so pointing the lab at a server full of
real tables (even one with an ``orders`` table) is safe.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from redpacket.database.connect import connect
from redpacket.database.urls import mask
from redpacket.errors import LabError

if TYPE_CHECKING:
    from redpacket.database.lab import Lab

OWNER_MARK = "redpacket lab database: created by redpacket, removed by `redpacket drop`"
Maintenance = psycopg.Connection[tuple[object, ...]]


@contextlib.contextmanager
def _maintenance(lab: Lab) -> Iterator[Maintenance]:
    with connect(lab.maintenance_url, autocommit=True) as conn:
        yield conn


def _mark(lab: Lab, conn: Maintenance) -> str | bool | None:
    """The database's comment, or False when it does not exist."""
    row = conn.execute(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
        (lab.name,),
    ).fetchone()
    if row is None:
        return False
    return row[0] if isinstance(row[0], str) else None


def _refuse_foreign(lab: Lab, mark: str | bool | None) -> None:
    if mark != OWNER_MARK:
        raise LabError(
            f"database {lab.name!r} exists but was not created by redpacket;"
            " refusing to touch it (choose another with --lab-database)"
        )


def exists(lab: Lab) -> bool:
    with _maintenance(lab) as conn:
        return _mark(lab, conn) is not False


def ensure(lab: Lab) -> bool:
    """Create the lab database if missing; refuse one we did not create. True if created."""
    with _maintenance(lab) as conn:
        mark = _mark(lab, conn)
        if mark is False:
            name = sql.Identifier(lab.name)
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
            except psycopg.errors.DuplicateDatabase:
                pass  # a concurrent lab created it first; check its mark below
            except psycopg.errors.InsufficientPrivilege:
                raise LabError(
                    f"cannot create the lab database {lab.name!r}: the user lacks CREATEDB;"
                    " grant it or create the database with the lab's mark yourself"
                ) from None
            else:
                mark_sql = sql.SQL("COMMENT ON DATABASE {} IS {}")
                conn.execute(mark_sql.format(name, sql.Literal(OWNER_MARK)))
                return True
            mark = _mark(lab, conn)
        _refuse_foreign(lab, mark)
        return False


def drop(lab: Lab) -> bool:
    """Drop the lab database (only if it carries our mark). False if it did not exist."""
    with _maintenance(lab) as conn:
        mark = _mark(lab, conn)
        if mark is False:
            return False
        _refuse_foreign(lab, mark)
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(lab.name)))
        return True


def require(lab: Lab) -> None:
    """Fail with a clear message unless the lab database exists and is ours."""
    with _maintenance(lab) as conn:
        mark = _mark(lab, conn)
    if mark is False:
        raise LabError(
            f"the lab database {lab.name!r} does not exist on {mask(lab.server.url)};"
            " run `redpacket migrate` first"
        )
    _refuse_foreign(lab, mark)
