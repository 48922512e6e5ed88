"""Which databases are the lab's: created and marked by it, and the only ones it will change.

The engine says how a database is marked (a comment on PostgreSQL, a one-row table
on MySQL) and which databases a lab has (one, or one per schema); the rules are
here: ``ensure`` creates and marks; ``drop``, ``require`` and (through
``require``) ``reset`` and ``migrate`` refuse any database without the mark, so
pointing the lab at a server full of real tables (even one with an ``orders``
table) is safe, and no other database on the server is ever touched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from redpacket.database.connect import connect
from redpacket.database.names import migrate_command
from redpacket.database.urls import mask
from redpacket.errors import LabError

if TYPE_CHECKING:
    from redpacket.database.lab import Lab

OWNER_MARK = "redpacket lab database: created by redpacket, removed by `redpacket drop`"


@contextlib.contextmanager
def _maintenance(lab: Lab) -> Iterator[Any]:
    with connect(lab.maintenance_url, autocommit=True) as conn:
        yield conn


def _refuse_foreign(database: str, mark: str | bool | None) -> None:
    if mark is not False and mark != OWNER_MARK:
        raise LabError(
            f"database {database!r} exists but was not created by redpacket;"
            " refusing to touch it (choose another with --lab-database)"
        )


def _marks(lab: Lab, conn: Any) -> dict[str, str | bool | None]:
    return {db: lab.engine.mark_of(conn, db) for db in lab.engine.lab_databases(lab.name)}


def exists(lab: Lab) -> bool:
    with _maintenance(lab) as conn:
        return any(mark is not False for mark in _marks(lab, conn).values())


def ensure(lab: Lab) -> bool:
    """Create the lab's databases if missing; refuse one we did not create. True if created."""
    created = False
    with _maintenance(lab) as conn:
        for database, mark in _marks(lab, conn).items():
            _refuse_foreign(database, mark)
        for database, mark in _marks(lab, conn).items():
            if mark is False and lab.engine.create_database(conn, database, OWNER_MARK):
                created = True
            _refuse_foreign(database, lab.engine.mark_of(conn, database))
    return created


def drop(lab: Lab) -> bool:
    """Drop the lab's databases (only those with our mark). False if there were none."""
    with _maintenance(lab) as conn:
        marks = _marks(lab, conn)
        for database, mark in marks.items():
            _refuse_foreign(database, mark)
        present = [database for database, mark in marks.items() if mark is not False]
        for database in present:
            lab.engine.drop_database(conn, database)
    return bool(present)


def require(lab: Lab) -> None:
    """Fail with a clear message unless the lab's databases exist and are ours."""
    with _maintenance(lab) as conn:
        marks = _marks(lab, conn)
    for database, mark in marks.items():
        if mark is False:
            raise LabError(
                f"the lab database {database!r} does not exist on {mask(lab.server.url)};"
                f" run `{migrate_command(lab.name)}` first"
            )
        _refuse_foreign(database, mark)


def ensure_database(lab: Lab, database: str) -> bool:
    """Create and mark one more database of the lab's (the spec files' own); True if created.

    It is not one of ``engine.lab_databases``, so labs created before it need no migration;
    ``drop_database`` removes it with the rest."""
    with _maintenance(lab) as conn:
        mark = lab.engine.mark_of(conn, database)
        _refuse_foreign(database, mark)
        created = mark is False and lab.engine.create_database(conn, database, OWNER_MARK)
        _refuse_foreign(database, lab.engine.mark_of(conn, database))
    return created


def drop_database(lab: Lab, database: str) -> bool:
    """Drop one more database of the lab's, if it is there and marked; False if absent."""
    with _maintenance(lab) as conn:
        mark = lab.engine.mark_of(conn, database)
        if mark is False:
            return False
        _refuse_foreign(database, mark)
        lab.engine.drop_database(conn, database)
    return True
