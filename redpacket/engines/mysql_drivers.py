"""Which MySQL driver the lab's DB-API connections use: PyMySQL always, mysqlclient if present.

A newcomer's machine has no MariaDB client headers, and mysqlclient has no wheel for
Linux: it cannot be a dependency that ``pip install`` must build. PyMySQL installs
everywhere (one pure-Python wheel), and of the drivers that install from a wheel it
is the one to build on (benchmarks/mysql_drivers.py, README: the MariaDB
connector's wheels are a release candidate, mysql-connector-python's newest C
extension needs a newer OpenSSL than Debian 12 has, asyncmy has no blocking API).
Its Python costs client CPU on every statement, so the two paths where that counts
(the stress loop and the spec runner) speak the protocol themselves over the
socket PyMySQL opened (``mysql_wire``); what is left here, the service and the
lab's own connections, takes mysqlclient when it is importable (the ``mysql-fast``
extra), which halves the service's client CPU per transaction.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from functools import cache
from typing import Any

CLIENT_MULTI_STATEMENTS = 1 << 16  # one query may hold several statements (a spec's step)
CLIENT_DEPRECATE_EOF = 1 << 24  # no EOF packets: an OK packet ends a result set


@dataclass(frozen=True)
class Driver:
    name: str  # what pip installs
    module: str  # what Python imports
    sqlalchemy: str  # SQLAlchemy's dialect+driver

    def imported(self) -> Any:
        return importlib.import_module(self.module)

    def connect(self, options: dict[str, Any], *, autocommit: bool, multi: bool) -> Any:
        flags = CLIENT_MULTI_STATEMENTS if multi else 0
        return self.imported().connect(**options, autocommit=autocommit, client_flag=flags)

    def error_class(self) -> type[BaseException]:
        return self.imported().MySQLError  # type: ignore[no-any-return]


def literal(conn: Any, value: Any) -> bytes:
    """``value`` as SQL, escaped for ``conn``'s character set, whichever driver's it is
    (mysqlclient gives bytes, PyMySQL str)."""
    if type(conn).__module__.startswith("pymysql"):
        return conn.escape(value).encode()  # type: ignore[no-any-return]
    return conn.literal(value)  # type: ignore[no-any-return]


PYMYSQL = Driver("PyMySQL", "pymysql", "mysql+pymysql")
MYSQLCLIENT = Driver("mysqlclient", "MySQLdb", "mysql+mysqldb")
DRIVERS = (MYSQLCLIENT, PYMYSQL)  # the first importable one serves


@cache
def chosen() -> Driver:
    """The first installed driver of ``DRIVERS``; PyMySQL is a dependency, so always one."""
    for driver in DRIVERS:
        if importlib.util.find_spec(driver.module) is not None:
            return driver
    return PYMYSQL  # not installed either: connecting says what to install


def protocol_connect(options: dict[str, Any], *, multi: bool = False) -> tuple[Any, int, bool]:
    """A PyMySQL connection for the lab's own wire: (connection, its socket, whether the
    server leaves out the EOF packets). PyMySQL does the handshake and authentication
    (every plugin it knows); nothing is left unread on the socket once it returns."""
    import pymysql  # always PyMySQL's socket: the wire knows how it negotiated

    flags = CLIENT_MULTI_STATEMENTS if multi else 0
    conn = pymysql.connect(**options, autocommit=True, client_flag=flags)
    deprecate_eof = bool(conn.client_flag & conn.server_capabilities & CLIENT_DEPRECATE_EOF)
    return conn, conn._sock.fileno(), deprecate_eof
