"""The lab's own database: where it is, how to connect to it, and what it holds.

The lab never works in the database a URL names. It creates a database of its own
(``redpacket_lab`` unless told otherwise); which database is the lab's, and the
refusal to touch any other, is ``ownership``'s job.

Inside live two schemas, one per revision a strategy can need: ``unconstrained``
stays at revision 0001 (the schema the bug lived in: no unique constraint) and
``constrained`` is at head (the shipped fix). On PostgreSQL they are schemas of
one database, picked by ``search_path``; on MySQL, where a schema is a database,
they are two databases. Either way ``url(schema)`` lands a connection in one.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redpacket.database import ownership
from redpacket.database.backends import Server
from redpacket.database.connect import connect
from redpacket.database.names import DEFAULT_LAB_DATABASE, Schema, lab_name_problem
from redpacket.database.url import URL

__all__ = ["DEFAULT_LAB_DATABASE", "Lab", "Schema"]
from redpacket.engines import Engine as DatabaseEngine
from redpacket.errors import LabError

if TYPE_CHECKING:
    from sqlalchemy import Engine


@dataclass
class Lab:
    """A server plus the name of the database the lab owns on it."""

    server: Server
    name: str = DEFAULT_LAB_DATABASE
    _engines: dict[Schema, Engine] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        problem = lab_name_problem(self.name)
        if problem is not None:
            raise LabError(problem)

    @property
    def engine(self) -> DatabaseEngine:
        """The database engine the server runs (redpacket.engines)."""
        return self.server.engine

    @property
    def url(self) -> URL:
        return self.url_of(Schema.UNCONSTRAINED)

    def url_of(self, schema: Schema) -> URL:
        return self.engine.lab_url(self.server.url, self.name, schema.value)

    @property
    def maintenance_url(self) -> URL:
        """Where databases are created and dropped: never inside the lab's own."""
        return self.engine.maintenance_url(self.server.url, self.name)

    def connect(
        self, schema: Schema, *, autocommit: bool = True, application: str = "redpacket"
    ) -> AbstractContextManager[Any]:
        """A DB-API connection in ``schema`` (a context manager that closes it)."""
        return connect(self.url_of(schema), autocommit=autocommit, application=application)

    def sqlalchemy(self, schema: Schema) -> Engine:
        if schema not in self._engines:
            from sqlalchemy import create_engine
            from sqlalchemy.pool import NullPool

            url, args = self.engine.sqlalchemy_args(self.url_of(schema))
            self._engines[schema] = create_engine(
                url.sqlalchemy(), poolclass=NullPool, connect_args=args
            )
        return self._engines[schema]

    def close(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()

    # -- ownership: the rules live in ``ownership`` ---------------------------------

    def exists(self) -> bool:
        return ownership.exists(self)

    def ensure(self) -> bool:
        """Create the lab database if missing; refuse one we did not create. True if created."""
        return ownership.ensure(self)

    def drop(self) -> bool:
        """Drop the lab's databases (only those with our mark). False if none existed."""
        self.close()
        dropped_more = [ownership.drop_database(self, name)
                        for name in (self.spec_database, self.race_database)]  # fmt: skip
        return ownership.drop(self) or any(dropped_more)

    @property
    def race_database(self) -> str:
        """Where the pytest plugin races users' code when they give no URL of their own."""
        return f"{self.name}_race"

    @property
    def spec_database(self) -> str:
        """Where spec files run (``redpacket spec``, ``anomalies``): one database of the
        lab's, apart from the red-packet schemas, since a spec creates and drops what it
        likes."""
        return f"{self.name}_specs"

    def own_database_url(self, database: str) -> URL:
        """One more database of the lab's (created and marked if missing, refused if foreign),
        as a URL on the lab's server."""
        ownership.ensure_database(self, database)
        return self.server.url.set(database=database)

    def spec_url(self) -> URL:
        """The spec database, created and marked if missing (and set up by the engine)."""
        url = self.server.url.set(database=self.spec_database)
        if self.engine.carries_mark(url, ownership.OWNER_MARK):
            return url  # there, and the lab's: nothing to create, nothing to refuse
        if ownership.ensure_database(self, self.spec_database):
            with connect(self.maintenance_url, autocommit=True) as conn:
                self.engine.prepare_spec_database(conn, self.spec_database)
        return self.server.url.set(database=self.spec_database)

    def require(self) -> None:
        ownership.require(self)

    # -- contents -----------------------------------------------------------------

    def reset(self, orders: int) -> None:
        """Empty both schemas' tables and load ``orders`` orders with ids 1..orders."""
        if orders < 0:
            raise LabError(f"--orders must be 0 or more, got {orders}")
        from redpacket.database.migrate import require_migrated

        self.require()
        require_migrated(self)
        for schema in Schema:
            with self.connect(schema, autocommit=False) as conn:
                self.engine.empty_tables(conn, schema.tables)
                self.engine.load_orders(conn, orders)
