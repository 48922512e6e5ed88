"""The fast engine on MySQL/MariaDB: connections on the lab's wire in one event loop per process.

MySQL's protocol has no pipeline, but a query can be sent without waiting, and once
the socket is readable the answer to one statement is there to read
(``engines.mysql_wire``, on the socket PyMySQL connected and authenticated). So each worker
has exactly one statement in flight, and one thread serves them all, as pgbench
and mysqlslap do: no thread per worker waking for the GIL after every round trip
(measured: 0.45 of mysqlslap at 32 clients with threads).

One statement per query, never several: in a multi-statement query the answers
after the first can only be read blocking, and a later statement waiting on a lock
that another worker of this loop holds would stop the loop for good. So the
session runs with autocommit off and no START TRANSACTION, as JDBC and Spring do
(``setAutoCommit(false)``): InnoDB begins the transaction at its first statement
and fixes the snapshot at its first consistent read either way.
"""

from __future__ import annotations

import contextlib
from typing import Any

from redpacket.database.url import make_url
from redpacket.engines.mysql import ENGINE as MYSQL
from redpacket.engines.mysql import connect_options, template
from redpacket.engines.mysql_drivers import literal, protocol_connect
from redpacket.engines.mysql_wire import open_wire
from redpacket.stress.event_loop import EventLoop
from redpacket.stress.mysql_worker import MySQLWorker
from redpacket.stress.plan import StressPlan
from redpacket.stress.statements import StatementRefused


class MySQLLoop(EventLoop):
    """Runs one process's share of a stress plan over connections on the lab's MySQL wire."""

    def __init__(
        self, plan: StressPlan, url: str, workers: int, attempts: int | None, seed: int,
        first_worker: int = 0,
    ) -> None:  # fmt: skip
        super().__init__(plan, attempts, seed)
        self.database = MYSQL  # its own engine, not just any: error_numbered is InnoDB's
        self.url = make_url(url)
        self.strategy = plan.strategy.for_engine(self.database.name, self.database.label)
        once, _begin = self.database.session_level(plan.isolation)
        self.settings = once + tuple(
            self.database.session_settings(
                plan.lock_timeout_ms, plan.statement_timeout_ms, plan.deadlock_timeout_ms
            )
        )
        self.base_context: dict[str, Any] = {
            "campaign_id": plan.campaign_id, "amount": plan.amount,
        }  # fmt: skip
        self.checked = False  # the strategy's statements, prepared once by the server
        self.connect_all(
            [MySQLWorker(self, first_worker + i) for i in range(workers)], self.reconnect
        )

    def _check_statements(self, conn: Any, cursor: Any) -> None:
        """Have the server prepare every statement of the strategy once, before any runs:
        a wrong one (an unknown column, a syntax error) ends the run at once, naming its
        step, as the PostgreSQL loop's prepared statements do. (PREPARE parses and
        resolves names; nothing executes.)"""
        for step in self.strategy.steps:
            for sql in (step.pyformat_sql, step.pyformat_afterwards):
                if sql is None:
                    continue
                query, _names = template(sql)
                placeholders = query.replace(b"%s", b"?").replace(b"%%", b"%").decode()
                try:
                    cursor.execute("PREPARE redpacket_check FROM " + conn.escape(placeholders))
                    cursor.execute("DEALLOCATE PREPARE redpacket_check")
                except Exception as exc:
                    error = self.database.error_of(exc)
                    if error is None or not self.database.statement_is_wrong(error.code):
                        raise
                    raise StatementRefused(
                        f"strategy {self.strategy.name!r}, step {step.name}: the server refuses"
                        f" its SQL ({error.code}): {error.message}"
                    ) from None
        self.checked = True

    def reconnect(self, worker: MySQLWorker, initial: bool = False) -> bool:
        conn = None
        try:
            conn, fd, deprecate_eof = protocol_connect(connect_options(self.url))
            cursor = conn.cursor()
            for setting in self.settings:
                cursor.execute(setting)
            if not self.checked:
                self._check_statements(conn, cursor)
            cursor.close()
            conn.autocommit(False)
        except Exception as exc:
            error = self.database.error_of(exc)
            if error is None and not isinstance(exc, OSError):
                raise
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
            message = error.message if error is not None else str(exc)
            self.connection_failed(worker, message.strip() or "failed", initial)
            return False
        worker.conn = conn
        worker.wire = open_wire(fd, deprecate_eof)
        worker.fd = fd
        worker.literals = {
            name: literal(conn, value) for name, value in self.base_context.items()
        }  # values escaped as this connection's character set wants, once
        self.connected(worker, initial)
        return True
