"""The fast engine: one event loop per process over non-blocking libpq connections.

pgbench's own design, measured fastest on this machine (shared/PERF-NOTES.md): every
worker is a connection plus a small state machine stepping through the strategy's
steps; statements are prepared once per connection; the loop waits on all sockets
at once. BEGIN and every step up to the next one whose result the client must see
go out as one pipeline batch (plus COMMIT, when that step commits whatever it
returns). The statements and their order are exactly the strategy's, so batching
does not change what the transaction does — only the round trips it costs.
"""

from __future__ import annotations

import contextlib
import heapq
import random
import selectors
import time
from collections.abc import Callable
from typing import Any

from psycopg import pq
from psycopg.pq.abc import PGconn, PGresult

from redpacket.retry import RetryPolicy
from redpacket.strategies import End, Strategy, Walk
from redpacket.stress.plan import StressPlan, Workload
from redpacket.stress.tally import Tally

BEGIN, STEP, COMMIT, ROLLBACK = 0, 1, 2, 3
_SQLSTATE = pq.DiagnosticField.SQLSTATE
_OK = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK)
PROGRESS_EVERY_S = 0.1


class ConnectionFailed(Exception):
    pass


class Compiled:
    """A strategy's statements as libpq takes them, and how they batch."""

    def __init__(self, strategy: Strategy, begin_sql: str) -> None:
        self.strategy = strategy
        self.begin_sql = begin_sql.encode()
        self.names = [f"rp_{i}".encode() for i in range(len(strategy.steps))]
        self.sql = [step.numbered_sql[0].encode() for step in strategy.steps]
        self.params = [step.numbered_sql[1] for step in strategy.steps]
        self.batches: list[tuple[tuple[int, int], ...]] = []
        for start in range(len(strategy.steps)):
            items = []
            index = start
            while True:
                items.append((STEP, index))
                step = strategy.steps[index]
                if step.decides or index + 1 == len(strategy.steps):
                    if step.always_commits:
                        items.append((COMMIT, -1))
                    break
                index += 1
            self.batches.append(tuple(items))

    def prepare(self, pgconn: PGconn) -> None:
        statements = [(b"rp_begin", self.begin_sql), (b"rp_commit", b"COMMIT")]
        statements += [(b"rp_rollback", b"ROLLBACK"), *zip(self.names, self.sql, strict=True)]
        for name, sql in statements:
            result = pgconn.prepare(name, sql)
            if result.status != pq.ExecStatus.COMMAND_OK:
                message = (result.error_message or b"").decode(errors="replace").strip()
                raise ConnectionFailed(f"cannot prepare {name.decode()}: {message}")


class Worker:
    """One connection and the grant it is making."""

    __slots__ = (
        "aborted",
        "attempt",
        "committed",
        "compiled",
        "context",
        "ended",
        "engine",
        "expect",
        "failure",
        "order_id",
        "pgconn",
        "position",
        "started_ns",
        "walk",
    )

    def __init__(self, engine: LoopEngine, pgconn: PGconn) -> None:
        self.engine = engine
        self.pgconn = pgconn
        self.compiled = engine.compiled
        self.expect: tuple[tuple[int, int], ...] = ()
        self.position = 0
        self.order_id = 0
        self.attempt = 0
        self.started_ns = 0
        self.context: dict[str, Any] = {}
        self.walk: Walk | None = None
        self.failure: str | None = None
        self.ended: End | None = None
        self.committed = False
        self.aborted = False

    # -- sending -----------------------------------------------------------------------

    def start(self, order_id: int) -> None:
        self.order_id = order_id
        self.attempt = 1
        self.started_ns = time.perf_counter_ns()
        self.begin_attempt()

    def begin_attempt(self) -> None:
        self.context = dict(self.engine.base_context, order_id=b"%d" % self.order_id)
        self.walk = Walk(self.compiled.strategy, self.context)
        self.failure = None
        self.ended = None
        self.committed = False
        self.aborted = False
        self._send(((BEGIN, -1), *self.compiled.batches[0]))

    def _send(self, items: tuple[tuple[int, int], ...]) -> None:
        pgconn = self.pgconn
        compiled = self.compiled
        for kind, index in items:
            if kind == STEP:
                context = self.context
                pgconn.send_query_prepared(
                    compiled.names[index], [context[name] for name in compiled.params[index]]
                )
            elif kind == BEGIN:
                pgconn.send_query_prepared(b"rp_begin", None)
            elif kind == COMMIT:
                pgconn.send_query_prepared(b"rp_commit", None)
            else:
                pgconn.send_query_prepared(b"rp_rollback", None)
        pgconn.pipeline_sync()
        self.expect = items
        self.position = 0
        if pgconn.flush() == 1:
            self.engine.want_write(self)

    # -- receiving ---------------------------------------------------------------------

    def on_result(self, result: PGresult) -> None:
        status = result.status
        if status == pq.ExecStatus.PIPELINE_SYNC:
            self._batch_done()
            return
        kind = self.expect[self.position][0]
        self.position += 1
        if status == pq.ExecStatus.PIPELINE_ABORTED:
            return
        if status not in _OK:
            sqlstate = (result.error_field(_SQLSTATE) or b"XX000").decode()
            if kind == STEP:
                assert self.walk is not None
                handled = self.walk.error(sqlstate)
                self.aborted = True
                if handled is None:
                    self.failure = sqlstate
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
        last_kind = self.expect[-1][0]
        if self.committed and self.failure is None:
            assert self.ended is not None
            self.engine.finished(self, self.ended, None)
            return
        in_transaction = self.pgconn.transaction_status != pq.TransactionStatus.IDLE
        if last_kind == ROLLBACK or (not in_transaction):
            self._attempt_over()
            return
        ended = self.ended
        if self.failure is not None or self.aborted or (ended is not None and not ended.commits):
            self._send(((ROLLBACK, -1),))
        elif ended is not None:
            self._send(((COMMIT, -1),))
        else:
            assert self.walk is not None
            self._send(self.compiled.batches[self.walk.index])

    def _attempt_over(self) -> None:
        """The transaction is over without a successful COMMIT of a decision."""
        ended = self.ended
        if self.failure is None and ended is not None and ended.commits:
            self.engine.finished(self, ended, None)  # e.g. 23505 read as "already granted"
            return
        reason = self.failure or (ended.value if ended is not None else "XX000")
        if self.engine.retry.should_retry(reason, self.attempt):
            self.attempt += 1
            self.engine.tally.retries += 1
            self.engine.later(self.engine.retry.delay_s(self.attempt - 1, self.engine.rng), self)
            return
        self.engine.finished(self, None, reason)


