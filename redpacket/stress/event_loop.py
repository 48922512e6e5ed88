"""One event loop per process over non-blocking connections: what every engine's loop shares.

pgbench's own design, measured fastest on this machine (shared/PERF-NOTES.md): one
thread waits on every worker's socket at once (epoll, straight: the ``selectors``
wrapper costs a microsecond a wake-up), and each worker is a small state machine
that sends its next statement(s) when the answer it waits for has come. What the
wire looks like is the engine's (``loop_engine``: libpq pipelines on PostgreSQL;
``mysql_loop``: one query at a time over mysqlclient); starting requests, timers
for retries and reconnects, progress, deadlines and counting what ended are here.
"""

from __future__ import annotations

import contextlib
import heapq
import random
import select
import time
from collections.abc import Callable, Sequence
from typing import Final, TypeVar

from redpacket.retry import RetryPolicy
from redpacket.strategies import End, Ending
from redpacket.stress.ctrl_c import CTRL_C
from redpacket.stress.plan import StressPlan, Workload
from redpacket.stress.statements import ConnectionFailed, ServerGone
from redpacket.stress.tally import ALREADY_GRANTED, GRANTED, INTERRUPTED, Tally

PROGRESS_EVERY_S: Final = 0.1
SERVER_GONE_AFTER_S: Final = 5.0
RECONNECT_DELAYS_S: Final = (0.0, 0.02, 0.05, 0.1, 0.2, 0.5)
INITIAL_TRIES: Final = 3  # a connection killed while it is set up is tried again at once
_READ: Final = select.EPOLLIN
_WRITE: Final = select.EPOLLOUT
_TROUBLE: Final = select.EPOLLERR | select.EPOLLHUP  # read: the read says what went wrong
END_GRANTED: Final = End.GRANTED
_now_ns: Final = time.perf_counter_ns  # twice a request: a static, not a module lookup


class LoopWorker:
    """What the loop needs of a worker; each engine's worker is one.

    A base class, not a protocol: compiled, the loop reads these fields and calls
    these methods (several times a request) straight from the object's layout
    instead of looking each one up by name.
    """

    __slots__ = (
        "attempt", "busy", "ends", "fd", "ids", "number", "orders", "reconnect_tries",
        "started_ns",
    )  # fmt: skip

    def __init__(self, number: int) -> None:
        self.number = number
        self.fd = -1  # the socket, kept: a lost connection can no longer tell it
        self.busy = False
        self.orders: tuple[int, ...] = ()
        self.ends: list[End] = []
        self.ids: list[int | None] = []
        self.attempt = 0
        self.started_ns = 0
        self.reconnect_tries = 0

    def resume(self) -> None:
        raise NotImplementedError

    def readable(self) -> None:
        raise NotImplementedError

    def writable(self) -> None:
        raise NotImplementedError

    def ending_if_stopped_now(self) -> Ending | None:
        raise NotImplementedError

    def close(self) -> bool:  # False: no connection was open
        raise NotImplementedError


W = TypeVar("W", bound=LoopWorker)


