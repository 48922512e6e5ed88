"""What the lab asks of a database engine, so the core never asks which engine it is.

One module per engine (``postgresql``, ``mysql``) answers the same questions: how
a URL names it, how a transaction begins at a level, how a wait is seen from the
server, how a session is killed, what an error means (its code, the server's
SQLSTATE, whether a retry can help), and which statements fix a snapshot or read
the newest row versions. The scheduler, the service, the stress engines, the
lab's ownership and the explanations all go through these answers.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from redpacket.database.url import URL
from redpacket.isolation import Isolation

CONNECT_TIMEOUT_S = 5


class Cursor(Protocol):
    description: Any
    rowcount: int
    lastrowid: Any

    def execute(self, sql: Any, params: Any = ...) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> Any: ...
    def close(self) -> None: ...


class Connection(Protocol):
    def cursor(self) -> Any: ...
    def close(self) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...


class Read(enum.Enum):
    """How a statement reads the rows it touches, as the timeline marks it."""

    SNAPSHOT = (
        "snapshot"  # fixes the snapshot the transaction reads with (or its own, per statement)
    )
    USES_SNAPSHOT = "uses snapshot"  # a consistent read of the snapshot fixed earlier
    CURRENT = "current read"  # a locking read or a write: the newest committed row versions
    NONE = "none"  # touches no table rows (a user-level lock, a setting)


@dataclass(frozen=True)
class ServerError:
    """An error as the lab reasons about it, and as the server said it.

    ``code`` is what strategies, retries and explanations key on: the SQLSTATE on
    PostgreSQL, the error number on MySQL (``1213``); ``sqlstate`` and ``number``
    are shown as the server gave them; ``lost`` says the session itself is gone.
    """

    code: str
    message: str
    sqlstate: str | None = None
    number: int | None = None
    lost: bool = False

    @property
    def shown(self) -> str:
        """``40001`` on PostgreSQL; ``1213 (SQLSTATE 40001)`` on MySQL."""
        if self.number is not None and self.sqlstate:
            return f"{self.number} (SQLSTATE {self.sqlstate})"
        return self.code


@dataclass(frozen=True)
class FaultCodes:
    """The codes the stress report counts under each kind of fault."""

    lock_timeout: tuple[str, ...]
    statement_timeout: tuple[str, ...]
    deadlock: tuple[str, ...]
    serialization: tuple[str, ...]


class Engine(Protocol):
    name: str  # the registry key, and the key of a step's per-engine SQL
    label: str  # "PostgreSQL", "MariaDB / MySQL"
    schemes: tuple[str, ...]
    drivers: tuple[str, ...]  # SQLAlchemy's drivernames it can speak through

    @property
    def driver(self) -> str: ...  # the one it speaks through here

    faults: FaultCodes

    def check_url(self, url: URL) -> None: ...
    def server_label(self, version: str) -> str: ...

    # -- connections --------------------------------------------------------------------
    def connect(
        self, url: URL, *, autocommit: bool = True, application: str = "redpacket"
    ) -> Any: ...
    def run(
        self, conn: Any, statement: str, params: dict[str, Any] | None = None
    ) -> tuple[tuple[Any, ...], ...]: ...
    def session_id(self, conn: Any) -> int: ...
    def client(self) -> tuple[str, str, str]: ...  # (driver, stress wire, what would be faster)
    def is_closed(self, conn: Any) -> bool: ...
    def error_of(self, exc: BaseException) -> ServerError | None: ...
    def statement_is_wrong(self, code: str) -> bool: ...

    def sqlalchemy_args(self, url: URL) -> tuple[URL, dict[str, Any]]: ...

    # -- the lab's own objects ------------------------------------------------------------
    def lab_url(self, server: URL, lab: str, schema: str) -> URL: ...
    def spec_server(self, url: URL) -> Any: ...  # a redpacket.specs.wire.SpecServer
    def prepare_spec_database(self, conn: Any, database: str) -> None: ...
    def lab_databases(self, lab: str) -> tuple[str, ...]: ...
    def maintenance_url(self, server: URL, lab: str) -> URL: ...
    def mark_of(self, conn: Any, database: str) -> str | bool | None: ...
    # True only if the database at ``url`` answers and carries ``mark``, asked the cheap way
    # (a spec process that finds its database ready never imports the driver); False: ask
    # the long way, through ``ownership``.
    def carries_mark(self, url: URL, mark: str) -> bool: ...
    def create_database(self, conn: Any, database: str, mark: str) -> bool: ...
    def drop_database(self, conn: Any, database: str) -> None: ...
    def create_schema(self, conn: Any, schema: str) -> None: ...
    def empty_tables(self, conn: Any, tables: tuple[str, ...]) -> None: ...
    def load_orders(self, conn: Any, orders: int) -> None: ...
    def describe_server(self, conn: Any) -> tuple[str, str]: ...

    # -- transactions and what they read -------------------------------------------------
    def begin(self, level: Isolation) -> tuple[str, ...]: ...
    def session_level(self, level: Isolation) -> tuple[tuple[str, ...], tuple[str, ...]]: ...
    def read_of(self, level: Isolation, sql: str, snapshot_taken: bool) -> Read: ...
    def empty_locking_read_rule(self, level: Isolation) -> str: ...
    def wire_protocol(self) -> Any: ...  # the proxy's protocol module (redpacket.wire)

    snapshot_taker: str  # "statement", "plain read": its first fixes a transaction's snapshot
    fresh_snapshot_rule: str  # what read committed reads with, in the engine's words

    def paramstyle_sql(self, sql: str) -> str: ...

    # -- seen from the server ------------------------------------------------------------
    def blocked_by(self, observer: Any, session_id: int) -> list[int]: ...
    def cancel(self, observer: Any, session_id: int) -> None: ...
    def kill(self, observer: Any, session_id: int) -> None: ...
    def sessions_in_transaction(self, observer: Any, database: str) -> list[int]: ...
    def deadlock_locks(
        self, observer: Any, code: str, victim: int
    ) -> tuple[LockConflict, ...]: ...  # the locks of the deadlock ``code`` reports, if known
    def setting(self, name: str, value: str) -> tuple[str, tuple[str, ...]]: ...
    def session_settings(
        self,
        lock_timeout_ms: int | None,
        statement_timeout_ms: int | None,
        deadlock_timeout_ms: int | None = None,
    ) -> Sequence[str]: ...

    # -- explanations, in this engine's words --------------------------------------------
    session_reset: tuple[str, ...]  # leaves a session with no transaction and no lock
    server_word: str  # "PostgreSQL", "InnoDB": who did what, in an explanation
    snapshot_rule: str  # when a transaction's snapshot is fixed
    # why a plain read missed a row inserted and not yet committed: true at every level the
    # lab runs, in this engine's terms (InnoDB's READ UNCOMMITTED does read it)
    uncommitted_rule: str
    # why two plain-read checks before either commit both miss, whatever the level below
    # serializable (said only when both checks were plain reads)
    committed_only_rule: str
    # what a read marked "current read" sees, and what serializable makes of a plain SELECT
    current_read_rule: str
    serializable_read_rule: str


def rows_of(cursor: Any) -> tuple[tuple[Any, ...], ...]:
    """What a statement returned, as the strategy's decision reads it: its rows, or, for a
    write that returns none (no RETURNING on MySQL), one row when it changed something.

    The row is then ``(id of the inserted row,)`` (so an insert can capture it) or
    ``(rows changed,)``.
    """
    if cursor.description:
        return tuple(tuple(row) for row in cursor.fetchall())
    if cursor.rowcount is None or cursor.rowcount <= 0:
        return ()
    return ((cursor.lastrowid or cursor.rowcount,),)


@dataclass(frozen=True)
class Lock:
    """One lock as the server's deadlock report names it (InnoDB: a row, gap or table)."""

    holder: int  # the server's id of the session that holds or wants it
    mode: str  # S, X, IS, IX, AUTO-INC
    kind: str  # next-key, gap, record, insert intention, table
    table: str
    index: str | None = None
    at_end: bool = False  # on the supremum: the gap after the index's last record

    @property
    def what(self) -> str:
        """The lock without its place: "a shared (S) gap lock", "an insert-intention lock"."""
        if self.kind == "insert intention":
            return "an insert-intention lock"
        strength = {"S": "shared", "X": "exclusive"}.get(self.mode, self.mode)
        # on the supremum a next-key lock covers only the gap: the place says so
        kind = "" if self.at_end or self.kind == "table" else f" {self.kind}"
        article = "an" if strength[:1].lower() in "aeiou" else "a"
        return f"{article} {strength} ({self.mode}){kind} lock"

    @property
    def place(self) -> str:
        where = f"index {self.index} of {self.table}" if self.index else self.table
        if self.kind == "table":
            return f"table {self.table}"
        if self.at_end:
            return f"the gap at the end of {where}"
        return {
            "gap": f"a gap of {where}",
            "insert intention": f"a gap of {where}",
            "record": f"a record of {where}",
            "next-key": f"a record of {where} and the gap before it",
        }[self.kind]

    @property
    def words(self) -> str:
        return f"{self.what} on {self.place}"


@dataclass(frozen=True)
class LockConflict:
    """In a deadlock the server broke: what one session waited for, and who held what
    it conflicted with."""

    waiting: int  # the server's id of the waiting session
    wanted: Lock
    held: tuple[Lock, ...]  # the conflicting locks, other sessions' only
