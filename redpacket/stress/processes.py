"""Several processes, each with its own loop engine and share of the workers.

Children are spawned, connect, and wait at a start barrier with the parent, which
then lets faults begin; the hot workload adds a barrier per order so that every
worker of every process races for the same order at once. Plain values cross the
process boundary; each child sends progress, then its tally, history and the
orders it attempted, through a pipe of its own: a child that dies (killed, out of
memory) shows as the end of its pipe at once, and cannot leave a lock that a
shared queue would need behind it.
"""

from __future__ import annotations

import multiprocessing
import pickle
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection, wait
from threading import BrokenBarrierError
from typing import Any

from redpacket.errors import LabError
from redpacket.isolation import Isolation
from redpacket.strategies import get_strategy
from redpacket.stress.driving import Outcome, drive
from redpacket.stress.live import Live
from redpacket.stress.loop_engine import ConnectionFailed, LoopEngine, ServerGone, StatementRefused
from redpacket.stress.plan import Engine, StressPlan, Workload
from redpacket.stress.tally import Tally

BARRIER_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class _ChildPlan:
    """What crosses the process boundary: plain values only."""

    fields: dict[str, Any]
    strategy: str
    isolation: str
    workload: str
    engine: str

    @classmethod
    def of(cls, plan: StressPlan) -> _ChildPlan:
        fields = {
            k: v
            for k, v in asdict(plan).items()
            if k not in ("strategy", "isolation", "workload", "engine")
        }
        strategy = plan.strategy.origin or plan.strategy.name  # a user's file loads again
        return cls(fields, strategy, plan.isolation.value, plan.workload.value,
                   plan.engine.value)  # fmt: skip

    def plan(self) -> StressPlan:
        return StressPlan(
            strategy=get_strategy(self.strategy),
            isolation=Isolation.parse(self.isolation),
            workload=Workload(self.workload),
            engine=Engine(self.engine),
            **self.fields,
        )


def _child(
    index: int,
    child_plan: _ChildPlan,
    conninfo: str,
    channel: Connection,
    stop: Any,
    barrier: Any,
    start: Any,
) -> None:
    try:
        plan = child_plan.plan()  # a user's strategy file is loaded again here
        workers, attempts = plan.share(index)
        first_worker = sum(plan.share(i)[0] for i in range(index))
        engine = LoopEngine(
            plan, conninfo, workers, attempts, plan.seed * 1000 + index, first_worker
        )
    except (LabError, ConnectionFailed, ServerGone, StatementRefused) as exc:
        plain = isinstance(exc, (LabError, StatementRefused))
        channel.send(("error", str(exc) if plain else f"stress workers cannot connect: {exc}"))
        barrier.abort()
        start.abort()
        return

    def progress(tally: Tally) -> bool:
        channel.send(
            ("progress", tally.attempts, tally.granted, sum(tally.failed.values()),
             tally.drain_granted_orders())
        )  # fmt: skip
        return not stop.is_set()

    def wait_for_all() -> None:
        try:
            barrier.wait(BARRIER_TIMEOUT_S)
        except BrokenBarrierError:
            engine.stop()

    try:
        start.wait(BARRIER_TIMEOUT_S)  # with the parent: every process connected
    except (BrokenBarrierError, KeyboardInterrupt):
        engine.stop()
    elapsed, interrupted, error = drive(
        engine, plan, progress, wait_for_all if plan.workload.hot else None
    )
    if plan.workload.hot:
        barrier.abort()  # a sibling still waiting for this process must not wait forever
    channel.send(("done", engine.tally, bytes(engine.attempted), elapsed, interrupted, error))