class LoopEngine:
    """Runs one process's share of a stress plan."""

    def __init__(
        self, plan: StressPlan, conninfo: str, workers: int, attempts: int | None, seed: int
    ):
        self.plan = plan
        self.retry = RetryPolicy(plan.retries)
        self.rng = random.Random(seed)
        self.compiled = Compiled(plan.strategy, f"BEGIN ISOLATION LEVEL {plan.isolation.sql}")
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
        self.workers = [Worker(self, self._connect(conninfo)) for _ in range(workers)]
        for worker in self.workers:
            self.selector.register(worker.pgconn.socket, selectors.EVENT_READ, worker)

    def _connect(self, conninfo: str) -> PGconn:
        pgconn = pq.PGconn.connect(conninfo.encode())
        if pgconn.status != pq.ConnStatus.OK:
            message = (pgconn.error_message or b"").decode(errors="replace").strip()
            pgconn.finish()
            raise ConnectionFailed(message.splitlines()[0] if message else "connection failed")
        self.compiled.prepare(pgconn)
        pgconn.nonblocking = 1
        pgconn.enter_pipeline_mode()
        return pgconn

    def close(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self.selector.unregister(worker.pgconn.socket)
            worker.pgconn.finish()
        self.selector.close()

    # -- callbacks from workers ------------------------------------------------------

    def want_write(self, worker: Worker) -> None:
        self.selector.modify(
            worker.pgconn.socket, selectors.EVENT_READ | selectors.EVENT_WRITE, worker
        )

    def later(self, delay_s: float, worker: Worker) -> None:
        self._timer_sequence += 1
        heapq.heappush(self.timers, (time.monotonic() + delay_s, self._timer_sequence, worker))

    def finished(self, worker: Worker, end: End | None, reason: str | None) -> None:
        tally = self.tally
        tally.attempts += 1
        tally.latency.record(time.perf_counter_ns() - worker.started_ns)
        if end is End.GRANTED:
            tally.granted += 1
            tally.granted_orders.append(worker.order_id)
        elif end is not None:
            tally.already_granted += 1
        else:
            tally.failed[reason or "XX000"] += 1
        self.busy -= 1
        if self.plan.workload is Workload.UNIFORM:
            self._start_next(worker)

    # -- driving -----------------------------------------------------------------------

    def _start(self, worker: Worker, order_id: int) -> None:
        self.busy += 1
        self.attempted[order_id] = 1
        worker.start(order_id)

    def _start_next(self, worker: Worker) -> None:
        if self.stopping:
            return
        if self.attempts_left is not None:
            if self.attempts_left <= 0:
                return
            self.attempts_left -= 1
        self._start(worker, self.rng.randint(1, self.plan.orders))

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
        if self.plan.workload is Workload.HOT:
            for order_id in range(1, self.plan.orders + 1):
                if barrier is not None:
                    barrier()
                if self.stopping:
                    break
                for worker in self.workers:
                    self._start(worker, order_id)
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
                if mask & selectors.EVENT_WRITE and pgconn.flush() == 0:
                    self.selector.modify(pgconn.socket, selectors.EVENT_READ, worker)
                if mask & selectors.EVENT_READ:
                    pgconn.consume_input()
                    self._drain(worker)
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                _, _, worker = heapq.heappop(self.timers)
                worker.begin_attempt()
            if now >= self._next_report:
                self._next_report = now + PROGRESS_EVERY_S
                if not self._progress(self.tally):
                    self.stopping = True
                if self._deadline is not None and now >= self._deadline:
                    self.stopping = True

    @staticmethod
    def _drain(worker: Worker) -> None:
        pgconn = worker.pgconn
        empty = 0
        while not pgconn.is_busy():
            result = pgconn.get_result()
            if result is None:
                empty += 1
                if empty > 1:
                    return
                continue
            empty = 0
            worker.on_result(result)
