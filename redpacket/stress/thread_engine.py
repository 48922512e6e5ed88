"""The fast engine where there is no non-blocking, pipelined driver: a thread per worker.

MySQL's drivers offer no libpq-style pipeline, so each worker is a thread with a
blocking connection (mysqlclient, which releases the GIL while it waits on the
server); what may go together (``strategies.batching``) goes as one multi-statement
query. Each worker runs the strategy's steps through the same ``Walk`` and ends
each transaction through the same ``Ending`` as every other executor; only the
I/O differs. A worker whose connection dies reconnects: its request is retried
if COMMIT was not sent (it certainly rolled back) and is *unknown* if it was.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import make_url

from redpacket.engines import Engine, engine_named
from redpacket.retry import RetryPolicy
from redpacket.strategies import End, Ending, Outcome, Step, Walk
from redpacket.strategies.batching import batches
from redpacket.stress.plan import StressPlan, Workload
from redpacket.stress.statements import ConnectionFailed, ServerGone, StatementRefused
from redpacket.stress.tally import Tally

PROGRESS_EVERY_S = 0.1
SERVER_GONE_AFTER_S = 5.0
RECONNECT_DELAY_S = 0.02


class _Worker(threading.Thread):
    def __init__(self, engine: ThreadEngine, number: int) -> None:
        super().__init__(name=f"redpacket-worker-{number}", daemon=True)
        self.engine = engine
        self.number = number
        self.tally = Tally()
        self.conn: Any = None
        self.error: BaseException | None = None
        self.busy = False

    # -- connections -------------------------------------------------------------------

    def connect(self) -> None:
        engine = self.engine
        deadline = time.monotonic() + SERVER_GONE_AFTER_S
        while True:
            try:
                self.conn = engine.database.connect(engine.url, autocommit=True)
                cursor = self.conn.cursor()
                for setting in engine.settings:
                    cursor.execute(setting)
                cursor.close()
                return
            except Exception as exc:
                if engine.database.error_of(exc) is None and not isinstance(exc, OSError):
                    raise
                if time.monotonic() > deadline:
                    raise ServerGone(str(exc)) from None
                time.sleep(RECONNECT_DELAY_S)

    def drop_connection(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None

    # -- requests ----------------------------------------------------------------------

    def run(self) -> None:
        try:
            self.engine.work(self)
        except BaseException as exc:  # reported to the run, not lost in a thread
            self.error = exc
            self.engine.stop()

    def request(self, orders: tuple[int, ...]) -> None:
        """Grant ``orders`` in one transaction, retrying what ``Ending`` says may change."""
        engine = self.engine
        started = time.perf_counter_ns()
        attempt = 1
        self.busy = True
        while True:
            if self.conn is None:
                self.connect()
            ending, ends, ids, commit_sent = self._transaction(orders)
            if ending.sqlstate and engine.database.statement_is_wrong(ending.sqlstate):
                raise StatementRefused(
                    f"strategy {engine.strategy.name!r}: the server refuses a statement"
                    f" ({ending.sqlstate})"
                )
            lost = ending.sqlstate == "08006"
            if lost:
                self.drop_connection()
                self.tally.connections_lost += 1
            stopped = engine.stopping and lost and not commit_sent
            if not stopped and ending.worth_retrying(engine.retry, attempt):
                attempt += 1
                self.tally.retries += 1
                time.sleep(engine.retry.delay_s(attempt - 1, self.rng))
                if lost:
                    self.tally.reconnects += 1
                continue
            break
        end_ns = time.perf_counter_ns()
        outcome = Outcome.INTERRUPTED if stopped else ending.outcome
        reason = None if stopped else ending.reason
        if outcome is not Outcome.INTERRUPTED:
            self.tally.latency.record(end_ns - started)
        decided = outcome in (Outcome.GRANTED, Outcome.ALREADY_GRANTED)
        for index, order_id in enumerate(orders):
            if decided:
                granted = index < len(ends) and ends[index] is End.GRANTED
                outcome = Outcome.GRANTED if granted else Outcome.ALREADY_GRANTED
            packet = ids[index] if index < len(ids) else None
            self.tally.record(
                self.number, order_id, started, end_ns, outcome, reason, attempt, packet,
                engine.attempted,
            )  # fmt: skip
        self.busy = False

    def _transaction(
        self, orders: tuple[int, ...]
    ) -> tuple[Ending, list[End], list[int | None], bool]:
        """One attempt: (how it ended, each order's end, each red packet id, COMMIT sent).

        Statements go in the strategy's batches (``strategies.batching``), START
        TRANSACTION with the first, COMMIT with a step that commits whatever it returns.
        """
        engine = self.engine
        database, conn = engine.database, self.conn
        ends: list[End] = []
        ids: list[int | None] = []
        reached: dict[int, Step] = {}
        commit_sent = False  # on the wire: if the connection dies now, the outcome is unknown
        commit_run = False  # every statement before it succeeded, so the server ran it
        walk: Walk | None = None
        leading: list[tuple[str, dict[str, Any] | None]] = [(sql, None) for sql in engine.begin]
        try:
            for position, order_id in enumerate(orders):
                plan = engine.closing if position + 1 == len(orders) else engine.open
                walk = Walk(engine.strategy, dict(engine.base_context, order_id=order_id))
                end: End | None = None
                while end is None:
                    batch = plan[walk.index]
                    steps = engine.strategy.steps
                    sent = leading + [
                        (steps[i].pyformat_sql, steps[i].params(walk.context)) for i in batch.steps
                    ]
                    if batch.commit:
                        sent.append(("COMMIT", None))
                        commit_sent = True
                    with contextlib.closing(database.run_batch(conn, sent)) as results:
                        for _ in leading:
                            next(results)
                        leading = []
                        for _ in batch.steps:
                            step = walk.step
                            reached[walk.index] = step
                            rows = next(results)
                            end = walk.row(rows[0] if rows else None)
                        if batch.commit:
                            commit_run = True
                            next(results)
                if not end.commits:
                    database.run(conn, "ROLLBACK")
                    return Ending(end), [], [], False
                ends.append(end)
                packet = walk.context.get("red_packet_id")
                ids.append(int(packet) if packet is not None else None)
            if not commit_run:
                commit_sent = commit_run = True
                database.run(conn, "COMMIT")
            return Ending(ends[-1]), ends, ids, True
        except Exception as exc:
            error = database.error_of(exc)
            if error is None:
                raise
            self.tally.errors[error.code] += 1
            if error.lost:
                return Ending.connection_lost(commit_sent), ends, ids, commit_sent
            with contextlib.suppress(Exception):
                database.run(conn, "ROLLBACK")
            if commit_run:
                return Ending(sqlstate=error.code), [], [], True
            handled = walk.error(error.code) if walk is not None and len(orders) == 1 else None
            if handled is not None:
                return Ending.after_error(handled, error.code), [handled], [None], False
            return Ending(sqlstate=error.code), [], [], False
        finally:
            self._afterwards(reached, orders)

    def _afterwards(self, reached: dict[int, Step], orders: tuple[int, ...]) -> None:
        """Release what outlives the transaction (MySQL's GET_LOCK), whatever its end."""
        if self.conn is None:
            return
        for step in reached.values():
            if step.pyformat_afterwards is None:
                continue
            for order_id in orders:
                params = step.params(dict(self.engine.base_context, order_id=order_id))
                with contextlib.suppress(Exception):  # a dead session released it already
                    self.engine.database.run(self.conn, step.pyformat_afterwards, params)

    @property
    def rng(self) -> random.Random:
        return self.engine.rngs[self.number - self.engine.first_worker]


class ThreadEngine:
    """Runs one process's share of a stress plan, a thread per worker."""

    def __init__(
        self, plan: StressPlan, database: str, url: str, workers: int, attempts: int | None,
        seed: int, first_worker: int = 0,
    ) -> None:  # fmt: skip
        self.plan = plan
        self.database: Engine = engine_named(database)
        self.url = make_url(url)
        self.strategy = plan.strategy.for_engine(self.database.name, self.database.label)
        self.closing, self.open = batches(self.strategy)
        once, self.begin = self.database.session_level(plan.isolation)
        self.settings = once + tuple(
            self.database.session_settings(
                plan.lock_timeout_ms, plan.statement_timeout_ms, plan.deadlock_timeout_ms
            )
        )
        self.retry = RetryPolicy(plan.retries)
        self.base_context: dict[str, Any] = {
            "campaign_id": plan.campaign_id, "amount": plan.amount,
        }  # fmt: skip
        self.first_worker = first_worker
        self.rngs = [random.Random(seed * 1000 + i) for i in range(workers)]
        self.order_rng = random.Random(seed)
        self.attempted = bytearray(plan.orders + 1)
        self.attempts_left = attempts
        self.stopping = False
        self._budget = threading.Lock()
        self.workers = [_Worker(self, first_worker + i) for i in range(workers)]
        self._rounds: list[tuple[int, ...]] = []
        self._start = threading.Barrier(workers + 1)
        self._finish = threading.Barrier(workers + 1)
        self._next_report = 0.0
        self._final: Tally | None = None
        try:
            for worker in self.workers:
                worker.connect()
        except ServerGone as exc:
            self.close()
            raise ConnectionFailed(str(exc)) from None
        except BaseException:
            self.close()
            raise

    @property
    def tally(self) -> Tally:
        """The workers' counts merged: afresh while they run, once and for good after."""
        if self._final is not None:
            return self._final
        total = Tally()
        for worker in self.workers:
            total.merge(worker.tally)
        return total

    def _counts(self) -> Tally:
        """The counters a progress report shows, without merging histories: cheap to take."""
        counts = Tally()
        for worker in self.workers:
            tally = worker.tally
            counts.attempts += tally.attempts
            counts.granted += tally.granted
            counts.failed.update(tally.failed)
            counts.granted_orders += tally.drain_granted_orders()
        return counts

    def stop(self) -> None:
        self.stopping = True

    def _next_order(self) -> int | None:
        """The next uniform request's order, while the run goes on and its budget lasts."""
        if self.stopping:
            return None
        with self._budget:
            if self.attempts_left is not None:
                if self.attempts_left <= 0:
                    return None
                self.attempts_left -= 1
            return self.order_rng.randint(1, self.plan.orders)

    def work(self, worker: _Worker) -> None:
        if self.plan.workload.hot:
            index = worker.number - self.first_worker
            for orders in self._rounds:
                try:
                    self._start.wait()
                except threading.BrokenBarrierError:
                    return
                if self.stopping:
                    return
                crossed = len(orders) == 2 and index % 2 == 1
                worker.request(orders[::-1] if crossed else orders)
                try:
                    self._finish.wait()
                except threading.BrokenBarrierError:
                    return
            return
        while (order_id := self._next_order()) is not None:
            worker.request((order_id,))

    def run(
        self,
        deadline: float | None,
        progress: Callable[[Tally], bool],
        barrier: Callable[[], None] | None = None,
    ) -> Tally:
        plan = self.plan
        if plan.workload is Workload.CROSSED:
            self._rounds = [(a, a + 1) for a in range(1, plan.orders, 2)]
        elif plan.workload.hot:
            self._rounds = [(order_id,) for order_id in range(1, plan.orders + 1)]
        for worker in self.workers:
            worker.start()
        if plan.workload.hot:
            for _ in self._rounds:
                if barrier is not None:
                    barrier()
                if self.stopping:
                    break
                self._start.wait()
                self._pace(deadline, progress, lambda: self._finish.n_waiting < len(self.workers))
                self._finish.wait()
            self._start.abort()
        self._pace(deadline, progress, lambda: any(w.is_alive() for w in self.workers))
        self._raise_worker_error()
        self._final = self.tally
        progress(self._final)
        return self._final

    def _pace(
        self, deadline: float | None, progress: Callable[[Tally], bool], busy: Callable[[], bool]
    ) -> None:
        """Report progress while ``busy``; stop on the deadline or when progress says so."""
        while busy():
            time.sleep(PROGRESS_EVERY_S / 10)  # a poll of the workers' own counters
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                self.stop()
            if now >= self._next_report:
                self._next_report = now + PROGRESS_EVERY_S
                if not progress(self._counts()):
                    self.stop()
            if any(worker.error is not None for worker in self.workers):
                self._start.abort()
                self._finish.abort()
                return

    def _raise_worker_error(self) -> None:
        for worker in self.workers:
            if worker.error is not None:
                raise worker.error

    def close(self) -> None:
        self.stop()
        self._start.abort()
        self._finish.abort()
        for worker in self.workers:
            if worker.is_alive():
                worker.join(timeout=10)
        for worker in self.workers:
            worker.drop_connection()
        if self._final is None:
            self._final = self.tally
