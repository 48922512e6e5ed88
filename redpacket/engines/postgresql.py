"""PostgreSQL: snapshots at the first statement, waits from ``pg_blocking_pids``.

- READ COMMITTED: every statement takes a fresh snapshot; a blocked FOR UPDATE or
  UPDATE re-checks the newest row version once released.
- REPEATABLE READ / SERIALIZABLE: the snapshot is taken when the transaction's
  first statement starts (even one that then waits), not at BEGIN; a row changed
  after it cannot be updated or locked (40001); SERIALIZABLE adds SSI.
- Errors are SQLSTATEs; a wait is seen with ``pg_blocking_pids(pid)``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from redpacket.database.url import URL
from redpacket.engines.base import (
    CONNECT_TIMEOUT_S,
    FaultCodes,
    LockConflict,
    Read,
    ServerError,
    rows_of,
)
from redpacket.errors import LabError
from redpacket.isolation import Isolation

SPEC_DATABASE_SETTINGS = (
    ("lc_messages", "C"), ("lc_monetary", "C"), ("lc_numeric", "C"), ("lc_time", "C"),
    ("bytea_output", "hex"), ("timezone_abbreviations", "Default"),
    ("timezone", "PST8PDT"), ("datestyle", "Postgres, MDY"),
)  # fmt: skip


class PostgreSQL:
    name = "postgresql"
    label = "PostgreSQL"
    schemes: tuple[str, ...] = ("postgresql", "postgres")
    driver = "postgresql+psycopg"
    drivers: tuple[str, ...] = ("postgresql+psycopg",)
    faults = FaultCodes(
        lock_timeout=("55P03",), statement_timeout=("57014",), deadlock=("40P01",),
        serialization=("40001",),
    )  # fmt: skip
    session_reset: tuple[str, ...] = ("ROLLBACK",)  # leave no transaction, no lock
    server_word = "PostgreSQL"  # who did what, in an explanation
    snapshot_rule = (
        "PostgreSQL takes a transaction's snapshot when its first statement starts, not at BEGIN"
    )
    snapshot_taker = "statement"  # the kind of statement whose first fixes the snapshot
    fresh_snapshot_rule = "at read committed each statement takes a fresh snapshot"
    uncommitted_rule = (
        "no isolation level of PostgreSQL shows one transaction another's uncommitted rows"
        " (READ UNCOMMITTED reads as READ COMMITTED)"
    )
    committed_only_rule = (
        "Below serializable the isolation level makes no difference here: every snapshot shows"
        " only committed rows, and neither grant was committed when the other checked."
    )
    # PostgreSQL's locking reads use the transaction's snapshot: no read is a current read
    current_read_rule = "a locking read reads the newest committed version of the rows it finds"
    serializable_read_rule = "serializable adds predicate locks, not locking reads"

    def wire_protocol(self) -> Any:
        from redpacket.wire import postgresql as wire

        return wire.PROTOCOL

    def empty_locking_read_rule(self, level: Isolation) -> str:
        """What a locking read that found no row locked, at ``level``."""
        return (
            "a locking read locks only the rows it finds (PostgreSQL has no gap locks), so one"
            " that finds no row locks nothing"
        )

    def check_url(self, url: URL) -> None:
        if " " in url.render_as_string(hide_password=False):
            # libpq 16 and later refuse it in a URI (psycopg's does); the machine's may be older
            raise LabError("malformed database URL: it holds a space (libpq refuses spaces)")
        parse, _make, refused = _conninfo_tools()
        try:  # what libpq itself would refuse (unknown options, bad syntax), in one line
            parse(libpq(url))
        except refused as exc:
            message = str(exc).replace(str(url.password), "***") if url.password else str(exc)
            raise LabError(f"malformed database URL: {message}") from None

    def server_label(self, version: str) -> str:
        return f"PostgreSQL {version.split()[0]}"  # "15.20 (Debian 15.20-0+deb12u1)": the number

    # -- connections --------------------------------------------------------------------

    def connect(self, url: URL, *, autocommit: bool = True, application: str = "redpacket") -> Any:
        import psycopg

        return psycopg.connect(conninfo(url, application), autocommit=autocommit)

    def sqlalchemy_args(self, url: URL) -> tuple[URL, dict[str, Any]]:
        schema = url.query.get("search_path")
        args: dict[str, Any] = {
            "connect_timeout": CONNECT_TIMEOUT_S,
            "application_name": "redpacket",
        }
        if schema:
            args["options"] = f"-c search_path={schema}"
        return url.difference_update_query(["search_path"]), args

    def spec_server(self, url: URL) -> Any:
        """Sessions for spec files (``redpacket spec``), on libpq as isolationtester's."""
        from redpacket.engines.postgresql_spec import PQSpecServer

        return PQSpecServer(conninfo(url, "redpacket spec"))

    # -- the lab's own objects ------------------------------------------------------------

    def lab_url(self, server: URL, lab: str, schema: str) -> URL:
        """The lab's database, with ``search_path`` on the schema kept at that revision."""
        return server.set(database=lab).update_query_dict({"search_path": schema})

    def lab_databases(self, lab: str) -> tuple[str, ...]:
        return (lab,)

    def maintenance_url(self, server: URL, lab: str) -> URL:
        """Where CREATE / DROP DATABASE run: the URL's own database, never the lab's."""
        database = server.database or "postgres"
        return server.set(database="postgres" if database == lab else database)

    def mark_of(self, conn: Any, database: str) -> str | bool | None:
        """The database's comment (the lab's mark), None without one, False if it is absent."""
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (database,),
        ).fetchone()
        if row is None:
            return False
        return row[0] if isinstance(row[0], str) else None

    def carries_mark(self, url: URL, mark: str) -> bool:
        """On libpq through ctypes, where it loads: the spec database of every run after the
        first is checked without psycopg's 0.1 s import."""
        from redpacket.engines import pq_ctypes

        if not pq_ctypes.AVAILABLE:
            return False
        conn = pq_ctypes.PGconn.connect(conninfo(url, "redpacket spec").encode())
        try:
            if conn.status != pq_ctypes.ConnStatus.OK:
                return False  # absent, or unreachable: ownership says which, in one line
            res = conn.exec_(
                b"SELECT shobj_description(oid, 'pg_database') FROM pg_database"
                b" WHERE datname = current_database()"
            )
            ok = res.status == pq_ctypes.ExecStatus.TUPLES_OK and res.ntuples == 1
            found = res.get_value(0, 0) if ok else None
            return found == mark.encode()
        finally:
            conn.finish()

    def create_database(self, conn: Any, database: str, mark: str) -> bool:
        """Create and mark ``database``; False when a concurrent lab created it first."""
        import psycopg
        from psycopg import sql

        name = sql.Identifier(database)
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
        except psycopg.errors.DuplicateDatabase:
            return False
        except psycopg.errors.InsufficientPrivilege:
            raise LabError(
                f"cannot create the lab database {database!r}: the user lacks CREATEDB;"
                " grant it or create the database with the lab's mark yourself"
            ) from None
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(name, sql.Literal(mark)))
        return True

    def prepare_spec_database(self, conn: Any, database: str) -> None:
        """Set up the spec database as pg_isolation_regress sets up its own, so a spec's
        output can be diffed against PostgreSQL's expected files: messages, numbers and
        times in the C locale, hex bytea, Pacific time, Postgres-style dates. Setting
        lc_messages needs a superuser; without one the server's default stays."""
        import psycopg
        from psycopg import sql

        for name, value in SPEC_DATABASE_SETTINGS:
            try:
                with conn.transaction():
                    conn.execute(
                        sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                            sql.Identifier(database), sql.Identifier(name), sql.Literal(value)
                        )
                    )
            except psycopg.errors.InsufficientPrivilege:
                continue

    def drop_database(self, conn: Any, database: str) -> None:
        from psycopg import sql

        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(database)))

    def create_schema(self, conn: Any, schema: str) -> None:
        """``conn`` is a SQLAlchemy connection (Alembic's): the schema its revisions go in."""
        from sqlalchemy.schema import CreateSchema

        conn.execute(CreateSchema(schema, if_not_exists=True))

    def empty_tables(self, conn: Any, tables: tuple[str, ...]) -> None:
        from psycopg import sql

        listed = sql.SQL(", ").join(sql.Identifier(t) for t in tables)
        conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(listed))

    def load_orders(self, conn: Any, orders: int) -> None:
        conn.execute(
            "INSERT INTO orders (id, user_id, amount)"
            " SELECT g, 1000 + g %% 97, 10 + (g %% 50) * 2.5 FROM generate_series(1, %s) AS g",
            (orders,),
        )

    def describe_server(self, conn: Any) -> tuple[str, str]:
        """(server version, default isolation) as the server reports them."""
        version = conn.execute("SHOW server_version").fetchone()[0]
        level = conn.execute("SHOW default_transaction_isolation").fetchone()[0]
        return str(version), str(level)

    def run(
        self, conn: Any, statement: str, params: dict[str, Any] | None = None
    ) -> tuple[tuple[Any, ...], ...]:
        cursor = conn.execute(statement, params)
        return rows_of(cursor)

    def client(self) -> tuple[str, str, str]:
        """psycopg for everything; the stress loop's wire is libpq's C one where it built."""
        import psycopg

        from redpacket.stress.pipes import pipe_build

        return f"psycopg {psycopg.__version__}", pipe_build(), ""

    def session_id(self, conn: Any) -> int:
        return int(conn.info.backend_pid)

    def is_closed(self, conn: Any) -> bool:
        return bool(conn.closed)

    def error_of(self, exc: BaseException) -> ServerError | None:
        if "psycopg" not in sys.modules:  # never imported: nothing it raised
            return None
        import psycopg

        if not isinstance(exc, psycopg.Error):
            return None
        lines = [line for line in str(exc).splitlines() if line.strip()]
        message = lines[0] if lines else type(exc).__name__
        sqlstate = exc.sqlstate
        lost = sqlstate is None and isinstance(exc, psycopg.OperationalError)
        if sqlstate is not None and sqlstate.startswith(("57P0", "08")):
            lost = True
        return ServerError(sqlstate or "08006", message, sqlstate, None, lost)

    def statement_is_wrong(self, code: str) -> bool:
        """Classes 42 (syntax, undefined names) and 22 (data): the SQL, not the session."""
        return code[:2] in ("42", "22")

    # -- transactions -------------------------------------------------------------------

    def begin(self, level: Isolation) -> tuple[str, ...]:
        return (level.begin_sql,)

    def session_level(self, level: Isolation) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return (), (level.begin_sql,)

    def read_of(self, level: Isolation, statement: str, snapshot_taken: bool) -> Read:
        if level is Isolation.READ_COMMITTED or not snapshot_taken:
            return Read.SNAPSHOT
        return Read.USES_SNAPSHOT

    def paramstyle_sql(self, statement: str) -> str:
        return statement

    # -- seen from the server ------------------------------------------------------------

    def blocked_by(self, observer: Any, session_id: int) -> list[int]:
        row = observer.execute("SELECT pg_blocking_pids(%s)", (session_id,)).fetchone()
        return [int(p) for p in row[0]] if row and row[0] else []

    def cancel(self, observer: Any, session_id: int) -> None:
        observer.execute("SELECT pg_cancel_backend(%s)", (session_id,))

    def kill(self, observer: Any, session_id: int) -> None:
        observer.execute("SELECT pg_terminate_backend(%s)", (session_id,))

    def deadlock_locks(self, observer: Any, code: str, victim: int) -> tuple[LockConflict, ...]:
        """PostgreSQL says its cycle only in the refused statement's DETAIL, as transactions
        waited for rather than rows, and the lab does not read it (yet): the why then names
        who waited for whom, not the locks."""
        return ()

    def sessions_in_transaction(self, observer: Any, database: str) -> list[int]:
        rows = observer.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND xact_start IS NOT NULL"
            " AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
        return [int(row[0]) for row in rows]

    def setting(self, name: str, value: str) -> tuple[str, tuple[str, ...]]:
        """A session setting a user asked for, as a bound-parameter statement."""
        return "SELECT set_config(%s, %s, false)", (name, value)

    def session_settings(
        self,
        lock_timeout_ms: int | None,
        statement_timeout_ms: int | None,
        deadlock_timeout_ms: int | None = None,
    ) -> Sequence[str]:
        from psycopg import sql

        settings = []
        for name, value in (("lock_timeout", lock_timeout_ms),
                            ("statement_timeout", statement_timeout_ms)):  # fmt: skip
            if value:
                settings.append(
                    sql.SQL("SET {} = {}")
                    .format(sql.Identifier(name), sql.Literal(f"{value}ms"))
                    .as_string(None)
                )
        return settings