class _Figures:
    """What the children have sent so far, merged; and which of them have finished."""

    def __init__(self, plan: StressPlan, live: Live) -> None:
        self.live = live
        self.tally = Tally()
        self.attempted = bytearray(plan.orders + 1)
        self.elapsed = 0.0
        self.interrupted = False
        self.failure: str | None = None
        self.errors: list[str] = []
        self.latest: dict[int, tuple[int, int, int]] = {}
        self.reported: set[int] = set()

    def take(self, index: int, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "progress":
            self.latest[index] = message[1:4]
            self.live.add_grants(message[4])
        elif kind == "done":
            self.reported.add(index)
            tally = message[1]
            self.tally.merge(tally)
            for order_id, flag in enumerate(message[2]):
                if flag:
                    self.attempted[order_id] = 1
            self.elapsed = max(self.elapsed, message[3])
            self.interrupted = self.interrupted or message[4]
            self.failure = self.failure or message[5]
            self.latest.pop(index, None)
            self.live.add_grants(tally.granted_orders)
        elif kind == "error":
            self.errors.append(message[1])
            self.reported.add(index)
        live, latest = self.live, self.latest.values()
        live.attempts = self.tally.attempts + sum(v[0] for v in latest)
        live.granted = self.tally.granted + sum(v[1] for v in latest)
        live.failed = sum(self.tally.failed.values()) + sum(v[2] for v in latest)


def _receive(readers: dict[int, Connection], timeout: float) -> list[tuple[int, Any]]:
    """(child, message) for every message waiting; message None: that child's pipe ended."""
    ready = set(wait(list(readers.values()), timeout))
    received: list[tuple[int, Any]] = []
    for index, reader in list(readers.items()):
        if reader not in ready:
            continue
        try:
            received.append((index, reader.recv()))
        except (EOFError, OSError, pickle.UnpicklingError):  # gone, maybe mid-message
            del readers[index]
            received.append((index, None))
    return received


def run_processes(
    plan: StressPlan,
    conninfo: str,
    live: Live,
    report: Callable[[Live], None],
    ready: Callable[[], None],
) -> Outcome:
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    barrier = context.Barrier(plan.processes)
    start = context.Barrier(plan.processes + 1)
    child_plan = _ChildPlan.of(plan)
    pipes = [context.Pipe(duplex=False) for _ in range(plan.processes)]
    children = [
        context.Process(
            target=_child,
            args=(index, child_plan, conninfo, pipes[index][1], stop, barrier, start),
            name=f"redpacket-stress-{index}",
        )
        for index in range(plan.processes)
    ]
    readers = {index: reader for index, (reader, _writer) in enumerate(pipes)}
    figures = _Figures(plan, live)

    def lost(index: int) -> None:
        """A child's pipe ended before its figures came: stop the others, say which."""
        if index in figures.reported or figures.failure is not None:
            return
        children[index].join(timeout=5)
        code = children[index].exitcode
        how = (
            f"was killed by signal {-code}" if code is not None and code < 0
            else f"exited with status {code}" if code is not None else "stopped answering"
        )  # fmt: skip
        figures.failure = (
            f"stress worker process {index} {how} before sending its figures;"
            " the figures are those the others sent"
        )
        stop.set()
        barrier.abort()
        start.abort()

    try:
        for child in children:
            child.start()
        for _reader, writer in pipes:
            writer.close()  # the child holds the only writer now: its end is our EOF
        threading.Thread(target=_start_together, args=(start, ready), daemon=True).start()
        while readers:
            for index, message in _receive(readers, 0.2):
                if message is None:
                    lost(index)
                else:
                    figures.take(index, message)
            report(live)
    except KeyboardInterrupt:
        figures.interrupted = True
        stop.set()
        barrier.abort()
        start.abort()
        _collect_after_interrupt(readers, figures)
    finally:
        for child in children:
            if child.pid is None:
                continue
            child.join(timeout=10)
            if child.is_alive():
                child.terminate()
                child.join(timeout=10)
        for reader, _writer in pipes:
            reader.close()
    if figures.errors:
        raise LabError(figures.errors[0])
    return Outcome(
        figures.tally, figures.attempted, figures.elapsed, figures.interrupted, figures.failure
    )


def _start_together(start: Any, ready: Callable[[], None]) -> None:
    """Release the children together once all are connected; then faults may start."""
    try:
        start.wait(BARRIER_TIMEOUT_S)
    except BrokenBarrierError:
        return
    ready()


def _collect_after_interrupt(readers: dict[int, Connection], figures: _Figures) -> None:
    """After Ctrl-C, take the figures each child still sends before it exits."""
    deadline = time.monotonic() + 10
    while readers and time.monotonic() < deadline:
        try:
            received = _receive(readers, 0.2)
        except KeyboardInterrupt:
            continue
        for index, message in received:
            if message is not None:
                figures.take(index, message)
