"""One worker of the loop engine: a connection and the grant request it is making.

A small state machine: it sends a batch, reads each statement's result into the
strategy's ``Walk``, and at the batch's end decides the next batch, COMMIT,
ROLLBACK, a retry, or the request's outcome. A worker whose connection dies
reports an *unknown* outcome if COMMIT was in flight; otherwise the transaction
certainly rolled back, and the request is retried on a new connection.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Final

from psycopg import pq

from redpacket.retry import means_connection_lost
from redpacket.strategies import End, Ending, Walk, closes_with_commit
from redpacket.stress.event_loop import LoopWorker
from redpacket.stress.pipes import LOST, Pipe, Row
from redpacket.stress.statements import (
    COMMIT,
    COMMIT_ITEM,
    ROLLBACK,
    ROLLBACK_ITEM,
    STEP,
    Items,
    PipeError,
)

if TYPE_CHECKING:
    from redpacket.stress.loop_engine import LoopEngine

# Plain ints, read once: an enum member looked up per result costs more than the result
_TUPLES_OK: Final = int(pq.ExecStatus.TUPLES_OK)
_COMMAND_OK: Final = int(pq.ExecStatus.COMMAND_OK)
_PIPELINE_SYNC: Final = int(pq.ExecStatus.PIPELINE_SYNC)
_PIPELINE_ABORTED: Final = int(pq.ExecStatus.PIPELINE_ABORTED)
_IDLE: Final = int(pq.TransactionStatus.IDLE)
# Ending.of's shared endings, found by identity: a compiled loop calling the classmethod
# paid for a Python frame (and an Enum's Python __hash__) on every request
_ENDINGS: Final = tuple((end, Ending.of(end)) for end in End)
_NO_END: Final = Ending.of(None)


def _ending_of(end: End | None) -> Ending:
    if end is None:
        return _NO_END
    for candidate, ending in _ENDINGS:
        if candidate is end:
            return ending
    return Ending.of(end)


class Worker(LoopWorker):
    """One connection and the grant request it is making (one order, or a pair)."""

    __slots__ = (
        "aborted", "commit_sent", "committed", "compiled", "context", "ended", "engine",
        "expect", "failure", "order_index", "pipe", "position", "walk",
    )  # fmt: skip

    def __init__(self, engine: LoopEngine, number: int) -> None:
        super().__init__(number)
        self.engine = engine
        self.pipe: Pipe | None = None
        self.compiled = engine.compiled
        self.expect: Items = ()
        self.position = 0
        self.order_index = 0
        self.context: dict[str, Any] = {}
        self.walk: Walk | None = None
        self.failure: Ending | None = None  # a statement failed: only ROLLBACK can follow
        self.ended: End | None = None
        self.committed = False
        self.commit_sent = False
        self.aborted = False

    # -- the loop's calls -------------------------------------------------------------------

    def readable(self) -> None:
        """Read what arrived and hand each whole result to ``on_result``."""
        pipe = self.pipe
        if pipe is None:
            return
        try:
            for status, row, sqlstate, detail in pipe.read():
                if status == LOST:
                    self.connection_lost()
                    return
                self.on_result(status, row, sqlstate, detail)
                if self.pipe is not pipe:
                    return
        except PipeError:
            if self.pipe is pipe:
                self.connection_lost()

    def writable(self) -> None:
        pipe = self.pipe
        if pipe is None:
            return
        try:
            if pipe.flush() == 0:
                self.engine.want_write(self, False)
        except PipeError:
            self.connection_lost()

    def close(self) -> bool:
        pipe, self.pipe = self.pipe, None
        if pipe is None:
            return False
        with contextlib.suppress(OSError):
            pipe.close()
        return True

    # -- a request -----------------------------------------------------------------------

    def resume(self) -> None:
        """Begin the current attempt, reconnecting first if the connection was lost.

        The last attempt's state goes first, reconnected or not: a run cut short while
        the reconnect waits must not report the previous request's COMMIT as this one's.
        """
        self.order_index = 0
        self.ends = []
        self.ids = []
        self.failure = None
        self.committed = False
        self.commit_sent = False
        self.aborted = False
        if self.pipe is None and not self.engine.reconnect(self):
            return
        self._walk_next_order()
        compiled = self.compiled
        self._send(compiled.first_batch if len(self.orders) == 1 else compiled.first_open_batch)

    def _walk_next_order(self) -> None:
        context = self.engine.base_context.copy()
        context["order_id"] = self.orders[self.order_index]  # the wire writes its digits
        self.context = context
        self.walk = Walk(self.compiled.strategy, context)
        self.ended = None

    def _batch(self, index: int) -> Items:
        last = self.order_index + 1 == len(self.orders)
        return (self.compiled.batches if last else self.compiled.open_batches)[index]

    def _send(self, items: Items) -> None:
        pipe = self.pipe
        assert pipe is not None
        self.expect = items
        self.position = 0
        if items[-1][0] == COMMIT:  # from here on, a lost connection leaves the outcome unknown
            self.commit_sent = True
        try:
            if pipe.send(items, self.context) == 1:
                self.engine.want_write(self)
        except PipeError:
            self.connection_lost()

    # -- results ---------------------------------------------------------------------------

    def on_result(self, status: int, row: Row | None, code: str | None, detail: int) -> None:
        """One whole result: ``row`` its first row, ``code`` its SQLSTATE, ``detail`` FATAL
        for an error and the transaction status for a Sync (``pipes.Summary``)."""
        if status == _PIPELINE_SYNC:
            self._batch_done(detail)
            return
        if self.position >= len(self.expect):
            # Nothing we sent is waiting for this: the server speaking on its own.
            sqlstate = code or "08006"
            self.engine.tally.errors[sqlstate] += 1
            if detail or means_connection_lost(sqlstate):  # FATAL or PANIC
                self.connection_lost()  # as before a terminated session closes
            elif not self.committed:
                # An ERROR after the batch's last statement, before its Sync: a statement
                # timeout that fired between the two. The transaction is aborted.
                self.aborted = True
                self.failure = self.failure or Ending(sqlstate=sqlstate)
            return
        kind = self.expect[self.position][0]
        self.position += 1
        if status == _PIPELINE_ABORTED:
            return
        if status != _TUPLES_OK and status != _COMMAND_OK:
            sqlstate = code or "XX000"
            self.engine.tally.errors[sqlstate] += 1
            if means_connection_lost(sqlstate):
                self.position -= 1  # this statement did not complete
                self.connection_lost()
                return
            if kind == STEP:
                assert self.walk is not None
                handled = self.walk.error(sqlstate)
                self.aborted = True
                if len(self.orders) > 1:
                    handled = None  # an aborted pair cannot keep its first grant
                self.ended = handled
                self.failure = Ending.after_error(handled, sqlstate)
            elif kind != ROLLBACK:
                self.failure = Ending(sqlstate=sqlstate)  # COMMIT (or BEGIN) failed
            return
        if kind == STEP:
            assert self.walk is not None
            end = self.walk.row(row)
            if end is not None:
                self.ended = end
        elif kind == COMMIT:
            self.committed = True

    def _batch_done(self, transaction_status: int) -> None:
        if self.committed and self.failure is None:
            self._record_order_end()
            self.engine.finished(self, _ending_of(self.ended))
            return
        in_transaction = transaction_status != _IDLE
        if not in_transaction:
            self._attempt_over()
            return
        if self.expect[-1][0] == ROLLBACK:  # the ROLLBACK itself failed (a timeout): again
            self._send((ROLLBACK_ITEM,))
            return
        ended = self.ended
        if ended is None and self.failure is None and not self.aborted:
            assert self.walk is not None
            self._send(self._batch(self.walk.index))
        elif not closes_with_commit(ended, self.aborted or self.failure is not None):
            self._send((ROLLBACK_ITEM,))
        else:
            self._record_order_end()
            if self.order_index + 1 < len(self.orders):
                self.order_index += 1
                self._walk_next_order()
                self._send(self._batch(0))
            else:
                self._send((COMMIT_ITEM,))

    def _record_order_end(self) -> None:
        if len(self.ends) <= self.order_index and self.ended is not None:
            self.ends.append(self.ended)
            packet = self.context.get("red_packet_id")
            self.ids.append(int(packet) if packet is not None else None)

    def _attempt_over(self) -> None:
        """The transaction is over without a successful COMMIT: ROLLBACK, or the server's."""
        ending = self.failure or _ending_of(self.ended)
        if ending.sqlstate is None:
            self._record_order_end()  # e.g. 23505 read as "already granted"
        self._retry_or_finish(ending)

    def _retry_or_finish(self, ending: Ending) -> None:
        if self.engine.retry_or_finish(self, ending):
            self.commit_sent = self.committed = False  # a cut-short run must not see them

    def connection_lost(self) -> None:
        """The session is gone: unknown if COMMIT was in flight, else retry on a new one."""
        commit_in_flight = self.busy and self.commit_sent and not self.committed
        self.engine.disconnect(self)
        if not self.busy:
            return
        if self.committed and self.failure is None:
            self._record_order_end()  # COMMIT's answer arrived before the session died
            self.engine.finished(self, _ending_of(self.ended))
            return
        if commit_in_flight:
            self._record_order_end()
        self._retry_or_finish(Ending.connection_lost(commit_in_flight))

    def ending_if_stopped_now(self) -> Ending | None:
        """The run is being cut short with this request in flight: what can be said of it.

        Its connection is about to close, so a transaction whose COMMIT was not sent
        rolls back (None: interrupted); one whose COMMIT was sent is unknown, unless a
        statement failed first: then it is known not to have committed.
        """
        if self.committed and self.failure is None:
            self._record_order_end()
            return _ending_of(self.ended)
        if self.failure is not None:
            return self.failure
        if self.commit_sent:
            self._record_order_end()
            return Ending.connection_lost(commit_in_flight=True)
        return None
