"""The lab's own database: create it, migrate it, reset it, drop it — and nothing else.

The lab never works in the database a URL names. It creates a database of its own
(``redpacket_lab`` unless told otherwise) and marks it with a comment; ``reset``,
``migrate`` and ``drop`` refuse any database that lacks the mark, so pointing the
lab at a server full of real tables (even one with an ``orders`` table) is safe.

Inside it live two schemas, one per revision a strategy can need: ``unconstrained``
stays at revision 0001 (the schema the bug lived in: no unique constraint) and
``constrained`` is at head (the shipped fix). A connection picks one through its
``search_path``, so each strategy runs on the schema it needs without the user
migrating back and forth.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from redpacket.database.backends import Server
from redpacket.database.urls import libpq_url, mask, scrub
from redpacket.errors import LabError

DEFAULT_LAB_DATABASE = "redpacket_lab"
OWNER_MARK = "redpacket lab database: created by redpacket, removed by `redpacket drop`"
CONNECT_TIMEOUT_S = 5
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

    # -- ownership ----------------------------------------------------------------

    @contextlib.contextmanager
    def _maintenance(self) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        with connect(self.maintenance_url, autocommit=True) as conn:
            yield conn

    def _mark(self, conn: psycopg.Connection[tuple[object, ...]]) -> str | bool | None:
        """The database's comment, or False when it does not exist."""
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (self.name,),
        ).fetchone()
        if row is None:
            return False
        return row[0] if isinstance(row[0], str) else None

    def exists(self) -> bool:
        with self._maintenance() as conn:
            return self._mark(conn) is not False

    def ensure(self) -> bool:
        """Create the lab database if missing; refuse one we did not create. True if created."""
        with self._maintenance() as conn:
            mark = self._mark(conn)
            if mark is False:
                try:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
                except psycopg.errors.DuplicateDatabase:
                    pass  # a concurrent lab created it first; check its mark below
                except psycopg.errors.InsufficientPrivilege:
                    raise LabError(
                        f"cannot create the lab database {self.name!r}: the user lacks CREATEDB;"
                        " grant it or create the database with the lab's mark yourself"
                    ) from None
                else:
                    conn.execute(
                        sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                            sql.Identifier(self.name), sql.Literal(OWNER_MARK)
                        )
                    )
                    return True
                mark = self._mark(conn)
            self._refuse_foreign(mark)
            return False

    def _refuse_foreign(self, mark: str | bool | None) -> None:
        if mark != OWNER_MARK:
            raise LabError(
                f"database {self.name!r} exists but was not created by redpacket;"
                " refusing to touch it (choose another with --lab-database)"
            )

    def drop(self) -> bool:
        """Drop the lab database (only if it carries our mark). False if it did not exist."""
        self.close()
        with self._maintenance() as conn:
            mark = self._mark(conn)
            if mark is False:
                return False
            self._refuse_foreign(mark)
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(self.name)))
            return True

    def require(self) -> None:
        """Fail with a clear message unless the lab database exists and is ours."""
        with self._maintenance() as conn:
            mark = self._mark(conn)
        if mark is False:
            raise LabError(
                f"the lab database {self.name!r} does not exist on {mask(self.server.url)};"
                " run `redpacket migrate` first"
            )
        self._refuse_foreign(mark)

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


@contextlib.contextmanager
def connect(
    url: URL, *, autocommit: bool = False
) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A psycopg connection whose connection failure is a one-line, password-free LabError."""
    try:
        conn = psycopg.connect(
            libpq_url(url), autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT_S
        )
    except psycopg.OperationalError as exc:
        raise LabError(f"cannot connect to {mask(url)}: {first_line(str(exc), url)}") from None
    with conn:
        yield conn


def first_line(message: str, url: URL) -> str:
    lines = [line.strip() for line in scrub(message, url).splitlines() if line.strip()]
    return lines[0] if lines else "unknown error"


@contextlib.contextmanager
def translate_connect_errors(url: URL) -> Iterator[None]:
    """Turn SQLAlchemy's wrapped connection failures into the same one-line LabError."""
    try:
        yield
    except DBAPIError as exc:
        if exc.connection_invalidated or isinstance(exc.orig, psycopg.OperationalError):
            raise LabError(
                f"cannot connect to {mask(url)}: {first_line(str(exc.orig), url)}"
            ) from None
        raise
