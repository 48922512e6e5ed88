"""One worker of the MySQL loop: a connection on the lab's wire, one statement in flight.

A small state machine, as the PostgreSQL loop's ``worker``: it sends a step, reads
its answer into the strategy's ``Walk`` once the loop says the socket is readable,
and decides the next step, COMMIT, ROLLBACK, what the transaction releases after it
ends (``Step.afterwards``: GET_LOCK outlives the transaction), a retry, or the
request's outcome. A session that dies takes its transaction and its user-level
locks with it: the request is *unknown* if COMMIT was in flight, else retried.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Final

from redpacket.engines.mysql import bound, rows_answered, template
from redpacket.engines.mysql_wire import ERR
from redpacket.strategies import Ending, Step, Walk
from redpacket.stress.event_loop import LoopWorker
from redpacket.stress.statements import StatementRefused

if TYPE_CHECKING:
    from redpacket.stress.mysql_loop import MySQLLoop

STEP: Final = 0
COMMIT: Final = 1
ROLLBACK: Final = 2
AFTERWARDS: Final = 3


class MySQLWorker(LoopWorker):
    """One connection and the grant request it is making, one statement in flight."""

    def __init__(self, engine: MySQLLoop, number: int) -> None:
        super().__init__(number)
        self.engine = engine
        self.database = engine.database
        self.strategy = engine.strategy
        self.conn: Any = None  # the driver's connection: it connected, and it closes
        self.wire: Any = None  # what sends and reads on its socket (mysql_wire)
        self.literals: dict[str, bytes] = {}
        self.templates: dict[str, tuple[bytes, tuple[str, ...]]] = {}
        self.order_index = 0
        self.walk: Walk | None = None
        self.reached: dict[int, Step] = {}  # steps run, for what they release afterwards
        self.in_flight = -1  # the kind of statement sent and not yet answered; -1: none
        self.commit_sent = False
        self.committed = False
        self.pending: Ending | None = None  # how the attempt ends, once ROLLBACK is done
        self.afterwards: list[bytes] = []

    # -- the loop's calls -------------------------------------------------------------------

    def resume(self) -> None:
        """Begin the current attempt, reconnecting first if the connection was lost.

        The last attempt's state goes first, reconnected or not: a run cut short while
        the reconnect waits must not report the previous request's COMMIT as this one's.
        """
        self.order_index = 0
        self.ends = []
        self.ids = []
        self.reached = {}
        self.commit_sent = self.committed = False
        self.pending = None
        if self.conn is None and not self.engine.reconnect(self):
            return
        self._walk_next_order()
        self._send_step()

    def readable(self) -> None:
        kind = self.in_flight
        self.in_flight = -1
        conn = self.conn
        if conn is None:
            return
        if kind < 0:  # nothing asked: the server closed the session (KILL CONNECTION)
            self.engine.disconnect(self)
            return
        try:
            answer = self.wire.read(True)
        except ConnectionError:
            self._failed(kind, "08006", lost=True)
            return
        if answer[0] == ERR:
            error = self.database.error_numbered(answer[1], answer[3])
            self._failed(kind, error.code, error.lost, error.message)
            return
        rows = rows_answered(answer)
        if kind == STEP:
            self._step_done(rows)
        elif kind == COMMIT:
            self.committed = True
            self._transaction_over(Ending.of(self.ends[-1]))
        elif kind == ROLLBACK:
            self._transaction_over(self.pending or Ending())
        else:
            self._next_afterwards()

    def writable(self) -> None:
        """Never asked for: ``send`` writes a whole (small) query before it returns."""

    def close(self) -> bool:
        conn, self.conn, self.wire = self.conn, None, None
        if conn is None:
            return False
        with contextlib.suppress(Exception):
            conn.close()
        return True

    def ending_if_stopped_now(self) -> Ending | None:
        """Cut short now: committed; decided already, ROLLBACK or a release in flight; unknown
        (COMMIT in flight); or rolled back with nothing decided (None)."""
        if self.committed:
            return Ending.of(self.ends[-1])
        if self.pending is not None:
            return self.pending
        if self.commit_sent:
            return Ending.connection_lost(commit_in_flight=True)
        return None

    # -- a transaction -----------------------------------------------------------------------

    def _walk_next_order(self) -> None:
        context = dict(self.engine.base_context)
        context["order_id"] = self.orders[self.order_index]
        self.walk = Walk(self.strategy, context)

    def _send(self, kind: int, query: bytes) -> None:
        try:
            self.wire.send(query)
        except ConnectionError:
            self._failed(kind, "08006", lost=True)
            return
        self.in_flight = kind

    def _send_step(self) -> None:
        walk = self.walk
        assert walk is not None
        step = walk.step
        self.reached[walk.index] = step
        self._send(STEP, self._bound(step.pyformat_sql, walk.context))

    def _bound(self, sql: str, context: dict[str, Any]) -> bytes:
        """The statement with the context's values in it, its template worked out once."""
        known = self.templates.get(sql)
        if known is None:
            known = self.templates[sql] = template(sql)
        return bound(self.conn, known, context, self.literals)

    def _step_done(self, rows: tuple[tuple[Any, ...], ...]) -> None:
        walk = self.walk
        assert walk is not None
        end = walk.row(rows[0] if rows else None)
        if end is None:
            self._send_step()
        elif not end.commits:
            self._roll_back(Ending.of(end))
        else:
            packet = walk.context.get("red_packet_id")
            self.ends.append(end)
            self.ids.append(int(packet) if packet is not None else None)
            if self.order_index + 1 < len(self.orders):
                self.order_index += 1
                self._walk_next_order()
                self._send_step()
            else:
                self.commit_sent = True
                self._send(COMMIT, b"COMMIT")

    def _roll_back(self, ending: Ending) -> None:
        self.pending = ending
        self._send(ROLLBACK, b"ROLLBACK")

    def _failed(self, kind: int, code: str, lost: bool, message: str = "") -> None:
        engine = self.engine
        engine.tally.errors[code] += 1
        if lost:
            self._connection_lost(kind)
            return
        if kind == STEP:
            walk = self.walk
            handled = walk.error(code) if walk is not None and len(self.orders) == 1 else None
            if handled is None and self.database.statement_is_wrong(code):
                step = walk.step.name if walk is not None else "?"
                raise StatementRefused(
                    f"strategy {self.strategy.name!r}, step {step}: the server refuses its SQL"
                    f" ({code}): {message}"
                )
            if handled is not None:
                self.ends, self.ids = [handled], [None]
            self._roll_back(Ending.after_error(handled, code))
        elif kind == COMMIT:
            self._roll_back(Ending(sqlstate=code))
        elif kind == ROLLBACK:
            self._transaction_over(self.pending or Ending(sqlstate=code))
        else:
            self._next_afterwards()  # a release that failed: the lock was not held

    def _connection_lost(self, kind: int) -> None:
        """The session is gone, and with it its transaction and its user-level locks."""
        self.engine.disconnect(self)
        if not self.busy:
            return
        if kind == COMMIT:
            self._over(Ending.connection_lost(commit_in_flight=True))
        elif kind in (ROLLBACK, AFTERWARDS) and self.pending is not None:
            self._over(self.pending)  # the transaction was over already: its ending stands
        else:
            self._over(Ending.connection_lost(commit_in_flight=False))

    def _transaction_over(self, ending: Ending) -> None:
        """COMMIT or ROLLBACK done: release what outlives the transaction, then end."""
        self.pending = ending
        self.afterwards = []
        for step in self.reached.values():
            if step.pyformat_afterwards is not None:
                for order_id in self.orders:
                    context = dict(self.engine.base_context, order_id=order_id)
                    self.afterwards.append(self._bound(step.pyformat_afterwards, context))
        self._next_afterwards()

    def _next_afterwards(self) -> None:
        if self.afterwards:
            self._send(AFTERWARDS, self.afterwards.pop(0))
            return
        ending = self.pending
        assert ending is not None
        self._over(ending)

    def _over(self, ending: Ending) -> None:
        if self.engine.retry_or_finish(self, ending):
            self.commit_sent = self.committed = False
