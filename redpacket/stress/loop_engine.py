"""The fast engine: one event loop per process over non-blocking libpq connections.

pgbench's own design, measured fastest on this machine (shared/PERF-NOTES.md): every
worker is a connection plus a small state machine stepping through the strategy's
steps; statements are prepared once per connection; the loop waits on all sockets
at once. BEGIN and every step up to the next one whose result the client must see
go out as one pipeline batch (plus COMMIT, when that step commits whatever it
returns). The statements and their order are exactly the strategy's, so batching
does not change what the transaction does — only the round trips it costs.

A worker whose connection dies reconnects. If COMMIT was in flight, its request's
outcome is *unknown* (it may or may not have committed) and the checker resolves
it; otherwise the transaction certainly rolled back and the request is retried.
"""

from __future__ import annotations

import contextlib
import heapq
import random
import selectors
import time
from collections.abc import Callable
from typing import Any

from psycopg import OperationalError, pq
from psycopg.pq.abc import PGconn, PGresult

from redpacket.retry import CONNECTION_LOST, RetryPolicy
from redpacket.strategies import End, Strategy, Walk
from redpacket.stress.history import ALREADY_GRANTED, FAILED, GRANTED, UNKNOWN
from redpacket.stress.plan import StressPlan, Workload
from redpacket.stress.tally import Tally

BEGIN, STEP, COMMIT, ROLLBACK = 0, 1, 2, 3
_SQLSTATE = pq.DiagnosticField.SQLSTATE
_OK = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK)
PROGRESS_EVERY_S = 0.1
SERVER_GONE_AFTER_S = 5.0
RECONNECT_DELAYS_S = (0.0, 0.02, 0.05, 0.1, 0.2, 0.5)
INITIAL_TRIES = 3  # a connection killed while it prepares is tried again at once

Items = tuple[tuple[int, int], ...]


class ConnectionFailed(Exception):
    pass


class ServerGone(Exception):
    """No worker could reconnect for SERVER_GONE_AFTER_S seconds."""


def _is_connection_error(sqlstate: str) -> bool:
    """57P01-57P03 (terminated, shutting down) and class 08: the session is gone."""
    return sqlstate.startswith(("57P0", "08"))


class Compiled:
    """A strategy's statements as libpq takes them, and how they batch."""

    def __init__(self, strategy: Strategy, begin_sql: str) -> None:
        self.strategy = strategy
        self.begin_sql = begin_sql.encode()
        self.names = [f"rp_{i}".encode() for i in range(len(strategy.steps))]
        self.sql = [step.numbered_sql[0].encode() for step in strategy.steps]
        self.params = [step.numbered_sql[1] for step in strategy.steps]
        # batches[start]: from step ``start`` up to the first step that decides (+ COMMIT when
        # it always commits); open_batches: the same without COMMIT, for a transaction that
        # still has another order to grant.
        self.batches: list[Items] = []
        self.open_batches: list[Items] = []
        for start in range(len(strategy.steps)):
            items = []
            index = start
            while True:
                items.append((STEP, index))
                step = strategy.steps[index]
                if step.decides or index + 1 == len(strategy.steps):
                    break
                index += 1
            self.open_batches.append(tuple(items))
            commits = strategy.steps[index].always_commits
            self.batches.append(tuple(items) + (((COMMIT, -1),) if commits else ()))

    def prepare(self, pgconn: PGconn) -> None:
        statements = [(b"rp_begin", self.begin_sql), (b"rp_commit", b"COMMIT")]
        statements += [(b"rp_rollback", b"ROLLBACK"), *zip(self.names, self.sql, strict=True)]
        for name, sql in statements:
            result = pgconn.prepare(name, sql)
            if result.status != pq.ExecStatus.COMMAND_OK:
                message = (result.error_message or b"").decode(errors="replace").strip()
                raise ConnectionFailed(f"cannot prepare {name.decode()}: {message}")


