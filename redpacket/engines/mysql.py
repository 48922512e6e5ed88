"""MySQL and MariaDB (InnoDB): snapshots at the first plain read, current reads for locks.

- A plain SELECT is a consistent read: at REPEATABLE READ it reads the snapshot
  fixed by the transaction's first consistent read (not BEGIN, not a locking
  read); at READ COMMITTED each consistent read takes a fresh one.
- Locking reads (FOR UPDATE, LOCK IN SHARE MODE) and INSERT/UPDATE/DELETE read
  the newest committed versions ("current reads"), whatever the snapshot.
- SERIALIZABLE makes plain SELECTs shared-locking reads (autocommit off): the
  race becomes a deadlock (1213, SQLSTATE 40001), not SSI.
- Errors are numbers (1213 deadlock, 1205 lock wait timeout, 1062 duplicate key);
  waits are seen in performance_schema.data_lock_waits (MySQL 8) or, on MariaDB,
  in the InnoDB monitor (live) with information_schema.INNODB_LOCK_WAITS naming the
  holder; user locks in the processlist.

Drivers (``mysql_drivers``): PyMySQL, which installs from a wheel everywhere, or
mysqlclient where it is installed; the stress loop and the spec sessions speak the
protocol themselves on PyMySQL's socket (``mysql_wire``).
"""

from __future__ import annotations

import math
import random
import re
import sys
import time
from collections.abc import Sequence
from typing import Any

from redpacket.database.url import URL
from redpacket.engines import innodb_status, mysql_drivers, mysql_wire
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

# The SQLSTATE the server sends with the errors the lab meets (MySQL's error reference);
# the drivers pass only the number on.
SQLSTATES = {
    1020: "HY000", 1062: "23000", 1205: "HY000", 1213: "40001", 1216: "23000", 1451: "23000",
    1452: "23000", 1317: "70100", 1969: "70100", 3024: "HY000", 1054: "42S22", 1064: "42000",
    1146: "42S02", 1927: "70100", 1053: "08S01",
}  # fmt: skip
LOST = {2006, 2013, 2055, 1927, 1053, 4031}  # the session itself is gone
_LOCKING = re.compile(r"\bfor\s+(update|share)\b|\block\s+in\s+share\s+mode\b", re.I)
_TABLE_READ = re.compile(r"^\s*select\b.*\bfrom\s+(?!dual\b)", re.I | re.S)
# GET_LOCK('name', ...) or GET_LOCK(CONCAT('prefix', 123), ...), as the processlist shows it
_USER_LOCK = re.compile(
    r"get_lock\s*\(\s*(?:'([^']*)'|concat\s*\(\s*'([^']*)'\s*,\s*'?([\w:.-]*)'?\s*\))", re.I
)


INNODB_CACHE_S = 0.12  # InnoDB's lock-wait tables refresh after 0.1 s without a reader
HOLDER_NAMED_WITHIN_S = 1.0  # after that, a stale cache: deduce the holder (blocked_by)


