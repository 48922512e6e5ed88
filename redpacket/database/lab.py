"""The lab's own database: where it is, how to connect to it, and what it holds.

The lab never works in the database a URL names. It creates a database of its own
(``redpacket_lab`` unless told otherwise); which database is the lab's, and the
refusal to touch any other, is ``ownership``'s job.

Inside it live two schemas, one per revision a strategy can need: ``unconstrained``
stays at revision 0001 (the schema the bug lived in: no unique constraint) and
``constrained`` is at head (the shipped fix). A connection picks one through its
``search_path``, so each strategy runs on the schema it needs without the user
migrating back and forth.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import psycopg
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from redpacket.database import ownership
from redpacket.database.backends import Server
from redpacket.database.connect import CONNECT_TIMEOUT_S
from redpacket.database.urls import libpq_url
from redpacket.errors import LabError

DEFAULT_LAB_DATABASE = "redpacket_lab"
FALLBACK_MAINTENANCE_DB = "postgres"


class Schema(enum.Enum):
    """A schema of the lab database and the Alembic revision it is kept at."""

    UNCONSTRAINED = "unconstrained"
    CONSTRAINED = "constrained"

    @property
    def target_revision(self) -> str:
        return "0001" if self is Schema.UNCONSTRAINED else "head"

    @classmethod
    def for_revision(cls, revision: str) -> Schema:
        """The schema a strategy needing ``revision`` runs on."""
        return cls.UNCONSTRAINED if revision == "0001" else cls.CONSTRAINED


@dataclass
class Lab:
    """A server plus the name of the database the lab owns on it."""

    server: Server
    name: str = DEFAULT_LAB_DATABASE
    _engines: dict[Schema, Engine] = field(default_factory=dict, repr=False)

    @property
    def url(self) -> URL:
        return self.server.url.set(database=self.name)

    @property
    def maintenance_url(self) -> URL:
        """Where CREATE / DROP DATABASE run: the URL's own database, never the lab's."""
        database = self.server.url.database or FALLBACK_MAINTENANCE_DB
        if database == self.name:
            database = FALLBACK_MAINTENANCE_DB
        return self.server.url.set(database=database)

    def conninfo(
        self, schema: Schema, application_name: str = "redpacket", options: str = ""
    ) -> str:
        """A libpq connection string to the lab database with ``search_path`` on ``schema``."""
        return psycopg.conninfo.make_conninfo(
            libpq_url(self.url),
            options=f"-c search_path={schema.value} {options}".strip(),
            connect_timeout=CONNECT_TIMEOUT_S,
            application_name=application_name,
        )

    def engine(self, schema: Schema) -> Engine:
        if schema not in self._engines:
            self._engines[schema] = create_engine(
                self.url,
                poolclass=NullPool,
                connect_args={
                    "options": f"-c search_path={schema.value}",
                    "connect_timeout": CONNECT_TIMEOUT_S,
                    "application_name": "redpacket",
                },
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
        """Drop the lab database (only if it carries our mark). False if it did not exist."""
        self.close()
        return ownership.drop(self)

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
            with self.engine(schema).begin() as conn:
                conn.execute(EMPTY_TABLES[schema])
                conn.execute(LOAD_ORDERS, {"n": orders})


EMPTY_TABLES = {
    Schema.UNCONSTRAINED: text("TRUNCATE orders, red_packets RESTART IDENTITY CASCADE"),
    Schema.CONSTRAINED: text(
        "TRUNCATE orders, red_packets, red_packet_duplicates RESTART IDENTITY CASCADE"
    ),
}
LOAD_ORDERS = text(
    "INSERT INTO orders (id, user_id, amount)"
    " SELECT g, 1000 + g % 97, 10 + (g % 50) * 2.5 FROM generate_series(1, :n) AS g"
)