class Worker:
    """One connection and the grant request it is making (one order, or a pair)."""

    __slots__ = (
        "aborted",
        "attempt",
        "busy",
        "commit_sent",
        "committed",
        "compiled",
        "context",
        "ended",
        "ends",
        "engine",
        "expect",
        "failure",
        "fd",
        "ids",
        "number",
        "order_index",
        "orders",
        "pgconn",
        "position",
        "reconnect_tries",
        "started_ns",
        "walk",
    )

    def __init__(self, engine: LoopEngine, number: int) -> None:
        self.engine = engine
        self.number = number
        self.pgconn: PGconn | None = None
        self.fd = -1  # the socket, kept: a lost connection can no longer tell it
        self.compiled = engine.compiled
        self.expect: Items = ()
        self.position = 0
        self.orders: tuple[int, ...] = ()
        self.order_index = 0
        self.attempt = 0
        self.started_ns = 0
        self.context: dict[str, Any] = {}
        self.walk: Walk | None = None
        self.failure: str | None = None
        self.ended: End | None = None
        self.ends: list[End] = []
        self.ids: list[int | None] = []
        self.committed = False
        self.commit_sent = False
        self.aborted = False
        self.busy = False
        self.reconnect_tries = 0

    # -- a request -----------------------------------------------------------------------

    def start(self, orders: tuple[int, ...]) -> None:
        self.orders = orders
        self.attempt = 1
        self.busy = True
        self.started_ns = time.perf_counter_ns()
        self.resume()

    def resume(self) -> None:
        """Begin the current attempt, reconnecting first if the connection was lost."""
        if self.pgconn is None and not self.engine.reconnect(self):
            return
        self.order_index = 0
        self.ends = []
        self.ids = []
        self.failure = None
        self.committed = False
        self.commit_sent = False
        self.aborted = False
        self._walk_next_order()
        self._send(((BEGIN, -1), *self._batch(0)))

    def _walk_next_order(self) -> None:
        order_id = self.orders[self.order_index]
        self.context = dict(self.engine.base_context, order_id=b"%d" % order_id)
        self.walk = Walk(self.compiled.strategy, self.context)
        self.ended = None

    def _batch(self, index: int) -> Items:
        last = self.order_index + 1 == len(self.orders)
        return (self.compiled.batches if last else self.compiled.open_batches)[index]

    def _send(self, items: Items) -> None:
        pgconn = self.pgconn
        assert pgconn is not None
        compiled = self.compiled
        self.expect = items
        self.position = 0
        try:
            for kind, index in items:
                if kind == STEP:
                    context = self.context
                    pgconn.send_query_prepared(
                        compiled.names[index], [context[name] for name in compiled.params[index]]
                    )
                elif kind == BEGIN:
                    pgconn.send_query_prepared(b"rp_begin", None)
                elif kind == COMMIT:
                    self.commit_sent = True
                    pgconn.send_query_prepared(b"rp_commit", None)
                else:
                    pgconn.send_query_prepared(b"rp_rollback", None)
            pgconn.pipeline_sync()
            if pgconn.flush() == 1:
                self.engine.want_write(self)
        except OperationalError:
            self.connection_lost()

    # -- results ---------------------------------------------------------------------------

    def on_result(self, result: PGresult) -> None:
        status = result.status
        if status == pq.ExecStatus.PIPELINE_SYNC:
            self._batch_done()
            return
        if self.position >= len(self.expect):
            # Nothing we sent is waiting for this: the server speaking on its own, as it
            # does with FATAL just before it closes a terminated session.
            sqlstate = (result.error_field(_SQLSTATE) or b"08006").decode()
            self.engine.tally.errors[sqlstate] += 1
            self.connection_lost()
            return
        kind = self.expect[self.position][0]
        self.position += 1
        if status == pq.ExecStatus.PIPELINE_ABORTED:
            return
        if status not in _OK:
            sqlstate = (result.error_field(_SQLSTATE) or b"XX000").decode()
            self.engine.tally.errors[sqlstate] += 1
            if _is_connection_error(sqlstate):
                self.position -= 1  # this statement did not complete
                self.connection_lost()
                return
            if kind == STEP:
                assert self.walk is not None
                handled = self.walk.error(sqlstate)
                self.aborted = True
                if handled is None or len(self.orders) > 1:
                    self.failure = sqlstate  # an aborted pair cannot keep its first grant
                else:
                    self.ended = handled
            elif kind != ROLLBACK:
                self.failure = sqlstate
            return
        if kind == STEP:
            assert self.walk is not None
            row = (
                tuple(result.get_value(0, c) for c in range(result.nfields))
                if result.ntuples
                else None
            )
            end = self.walk.row(row)
            if end is not None:
                self.ended = end
        elif kind == COMMIT:
            self.committed = True

    def _batch_done(self) -> None:
        assert self.pgconn is not None
        if self.committed and self.failure is None:
            self._record_order_end()
            self.engine.finished(self, None)
            return
        in_transaction = self.pgconn.transaction_status != pq.TransactionStatus.IDLE
        if not in_transaction:
            self._attempt_over()
            return
        if self.expect[-1][0] == ROLLBACK:  # the ROLLBACK itself failed (a timeout): again
            self._send(((ROLLBACK, -1),))
            return
        ended = self.ended
        if self.failure is not None or self.aborted or (ended is not None and not ended.commits):
            self._send(((ROLLBACK, -1),))
        elif ended is not None:
            self._record_order_end()
            if self.order_index + 1 < len(self.orders):
                self.order_index += 1
                self._walk_next_order()
                self._send(self._batch(0))
            else:
                self._send(((COMMIT, -1),))
        else:
            assert self.walk is not None
            self._send(self._batch(self.walk.index))

    def _record_order_end(self) -> None:
        if len(self.ends) <= self.order_index and self.ended is not None:
            self.ends.append(self.ended)
            packet = self.context.get("red_packet_id")
            self.ids.append(int(packet) if packet is not None else None)

    def _attempt_over(self) -> None:
        """The transaction is over without a successful COMMIT of a decision."""
        ended = self.ended
        if self.failure is None and ended is not None and ended.commits:
            self._record_order_end()
            self.engine.finished(self, None)  # e.g. 23505 read as "already granted"
            return
        reason = self.failure or (ended.value if ended is not None else "XX000")
        self._retry_or_fail(reason)

    def _retry_or_fail(self, reason: str) -> None:
        engine = self.engine
        if engine.retry.should_retry(reason, self.attempt):
            self.attempt += 1
            engine.tally.retries += 1
            engine.later(engine.retry.delay_s(self.attempt - 1, engine.rng), self)
            return
        self.ends = []
        engine.finished(self, reason)

    def connection_lost(self) -> None:
        """The session is gone: unknown if COMMIT was in flight, else retry on a new one."""
        commit_in_flight = self.busy and self.commit_sent and not self.committed
        self.engine.disconnect(self)
        if not self.busy:
            return
        if self.committed and self.failure is None:
            self._record_order_end()  # COMMIT's answer arrived before the session died
            self.engine.finished(self, None)
        elif commit_in_flight:
            self._record_order_end()
            self.engine.finished(self, None, unknown=True)
        else:
            self._retry_or_fail(CONNECTION_LOST)


