"""Several processes, each with its own loop engine and share of the workers.

Children are spawned, connect, and say so; once all have, the parent lets faults
begin and tells them to go. The hot workload adds a barrier per order, kept by the
parent, so that every worker of every process races for the same order at once.
Plain values cross the process boundary, through two pipes per child and nothing
else: a child says where it is, sends progress, then its tally, history and the
orders it attempted; the parent says go or stop. A child that dies (killed, out of
memory) shows as the end of its pipe at once, and cannot leave behind a lock that
the parent or a sibling would wait for, as a shared event or barrier could.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import pickle
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from redpacket.errors import LabError
from redpacket.isolation import Isolation
from redpacket.strategies import get_strategy
from redpacket.stress.driving import EngineReport, drive
from redpacket.stress.fast import build
from redpacket.stress.live import Live
from redpacket.stress.plan import Engine, StressPlan, Workload
from redpacket.stress.statements import ConnectionFailed, ServerGone, StatementRefused
from redpacket.stress.tally import Tally


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
    target: tuple[str, str],
    outbox: Connection,
    inbox: Connection,
) -> None:
    try:
        plan = child_plan.plan()  # a user's strategy file is loaded again here
        workers, attempts = plan.share(index)
        first_worker = sum(plan.share(i)[0] for i in range(index))
        engine = build(plan, *target, workers, attempts, plan.seed * 1000 + index, first_worker)
    except (LabError, ConnectionFailed, ServerGone, StatementRefused) as exc:
        plain = isinstance(exc, (LabError, StatementRefused))
        outbox.send(("error", str(exc) if plain else f"stress workers cannot connect: {exc}"))
        return

    def progress(tally: Tally) -> bool:
        outbox.send(
            ("progress", tally.attempts, tally.granted, sum(tally.failed.values()),
             tally.drain_granted_orders())
        )  # fmt: skip
        return not _stop_asked(inbox)

    def wait_for_all() -> None:
        outbox.send(("at",))
        if not _go(inbox):
            engine.stop()

    outbox.send(("ready",))
    try:
        if not _go(inbox):  # every process connected: the parent says go
            engine.stop()
    except KeyboardInterrupt:
        engine.stop()
    elapsed, interrupted, error = drive(
        engine, plan, progress, wait_for_all if plan.workload.hot else None
    )
    outbox.send(("done", engine.tally, bytes(engine.attempted), elapsed, interrupted, error))


def _go(inbox: Connection) -> bool:
    """Wait for the parent's word: True to go on, False to stop (or the parent is gone)."""
    try:
        return bool(inbox.recv() == "go")
    except (EOFError, OSError):
        return False


def _stop_asked(inbox: Connection) -> bool:
    try:
        return inbox.poll() and inbox.recv() == "stop"
    except (EOFError, OSError):
        return True


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


class _Children:
    """The spawned processes and the two pipes of each: what they say, and what we tell them.

    Pipes only, no shared lock, semaphore or event: a child killed at any instant
    (SIGKILL, out of memory) cannot leave behind a lock the parent or a sibling then
    waits for; its end shows as the end of its pipe.
    """

    def __init__(self, plan: StressPlan, target: tuple[str, str]) -> None:
        context = multiprocessing.get_context("spawn")
        child_plan = _ChildPlan.of(plan)
        up = [context.Pipe(duplex=False) for _ in range(plan.processes)]
        down = [context.Pipe(duplex=False) for _ in range(plan.processes)]
        self.processes = [
            context.Process(
                target=_child,
                args=(index, child_plan, target, up[index][1], down[index][0]),
                name=f"redpacket-stress-{index}",
            )
            for index in range(plan.processes)
        ]
        self.readers = {index: reader for index, (reader, _writer) in enumerate(up)}
        self._child_ends = [writer for _reader, writer in up] + [reader for reader, _w in down]
        self.writers = [writer for _reader, writer in down]

    def start(self) -> None:
        for process in self.processes:
            process.start()
        for end in self._child_ends:
            end.close()  # the child holds the only copy now: its death is our EOF

    def tell(self, indexes: Iterable[int], word: str) -> None:
        for index in indexes:
            with contextlib.suppress(OSError):  # a child already gone
                self.writers[index].send(word)

    def how_it_ended(self, index: int) -> str:
        process = self.processes[index]
        process.join(timeout=5)
        code = process.exitcode
        if code is not None and code < 0:
            return f"was killed by signal {-code}"
        return f"exited with status {code}" if code is not None else "stopped answering"

    def close(self) -> None:
        for process in self.processes:
            if process.pid is None:
                continue
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
                process.join(timeout=10)
        for connection in [*self.readers.values(), *self.writers]:
            connection.close()


def run_processes(
    plan: StressPlan,
    target: tuple[str, str],
    live: Live,
    report: Callable[[Live], None],
    ready: Callable[[], None],
) -> EngineReport:
    children = _Children(plan, target)
    everyone = range(plan.processes)
    readers = dict(children.readers)
    figures = _Figures(plan, live)
    connected: set[int] = set()
    at_barrier: set[int] = set()
    running = set(everyone)
    never_started: list[str] = []

    def stop_all() -> None:
        children.tell(everyone, "stop")

    def lost(index: int) -> None:
        """A child's pipe ended before its figures came: stop the others, say which."""
        running.discard(index)
        if index in figures.reported:
            return
        how = children.how_it_ended(index)
        if index not in connected:
            never_started.append(
                f"stress worker process {index} {how} before it could start (its error is on"
                " stderr above; a script that calls run_stress needs `if __name__ =="
                ' "__main__":` around the call, because worker processes are spawned and'
                " import the script again)"
            )
        elif figures.failure is None:
            figures.failure = (
                f"stress worker process {index} {how} before sending its figures;"
                " the figures are those the others sent"
            )
        stop_all()

    def take(index: int, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "ready":
            connected.add(index)
            if len(connected) == plan.processes:
                ready()  # every process connected: faults may start
                children.tell(everyone, "go")
        elif kind == "at":  # the hot workload: every process races for the same order
            at_barrier.add(index)
            if at_barrier >= running:
                children.tell(at_barrier, "go")
                at_barrier.clear()
        else:
            figures.take(index, message)
            if kind in ("done", "error"):
                running.discard(index)
                if plan.workload.hot or kind == "error":
                    stop_all()  # the others must not wait at a barrier for this one

    try:
        children.start()
        while readers:
            for index, message in _receive(readers, 0.2):
                if message is None:
                    lost(index)
                else:
                    take(index, message)
            report(live)
    except KeyboardInterrupt:
        figures.interrupted = True
        stop_all()
        _collect_after_interrupt(readers, figures)
    finally:
        children.close()
    if figures.errors:
        raise LabError(figures.errors[0])
    if never_started:
        raise LabError(never_started[0])
    return EngineReport(
        figures.tally, figures.attempted, figures.elapsed, figures.interrupted, figures.failure
    )


def _collect_after_interrupt(readers: dict[int, Connection], figures: _Figures) -> None:
    """After Ctrl-C, take the figures each child still sends before it exits."""
    deadline = time.monotonic() + 10
    while readers and time.monotonic() < deadline:
        try:
            received = _receive(readers, 0.2)
        except KeyboardInterrupt:
            continue
        for index, message in received:
            if message is not None and message[0] in ("progress", "done", "error"):
                figures.take(index, message)