class MySQL:
    name = "mysql"
    label = "MariaDB / MySQL"
    schemes: tuple[str, ...] = ("mysql", "mariadb")
    drivers = tuple(driver.sqlalchemy for driver in mysql_drivers.DRIVERS)
    faults = FaultCodes(
        lock_timeout=("1205",), statement_timeout=("1969", "3024"), deadlock=("1213",),
        serialization=("1020",),
    )  # fmt: skip
    session_reset: tuple[str, ...] = (
        "ROLLBACK",
        "SELECT RELEASE_ALL_LOCKS()",
    )  # leave no transaction, no lock
    server_word = "InnoDB"  # who did what, in an explanation
    snapshot_rule = (
        "InnoDB fixes a transaction's snapshot at its first plain (consistent) read, not at"
        " BEGIN and not at a locking read"
    )
    snapshot_taker = "plain read"  # the kind of statement whose first fixes the snapshot
    fresh_snapshot_rule = "at read committed each plain (consistent) read takes a fresh snapshot"
    uncommitted_rule = (
        "an InnoDB consistent read at READ COMMITTED and above shows only committed rows"
        " (only READ UNCOMMITTED reads them dirty)"
    )
    committed_only_rule = (
        "At read committed and at repeatable read alike an InnoDB consistent read shows only"
        " committed rows, and neither grant was committed when the other checked."
    )
    current_read_rule = (
        "a locking read reads the newest committed version of the rows it finds (a current"
        " read, which uses no snapshot)"
    )
    serializable_read_rule = (
        "at serializable InnoDB makes every plain SELECT in a transaction such a locking read"
    )

    def wire_protocol(self) -> Any:
        from redpacket.wire import mysql as wire

        return wire.PROTOCOL

    def empty_locking_read_rule(self, level: Isolation) -> str:
        """What a locking read that found no row locked, at ``level``."""
        if level is Isolation.READ_COMMITTED:
            return (
                "at read committed InnoDB takes no gap lock for a locking read, so one that"
                " finds no row locks nothing"
            )
        return (
            f"at {level.value.replace('-', ' ')} InnoDB locks the gap a locking read scanned,"
            " and an insert into that gap waits for the lock"
        )

    def __init__(self) -> None:
        self._innodb_next_read = 0.0  # not before: InnoDB's lock-wait tables (blocked_by)

    def check_url(self, url: URL) -> None:
        """Anything SQLAlchemy parsed will do: a database in the path is not used (the lab
        creates databases of its own), and the driver reports a bad host when it connects."""

    @property
    def driver(self) -> str:
        return mysql_drivers.chosen().sqlalchemy

    def server_label(self, version: str) -> str:
        """``10.11.19-MariaDB-0+deb12u1`` as ``MariaDB 10.11.19``. Over the protocol's
        handshake MariaDB says ``5.5.5-10.11.19-MariaDB...``: the 5.5.5 prefix is there for
        old MySQL clients' replication checks, not the server's version."""
        if "mariadb" not in version.lower():
            return f"MySQL {version}"
        return f"MariaDB {version.removeprefix('5.5.5-').split('-')[0]}"

    # -- connections --------------------------------------------------------------------

    def connect(self, url: URL, *, autocommit: bool = True, application: str = "redpacket") -> Any:
        try:
            driver = mysql_drivers.chosen()
            driver.imported()
        except ImportError:
            raise LabError(MYSQL_DRIVER) from None
        # a spec file's step may hold several statements; every value the lab sends is escaped
        return driver.connect(connect_options(url), autocommit=autocommit, multi=True)

    def sqlalchemy_args(self, url: URL) -> tuple[URL, dict[str, Any]]:
        return url, {"connect_timeout": CONNECT_TIMEOUT_S, "charset": "utf8mb4"}

    def spec_server(self, url: URL) -> Any:
        """Sessions for spec files (``redpacket spec``), driven without blocking."""
        from redpacket.engines.mysql_spec import MySQLSpecServer

        return MySQLSpecServer(self, url, connect_options(url))

    def prepare_spec_database(self, conn: Any, database: str) -> None:
        """Nothing to set: MySQL's messages and formats do not depend on the database."""

    # -- the lab's own objects ------------------------------------------------------------

    def lab_url(self, server: URL, lab: str, schema: str) -> URL:
        """A database per schema: MySQL's schemas are databases."""
        return server.set(database=f"{lab}_{schema}")

    def lab_databases(self, lab: str) -> tuple[str, ...]:
        return (f"{lab}_unconstrained", f"{lab}_constrained")

    def maintenance_url(self, server: URL, lab: str) -> URL:
        """On no database (printed as the user writes it: ``mysql://HOST/``)."""
        return server.set(database="")

    def carries_mark(self, url: URL, mark: str) -> bool:
        return False  # PyMySQL is light to import: ownership asks, the usual way

    def mark_of(self, conn: Any, database: str) -> str | bool | None:
        """The mark row of the lab's table in ``database``; None without it, False if absent."""
        found = _column(
            conn, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
            (database,),
        )  # fmt: skip
        if not found:
            return False
        has_mark = _column(
            conn,
            "SELECT count(*) FROM information_schema.TABLES"
            " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'redpacket_lab_mark'",
            (database,),
        )
        if not has_mark or not has_mark[0]:
            return None
        marks = _column(conn, f"SELECT mark FROM {_quoted(database)}.redpacket_lab_mark")  # noqa: S608
        return str(marks[0]) if marks else None

    def create_database(self, conn: Any, database: str, mark: str) -> bool:
        try:
            _execute(conn, f"CREATE DATABASE {_quoted(database)} CHARACTER SET utf8mb4")
        except Exception as exc:
            error = self.error_of(exc)
            if error is not None and error.number == 1007:  # it exists: a concurrent lab
                return False
            if error is not None and error.number in (1044, 1227):
                raise LabError(
                    f"cannot create the lab database {database!r}: the user may not create"
                    " databases; grant CREATE or choose a user that may"
                ) from None
            raise
        _execute(conn, f"CREATE TABLE {_quoted(database)}.redpacket_lab_mark (mark VARCHAR(200))")
        _execute(
            conn,
            f"INSERT INTO {_quoted(database)}.redpacket_lab_mark VALUES (%s)",  # noqa: S608
            (mark,),
        )
        return True

    def drop_database(self, conn: Any, database: str) -> None:
        _execute(conn, f"DROP DATABASE {_quoted(database)}")

    def create_schema(self, conn: Any, schema: str) -> None:
        """Nothing to do: the schema is the database, created with the lab's mark."""

    def empty_tables(self, conn: Any, tables: tuple[str, ...]) -> None:
        _execute(conn, "SET FOREIGN_KEY_CHECKS = 0")  # TRUNCATE refuses referenced tables
        try:
            for table in tables:
                _execute(conn, f"TRUNCATE TABLE {_quoted(table)}")
        finally:
            _execute(conn, "SET FOREIGN_KEY_CHECKS = 1")

    def load_orders(self, conn: Any, orders: int) -> None:
        cursor = conn.cursor()
        for start in range(1, orders + 1, 5000):
            rows = [(g, 1000 + g % 97, 10 + (g % 50) * 2.5)
                    for g in range(start, min(orders, start + 4999) + 1)]  # fmt: skip
            cursor.executemany("INSERT INTO orders (id, user_id, amount) VALUES (%s, %s, %s)", rows)
        cursor.close()

    def describe_server(self, conn: Any) -> tuple[str, str]:
        version = _one(conn, "SELECT VERSION()")
        mariadb = "mariadb" in version.lower()
        level = _one(conn, "SELECT @@tx_isolation" if mariadb else "SELECT @@transaction_isolation")
        level = level.replace("-", " ").lower()
        return version, level

    def run(
        self, conn: Any, statement: str, params: dict[str, Any] | None = None
    ) -> tuple[tuple[Any, ...], ...]:
        """One statement, its values bound as the stress loop binds them."""
        cursor = conn.cursor()
        try:
            cursor.execute(bind(conn, statement, params).decode())
            return rows_of(cursor)
        finally:
            cursor.close()

    def client(self) -> tuple[str, str, str]:
        """The driver of the service and the lab's connections, the stress loop's wire, and
        what installing mysqlclient would change (only the service's speed)."""
        driver = mysql_drivers.chosen()
        advice = (
            "mysqlclient (pip install 'redpacket[mysql-fast]', needs libmariadb-dev and"
            " pkg-config) would about halve the service's client CPU per transaction; the"
            " stress loop and spec sessions use the lab's wire either way"
            if driver is mysql_drivers.PYMYSQL
            else ""
        )
        return driver.name, mysql_wire.wire_build(), advice

    def session_id(self, conn: Any) -> int:
        return int(conn.thread_id())

    def is_closed(self, conn: Any) -> bool:
        try:
            conn.ping()  # never reconnects: PyMySQL's and mysqlclient's default
        except Exception:
            return True
        return False

    def error_of(self, exc: BaseException) -> ServerError | None:
        if isinstance(exc, ConnectionError):  # the lab's own wire: the connection is gone
            return ServerError("08006", str(exc), None, None, lost=True)
        classes = tuple(
            driver.error_class()
            for driver in mysql_drivers.DRIVERS
            if driver.module in sys.modules  # a driver not imported raised nothing
        )
        if not classes or not isinstance(exc, classes):
            return None
        number = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        message = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
        return self.error_numbered(number or None, message)

    def error_numbered(self, number: int | None, message: str) -> ServerError:
        """The server's error number (None or 0: the client's, a connection that is gone)."""
        if number is None:
            return ServerError("08006", message, None, None, lost=True)
        lost = number in LOST
        code = "08006" if lost else str(number)
        return ServerError(code, message, SQLSTATES.get(number), number, lost)

    def statement_is_wrong(self, code: str) -> bool:
        """Unknown column or table, syntax, bad value: the SQL, not the session."""
        return code in ("1054", "1064", "1146", "1149", "1292", "1366")

    # -- transactions -------------------------------------------------------------------

    def begin(self, level: Isolation) -> tuple[str, ...]:
        return (f"SET TRANSACTION ISOLATION LEVEL {level.sql}", "START TRANSACTION")

    def session_level(self, level: Isolation) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(set once per connection, then begin each transaction): a level fixed for a run
        costs no round trip per transaction."""
        return (f"SET SESSION TRANSACTION ISOLATION LEVEL {level.sql}",), ("START TRANSACTION",)

    def read_of(self, level: Isolation, statement: str, snapshot_taken: bool) -> Read:
        text = statement.strip()
        if not text.lower().startswith("select"):
            return Read.CURRENT  # INSERT, UPDATE, DELETE read the newest committed rows
        if not _TABLE_READ.search(text):
            return Read.NONE  # SELECT GET_LOCK(...): no table, no snapshot
        if _LOCKING.search(text) or level is Isolation.SERIALIZABLE:
            return Read.CURRENT  # serializable turns plain SELECTs into shared-locking reads
        if level is Isolation.READ_COMMITTED or not snapshot_taken:
            return Read.SNAPSHOT
        return Read.USES_SNAPSHOT

    def paramstyle_sql(self, statement: str) -> str:
        return statement

    # -- seen from the server ------------------------------------------------------------

    def _mariadb(self, observer: Any) -> bool:
        return "mariadb" in _one(observer, "SELECT VERSION()").lower()

    def blocked_by(self, observer: Any, session_id: int) -> list[int]:
        holders = self._user_lock_holder(observer, session_id)
        if holders:
            return holders
        if not self._mariadb(observer):  # MySQL 8: performance_schema, live
            return _ints(
                _column(
                    observer,
                    "SELECT bt.PROCESSLIST_ID FROM performance_schema.data_lock_waits w"
                    " JOIN performance_schema.threads rt"
                    " ON rt.THREAD_ID = w.REQUESTING_THREAD_ID"
                    " JOIN performance_schema.threads bt ON bt.THREAD_ID = w.BLOCKING_THREAD_ID"
                    " WHERE rt.PROCESSLIST_ID = %s",
                    (session_id,),
                )
            )
        # Whether it waits: the monitor, live. Whom it waits for: INNODB_LOCK_WAITS,
        # whose cache other readers can keep stale (see innodb_status).
        now = innodb_status.transactions(observer)
        waiter = now.get(session_id)
        if waiter is None or not waiter.lock_wait:
            return []
        holders = self._named_holders(observer, session_id)
        if holders or (waiter.waited_s or 0.0) < HOLDER_NAMED_WITHIN_S:
            return holders
        # The cache never refreshed: the holder is among the other transactions with
        # locks whose session works in the database of the lock it waits for.
        database = waiter.waited_table[0] if waiter.waited_table else None
        there = set(self._sessions_in(observer, database)) if database else set()
        return sorted(
            t.session_id
            for t in now.values()
            if t.session_id != session_id and t.active and t.lock_structs and t.session_id in there
        )

    def waits_among(self, observer: Any, session_id: int, among: set[int]) -> bool:
        """Whether the session waits for a lock one of ``among`` holds (a spec's sessions).

        Named holders first (user locks, MySQL 8's data_lock_waits, MariaDB's
        INNODB_LOCK_WAITS when its cache is fresh); on MariaDB a wait the monitor reports
        live counts when one of ``among`` is in a transaction holding locks: within a
        spec's own database no one else can be. A table's metadata lock (DDL against an
        open transaction) shows only in the processlist."""
        if set(self.blocked_by(observer, session_id)) & among:
            return True
        now = innodb_status.transactions(observer)
        waiter = now.get(session_id)
        holders = {t.session_id for t in now.values() if t.active and t.lock_structs} & among
        if waiter is not None and waiter.lock_wait:
            return bool(holders - {session_id})
        state = _column(
            observer, "SELECT STATE FROM information_schema.PROCESSLIST WHERE ID = %s",
            (session_id,),
        )  # fmt: skip
        metadata_wait = bool(state) and "metadata lock" in str(state[0] or "").lower()
        return metadata_wait and bool({t.session_id for t in now.values() if t.active} & among)

    def _named_holders(self, observer: Any, session_id: int) -> list[int]:
        """INNODB_LOCK_WAITS, read at most every INNODB_CACHE_S (plus jitter, so that two
        pollers do not settle into a rhythm that keeps the cache from refreshing)."""
        now = time.monotonic()
        if now < self._innodb_next_read:
            return []
        self._innodb_next_read = now + INNODB_CACHE_S + random.uniform(0, INNODB_CACHE_S)
        return _ints(
            _column(
                observer,
                "SELECT b.trx_mysql_thread_id FROM information_schema.INNODB_LOCK_WAITS w"
                " JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id"
                " JOIN information_schema.INNODB_TRX r ON r.trx_id = w.requesting_trx_id"
                " WHERE r.trx_mysql_thread_id = %s",
                (session_id,),
            )
        )

    def _sessions_in(self, observer: Any, database: str) -> list[int]:
        return _ints(
            _column(
                observer,
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s"
                " AND ID <> CONNECTION_ID()",
                (database,),
            )
        )

    def _user_lock_holder(self, observer: Any, session_id: int) -> list[int]:
        """A GET_LOCK wait shows as the state 'User lock'; IS_USED_LOCK names the holder."""
        cursor = observer.cursor()
        cursor.execute(
            "SELECT STATE, INFO FROM information_schema.PROCESSLIST WHERE ID = %s", (session_id,)
        )
        row = cursor.fetchone()
        cursor.close()
        if not row or "user lock" not in str(row[0] or "").lower():
            return []
        found = _USER_LOCK.search(str(row[1] or ""))
        if found is None:
            return []
        name = found.group(1) if found.group(1) is not None else found.group(2) + found.group(3)
        holder = _column(observer, "SELECT IS_USED_LOCK(%s)", (name,))
        return [int(holder[0])] if holder and holder[0] is not None else []

    def cancel(self, observer: Any, session_id: int) -> None:
        _execute(observer, f"KILL QUERY {int(session_id)}")

    def kill(self, observer: Any, session_id: int) -> None:
        _execute(observer, f"KILL CONNECTION {int(session_id)}")

    def deadlock_locks(self, observer: Any, code: str, victim: int) -> tuple[LockConflict, ...]:
        """InnoDB keeps the last deadlock it broke, locks and all, in its monitor output."""
        if code != "1213":
            return ()
        return innodb_status.latest_deadlock(observer, victim)

    def sessions_in_transaction(self, observer: Any, database: str) -> list[int]:
        active = {t.session_id for t in innodb_status.transactions(observer).values() if t.active}
        return [session for session in self._sessions_in(observer, database) if session in active]

    def setting(self, name: str, value: str) -> tuple[str, tuple[str, ...]]:
        """A session setting a user asked for (``innodb_snapshot_isolation=ON``)."""
        return f"SET SESSION {_variable(name)} = %s", (value,)

    def session_settings(
        self,
        lock_timeout_ms: int | None,
        statement_timeout_ms: int | None,
        deadlock_timeout_ms: int | None = None,
    ) -> Sequence[str]:
        if deadlock_timeout_ms:
            raise LabError(
                "--deadlock-timeout is PostgreSQL's: InnoDB finds a deadlock as it forms"
            )
        settings = []
        if lock_timeout_ms:  # innodb_lock_wait_timeout counts whole seconds
            settings.append(
                f"SET SESSION innodb_lock_wait_timeout = {math.ceil(lock_timeout_ms / 1000)}"
            )
        if statement_timeout_ms:
            settings.append(f"SET SESSION max_statement_time = {statement_timeout_ms / 1000:.3f}")
        return settings


MYSQL_DRIVER = (
    "MySQL and MariaDB URLs need PyMySQL, one of redpacket's dependencies: pip install PyMySQL"
)


def _variable(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", name):
        raise LabError(f"{name!r} is not a server variable name")
    return name


def _quoted(name: str) -> str:
    """An identifier for a statement: checked, then quoted (values are always parameters)."""
    if not re.fullmatch(r"[A-Za-z0-9_$]{1,64}", name):
        raise LabError(f"{name!r} is not a name the lab uses for a MySQL database or table")
    return f"`{name}`"


def connect_options(url: URL) -> dict[str, Any]:
    """The drivers' connection arguments for ``url`` (password included): PyMySQL and
    mysqlclient take the same names."""
    options: dict[str, Any] = {
        "host": url.host or "127.0.0.1",
        "port": url.port or 3306,
        "user": url.username or "root",
        "connect_timeout": CONNECT_TIMEOUT_S,
        "charset": "utf8mb4",
    }
    if url.password:
        options["password"] = str(url.password)
    if url.database:
        options["database"] = url.database
    socket = url.query.get("unix_socket")
    if socket:
        options["unix_socket"] = str(socket)
    return options


def _execute(conn: Any, statement: str, params: Any = None) -> None:
    cursor = conn.cursor()
    cursor.execute(statement, params)
    cursor.close()


def _column(conn: Any, statement: str, params: Any = None) -> list[Any]:
    cursor = conn.cursor()
    cursor.execute(statement, params)
    rows = cursor.fetchall()
    cursor.close()
    return [row[0] for row in rows]


def bind(conn: Any, statement: str, params: dict[str, Any] | None) -> bytes:
    """The statement with its values escaped by the driver, as a cursor would do it."""
    if not params:
        return statement.encode()
    return bound(conn, template(statement), params)


def bound(
    conn: Any, known: tuple[bytes, tuple[str, ...]], values: dict[str, Any],
    escaped: dict[str, bytes] | None = None,
) -> bytes:  # fmt: skip
    """A ``template`` with ``values`` in it: integers, the common case, as their digits;
    anything else escaped by the driver, unless ``escaped`` has it escaped already (a
    worker escapes the run's fixed values once per connection)."""
    query, names = known
    if not names:
        return query
    fixed = escaped or {}
    literal = mysql_drivers.literal
    parts = []
    for name in names:
        value = values[name]
        if type(value) is int:
            parts.append(b"%d" % value)
        else:
            done = fixed.get(name)
            parts.append(done if done is not None else literal(conn, value))
    return query % tuple(parts)


_PLACEHOLDER = re.compile(rb"%\((\w+)\)s")


def template(statement: str) -> tuple[bytes, tuple[str, ...]]:
    """A pyformat statement as bytes with positional ``%s``, and the names in their order.

    What ``bind`` works out on every call, worked out once: a worker that sends the
    same few statements a hundred thousand times formats a tuple into bytes instead
    of encoding the text and building two dictionaries per statement.
    """
    encoded = statement.encode()
    names = tuple(name.decode() for name in _PLACEHOLDER.findall(encoded))
    return _PLACEHOLDER.sub(b"%s", encoded), names


def rows_answered(answer: tuple[int, Any, Any, Any, int]) -> tuple[tuple[Any, ...], ...]:
    """The rows of a wire's answer (``mysql_wire``) as ``base.rows_of`` gives a cursor's:
    for a write, (the new id or the count,) when it changed a row (INSERT IGNORE's "did it
    insert?"), else none. Not for an error answer."""
    kind, first, second = answer[0], answer[1], answer[2]
    if kind == mysql_wire.ROWS:
        return tuple(second)
    return ((second or first,),) if first > 0 else ()


def _ints(values: list[Any]) -> list[int]:
    return sorted({int(value) for value in values})


def _one(conn: Any, statement: str) -> str:
    values = _column(conn, statement)
    return str(values[0]) if values else ""


ENGINE = MySQL()