class LoopEngine:
    """Runs one process's share of a stress plan."""

    def __init__(
        self, plan: StressPlan, conninfo: str, workers: int, attempts: int | None, seed: int,
        first_worker: int = 0,
    ) -> None:  # fmt: skip
        self.plan = plan
        self.conninfo = conninfo.encode()
        self.retry = RetryPolicy(plan.retries)
        self.rng = random.Random(seed)
        self.compiled = Compiled(plan.strategy, plan.isolation.begin_sql)
        self.base_context = {
            "campaign_id": plan.campaign_id.encode(),
            "amount": plan.amount.encode(),
        }
        self.tally = Tally()
        self.attempts_left = attempts
        self.attempted = bytearray(plan.orders + 1)
        self.selector = selectors.DefaultSelector()
        self.timers: list[tuple[float, int, Worker]] = []
        self._timer_sequence = 0
        self.busy = 0
        self.stopping = False
        self.down_since: float | None = None
        self.last_error = ""
        self.workers = [Worker(self, first_worker + i) for i in range(workers)]
        try:
            for worker in self.workers:
                if not any(self.reconnect(worker, initial=True) for _ in range(INITIAL_TRIES)):
                    raise ConnectionFailed(self.last_error)
        except BaseException:  # Ctrl-C included: leave no connection behind
            self.close()
            raise

    # -- connections -----------------------------------------------------------------------

    def reconnect(self, worker: Worker, initial: bool = False) -> bool:
        """Give ``worker`` a fresh, prepared connection; on failure try again later."""
        try:
            pgconn = pq.PGconn.connect(self.conninfo)
            if pgconn.status != pq.ConnStatus.OK:
                message = (pgconn.error_message or b"").decode(errors="replace").strip()
                pgconn.finish()
                raise ConnectionFailed(message.splitlines()[0] if message else "connection failed")
            self.compiled.prepare(pgconn)
            pgconn.nonblocking = 1
            pgconn.enter_pipeline_mode()
        except (ConnectionFailed, OperationalError) as exc:
            self.last_error = str(exc).strip().splitlines()[0] if str(exc).strip() else "failed"
            if initial:
                return False
            now = time.monotonic()
            self.down_since = self.down_since or now
            if now - self.down_since > SERVER_GONE_AFTER_S:
                raise ServerGone(self.last_error) from None
            worker.reconnect_tries += 1
            delays = RECONNECT_DELAYS_S
            self.later(delays[min(worker.reconnect_tries, len(delays) - 1)], worker)
            return False
        worker.pgconn = pgconn
        worker.fd = pgconn.socket
        worker.reconnect_tries = 0
        self.down_since = None
        self.selector.register(worker.fd, selectors.EVENT_READ, worker)
        if not initial:
            self.tally.reconnects += 1
        return True

    def disconnect(self, worker: Worker) -> None:
        pgconn = worker.pgconn
        if pgconn is None:
            return
        worker.pgconn = None
        self.tally.connections_lost += 1
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.selector.unregister(worker.fd)
        pgconn.finish()

    def close(self) -> None:
        for worker in self.workers:
            if worker.pgconn is not None:
                with contextlib.suppress(KeyError, ValueError, OSError):
                    self.selector.unregister(worker.fd)
                worker.pgconn.finish()
                worker.pgconn = None
        self.selector.close()

    # -- callbacks from workers ------------------------------------------------------------

    def want_write(self, worker: Worker) -> None:
        assert worker.pgconn is not None
        self.selector.modify(worker.fd, selectors.EVENT_READ | selectors.EVENT_WRITE, worker)

    def later(self, delay_s: float, worker: Worker) -> None:
        self._timer_sequence += 1
        heapq.heappush(self.timers, (time.monotonic() + delay_s, self._timer_sequence, worker))

    def finished(self, worker: Worker, reason: str | None, unknown: bool = False) -> None:
        tally = self.tally
        end_ns = time.perf_counter_ns()
        tally.latency.record(end_ns - worker.started_ns)
        for index, order_id in enumerate(worker.orders):
            tally.attempts += 1
            end = worker.ends[index] if index < len(worker.ends) else None
            packet = worker.ids[index] if index < len(worker.ids) else None
            if unknown:
                tally.unknown += 1
                outcome = UNKNOWN
            elif reason is not None:
                tally.failed[reason] += 1
                outcome, packet = FAILED, None
            elif end is End.GRANTED:
                tally.granted += 1
                tally.granted_orders.append(order_id)
                outcome = GRANTED
            else:
                tally.already_granted += 1
                outcome, packet = ALREADY_GRANTED, None
            tally.history.record(
                worker.number, order_id, worker.started_ns, end_ns, outcome, reason,
                worker.attempt, packet,
            )  # fmt: skip
        worker.busy = False
        self.busy -= 1
        if self.plan.workload is Workload.UNIFORM:
            self._start_next(worker)

    # -- driving ---------------------------------------------------------------------------

    def _start(self, worker: Worker, orders: tuple[int, ...]) -> None:
        self.busy += 1
        for order_id in orders:
            self.attempted[order_id] = 1
        worker.start(orders)

    def _start_next(self, worker: Worker) -> None:
        if self.stopping:
            return
        if self.attempts_left is not None:
            if self.attempts_left <= 0:
                return
            self.attempts_left -= 1
        self._start(worker, (self.rng.randint(1, self.plan.orders),))

    def rounds(self) -> list[tuple[int, int] | tuple[int]]:
        if self.plan.workload is Workload.CROSSED:
            return [(a, a + 1) for a in range(1, self.plan.orders, 2)]
        return [(order_id,) for order_id in range(1, self.plan.orders + 1)]

    def run(
        self,
        deadline: float | None,
        progress: Callable[[Tally], bool],
        barrier: Callable[[], None] | None = None,
    ) -> Tally:
        """Run until done, the deadline, or ``progress`` returns False (stop asked)."""
        self._deadline = deadline
        self._progress = progress
        self._next_report = time.monotonic() + PROGRESS_EVERY_S
        if self.plan.workload.hot:
            for orders in self.rounds():
                if barrier is not None:
                    barrier()
                if self.stopping:
                    break
                for worker in self.workers:
                    crossed = len(orders) == 2 and worker.number % 2 == 1
                    self._start(worker, orders[::-1] if crossed else orders)
                self._pump()
        else:
            for worker in self.workers:
                self._start_next(worker)
            self._pump()
        progress(self.tally)
        return self.tally

    def stop(self) -> None:
        self.stopping = True

    def _pump(self) -> None:
        """Serve sockets and timers until no worker is busy."""
        select = self.selector.select
        while self.busy:
            timeout = PROGRESS_EVERY_S
            if self.timers:
                timeout = max(0.0, min(timeout, self.timers[0][0] - time.monotonic()))
            for key, mask in select(timeout):
                worker: Worker = key.data
                pgconn = worker.pgconn
                if pgconn is None:
                    continue
                try:
                    if mask & selectors.EVENT_WRITE and pgconn.flush() == 0:
                        self.selector.modify(worker.fd, selectors.EVENT_READ, worker)
                    if mask & selectors.EVENT_READ:
                        pgconn.consume_input()
                        self._drain(worker, pgconn)
                except OperationalError:
                    if worker.pgconn is pgconn:
                        worker.connection_lost()
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                _, _, worker = heapq.heappop(self.timers)
                worker.resume()
            if now >= self._next_report:
                self._next_report = now + PROGRESS_EVERY_S
                if not self._progress(self.tally):
                    self.stopping = True
                if self._deadline is not None and now >= self._deadline:
                    self.stopping = True

    @staticmethod
    def _drain(worker: Worker, pgconn: PGconn) -> None:
        empty = 0
        while worker.pgconn is pgconn and not pgconn.is_busy():
            result = pgconn.get_result()
            if result is None:
                empty += 1
                if empty > 1:
                    break
                continue
            empty = 0
            worker.on_result(result)
        if worker.pgconn is pgconn and pgconn.status == pq.ConnStatus.BAD:
            worker.connection_lost()