class EventLoop:
    """Runs one process's share of a stress plan over workers an engine module provides."""

    def __init__(self, plan: StressPlan, attempts: int | None, seed: int) -> None:
        self.plan = plan
        self.retry = RetryPolicy(plan.retries)
        self.rng = random.Random(seed)
        self._random = self.rng.random
        self._orders = plan.orders
        self.tally = Tally()
        self.attempts_left = attempts
        self.attempted = bytearray(plan.orders + 1)
        self.epoll = select.epoll()
        self.by_fd: dict[int, LoopWorker] = {}
        self.timers: list[tuple[float, int, LoopWorker]] = []
        self._timer_sequence = 0
        self.busy = 0
        self.stopping = False
        self.down_since: float | None = None
        self.last_error = ""
        self.workers: Sequence[LoopWorker] = ()
        self._deadline: float | None = None
        self._progress: Callable[[Tally], bool] = lambda _tally: True
        self._next_report = 0.0
        self._uniform = plan.workload is Workload.UNIFORM  # read per request: once, here

    # -- sockets and timers, for workers ----------------------------------------------------

    def watch(self, worker: LoopWorker) -> None:
        self.by_fd[worker.fd] = worker
        self.epoll.register(worker.fd, _READ)

    def unwatch(self, worker: LoopWorker) -> None:
        """Before the socket closes: a closed one leaves epoll by itself, and its number may
        come back with the next connection."""
        if self.by_fd.get(worker.fd) is worker:
            del self.by_fd[worker.fd]
            with contextlib.suppress(OSError, ValueError):
                self.epoll.unregister(worker.fd)

    def want_write(self, worker: LoopWorker, wanted: bool = True) -> None:
        """The socket's buffer was full: say when it drains (or stop saying so)."""
        self.epoll.modify(worker.fd, _READ | _WRITE if wanted else _READ)

    def later(self, delay_s: float, worker: LoopWorker) -> None:
        self._timer_sequence += 1
        heapq.heappush(self.timers, (time.monotonic() + delay_s, self._timer_sequence, worker))

    def connection_failed(self, worker: LoopWorker, message: str, initial: bool) -> None:
        """A (re)connection failed: try again later, until the server has been gone too long."""
        self.last_error = message
        if initial:
            return
        now = time.monotonic()
        self.down_since = self.down_since or now
        if now - self.down_since > SERVER_GONE_AFTER_S:
            raise ServerGone(message)
        worker.reconnect_tries += 1
        delays = RECONNECT_DELAYS_S
        self.later(delays[min(worker.reconnect_tries, len(delays) - 1)], worker)

    def disconnect(self, worker: LoopWorker) -> None:
        """``worker``'s session is gone (or must go): stop watching it, close our end."""
        self.unwatch(worker)
        if worker.close():
            self.tally.connections_lost += 1

    def connect_all(self, workers: Sequence[W], reconnect: Callable[[W, bool], bool]) -> None:
        """Connect every worker before the run starts (a few tries each), or none stays."""
        self.workers = workers
        try:
            for worker in workers:
                if not any(reconnect(worker, True) for _ in range(INITIAL_TRIES)):
                    raise ConnectionFailed(self.last_error)
        except BaseException:  # Ctrl-C included: leave no connection behind
            self.close()
            raise

    def connected(self, worker: LoopWorker, initial: bool) -> None:
        worker.reconnect_tries = 0
        self.down_since = None
        self.watch(worker)
        if not initial:
            self.tally.reconnects += 1

    # -- a request ends ---------------------------------------------------------------------

    def finished(self, worker: LoopWorker, ending: Ending | None) -> None:
        """``worker``'s request is over; ``ending`` None: the run was cut short under it."""
        end_ns = _now_ns()
        tally = self.tally
        if ending is None:
            outcome, reason = INTERRUPTED, None
        else:
            outcome, reason = ending.outcome, ending.reason
            tally.latency.record(end_ns - worker.started_ns)
        decided = outcome is GRANTED or outcome is ALREADY_GRANTED
        ends, ids = worker.ends, worker.ids
        for index, order_id in enumerate(worker.orders):
            if decided:  # each order of a pair has its own end
                granted = ends[index] is END_GRANTED
                outcome = GRANTED if granted else ALREADY_GRANTED
            packet = ids[index] if index < len(ids) else None
            tally.record(
                worker.number, order_id, worker.started_ns, end_ns, outcome, reason,
                worker.attempt, packet, self.attempted,
            )  # fmt: skip
        worker.busy = False
        self.busy -= 1
        if self._uniform:
            self._start_next(worker)

    def retry_or_finish(self, worker: LoopWorker, ending: Ending) -> bool:
        """Another attempt later if ``ending`` is worth one (True), else the request is over."""
        if ending.worth_retrying(self.retry, worker.attempt):
            worker.attempt += 1
            self.tally.retries += 1
            self.later(self.retry.delay_s(worker.attempt - 1, self.rng), worker)
            return True
        self.finished(worker, ending)
        return False

    # -- driving ----------------------------------------------------------------------------

    def start_request(self, worker: LoopWorker, orders: tuple[int, ...]) -> None:
        self.busy += 1
        worker.orders = orders
        worker.attempt = 1
        worker.busy = True
        worker.started_ns = _now_ns()
        worker.resume()

    def _start_next(self, worker: LoopWorker) -> None:
        if self.stopping:
            return
        if self.attempts_left is not None:
            if self.attempts_left <= 0:
                return
            self.attempts_left -= 1
        # random() scaled, not randint(): three Python calls fewer per request, same spread
        self.start_request(worker, (int(self._random() * self._orders) + 1,))

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
                    self._wait(barrier)
                if self.stopping:
                    break
                for worker in self.workers:
                    crossed = len(orders) == 2 and worker.number % 2 == 1
                    self.start_request(worker, orders[::-1] if crossed else orders)
                self._pump()
        else:
            for worker in self.workers:
                self._start_next(worker)
            self._pump()
        progress(self.tally)
        return self.tally

    def _wait(self, barrier: Callable[[], None]) -> None:
        """Wait at the barrier, where Ctrl-C may raise at once: nothing is being counted."""
        ctrl_c = CTRL_C
        ctrl_c.waiting = True
        try:
            ctrl_c.raise_if_pending()
            barrier()
        finally:
            ctrl_c.waiting = False

    def stop(self) -> None:
        self.stopping = True

    def close(self) -> None:
        """Close every connection; a request still in flight is recorded as cut short."""
        self.stopping = True
        for worker in self.workers:
            if worker.busy:
                self.finished(worker, worker.ending_if_stopped_now())
        for worker in self.workers:
            self.unwatch(worker)
            worker.close()
        self.epoll.close()

    def _pump(self) -> None:
        """Serve sockets and timers until no worker is busy."""
        poll = self.epoll.poll
        by_fd = self.by_fd
        timers = self.timers
        monotonic = time.monotonic
        ctrl_c = CTRL_C
        while self.busy:
            timeout = PROGRESS_EVERY_S
            if timers:
                timeout = max(0.0, min(timeout, timers[0][0] - monotonic()))
            ctrl_c.waiting = True
            try:
                ctrl_c.raise_if_pending()
                events = poll(timeout)
            finally:
                ctrl_c.waiting = False
            for fd, mask in events:
                worker = by_fd.get(fd)
                if worker is None:
                    continue
                if mask & _WRITE:
                    worker.writable()
                if mask & (_READ | _TROUBLE) and by_fd.get(fd) is worker:
                    worker.readable()
            now = monotonic()
            while timers and timers[0][0] <= now:
                heapq.heappop(timers)[2].resume()
            if now >= self._next_report:
                self._next_report = now + PROGRESS_EVERY_S
                if not self._progress(self.tally):
                    self.stopping = True
                if self._deadline is not None and now >= self._deadline:
                    self.stopping = True
