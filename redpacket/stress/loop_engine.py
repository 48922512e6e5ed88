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

from psycopg import OperationalError, pq
from psycopg.pq.abc import PGconn

from redpacket.retry import RetryPolicy
from redpacket.strategies import End, Ending, Outcome
from redpacket.stress.plan import StressPlan, Workload
from redpacket.stress.statements import (
    Compiled,
    ConnectionFailed,
    ServerGone,
    StatementRefused,
    apply_settings,
)
from redpacket.stress.tally import Tally
from redpacket.stress.worker import Worker

PROGRESS_EVERY_S = 0.1
SERVER_GONE_AFTER_S = 5.0
RECONNECT_DELAYS_S = (0.0, 0.02, 0.05, 0.1, 0.2, 0.5)
INITIAL_TRIES = 3  # a connection killed while it prepares is tried again at once

__all__ = ["ConnectionFailed", "LoopEngine", "ServerGone", "StatementRefused"]


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
        strategy = plan.strategy.for_engine("postgresql")
        if any(step.afterwards for step in strategy.steps):
            raise StatementRefused(
                f"strategy {strategy.name!r} releases something after its transaction ends"
                " (Step.afterwards), which the libpq loop engine does not run; use --engine"
                " service"
            )
        self.compiled = Compiled(strategy, plan.isolation.begin_sql)
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
            apply_settings(pgconn, self.plan.session_settings)
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
        """Close every connection; a request still in flight is recorded as cut short."""
        self.stopping = True
        for worker in self.workers:
            if worker.busy:
                self.finished(worker, worker.ending_if_stopped_now())
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

    def finished(self, worker: Worker, ending: Ending | None) -> None:
        """``worker``'s request is over; ``ending`` None: the run was cut short under it."""
        end_ns = time.perf_counter_ns()
        tally = self.tally
        if ending is None:
            outcome, reason = Outcome.INTERRUPTED, None
        else:
            outcome, reason = ending.outcome, ending.reason
            tally.latency.record(end_ns - worker.started_ns)
        decided = outcome is Outcome.GRANTED or outcome is Outcome.ALREADY_GRANTED
        ends, ids = worker.ends, worker.ids
        for index, order_id in enumerate(worker.orders):
            if decided:  # each order of a pair has its own end
                outcome = Outcome.GRANTED if ends[index] is End.GRANTED else Outcome.ALREADY_GRANTED
            packet = ids[index] if index < len(ids) else None
            tally.record(
                worker.number, order_id, worker.started_ns, end_ns, outcome, reason,
                worker.attempt, packet, self.attempted,
            )  # fmt: skip
        worker.busy = False
        self.busy -= 1
        if self.plan.workload is Workload.UNIFORM:
            self._start_next(worker)

    # -- driving ---------------------------------------------------------------------------

    def _start(self, worker: Worker, orders: tuple[int, ...]) -> None:
        self.busy += 1
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