def libpq(url: URL) -> str:
    """The URL as libpq takes it (no SQLAlchemy driver suffix), password included."""
    plain = url.set(drivername="postgresql").difference_update_query(["search_path"])
    return plain.render_as_string(hide_password=False)


def conninfo(url: URL, application: str = "redpacket", options: str = "") -> str:
    """A libpq connection string for ``url``, landing in its ``search_path`` schema if any."""
    schema = url.query.get("search_path")
    settings = f"-c search_path={schema} {options}" if schema else options
    _parse, make, _refused = _conninfo_tools()
    return make(
        libpq(url),
        options=settings.strip() or None,
        connect_timeout=CONNECT_TIMEOUT_S,
        application_name=application,
    )


def _conninfo_tools() -> tuple[Callable[[str], Any], Callable[..., str], type[Exception]]:
    """(parse, make, what a refused string raises): libpq's own calls on connection strings,
    through ctypes where the machine's libpq loads (a ``spec`` process then never imports
    psycopg), else psycopg's, which make the same calls."""
    from redpacket.engines import pq_ctypes

    if pq_ctypes.AVAILABLE:
        return pq_ctypes.conninfo_to_dict, pq_ctypes.make_conninfo, ValueError
    import psycopg

    conninfo = psycopg.conninfo
    return conninfo.conninfo_to_dict, conninfo.make_conninfo, psycopg.ProgrammingError


ENGINE = PostgreSQL()
