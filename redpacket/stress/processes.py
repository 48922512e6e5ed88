"""Several processes, each with its own loop engine and share of the workers.

Children are spawned, connect, and wait at a start barrier with the parent, which
then lets faults begin; the hot workload adds a barrier per order so that every
worker of every process races for the same order at once. Plain values cross the
process boundary; each child sends progress, then its tally, history and the
orders it attempted.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
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
    messages: Any,
    stop: Any,
    barrier: Any,
    start: Any,
) -> None:
    plan = child_plan.plan()
    workers, attempts = plan.share(index)
    first_worker = sum(plan.share(i)[0] for i in range(index))
    try:
        engine = LoopEngine(
            plan, conninfo, workers, attempts, plan.seed * 1000 + index, first_worker
        )
    except (ConnectionFailed, ServerGone, StatementRefused) as exc:
        refused = isinstance(exc, StatementRefused)
        messages.put(
            ("error", index, str(exc) if refused else f"stress workers cannot connect: {exc}")
        )
        barrier.abort()
        start.abort()
        return

    def progress(tally: Tally) -> bool:
        messages.put(
            ("progress", index, tally.attempts, tally.granted, sum(tally.failed.values()),
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
    messages.put(
        ("done", index, engine.tally, bytes(engine.attempted), elapsed, interrupted, error)
    )


def run_processes(
    plan: StressPlan,
    conninfo: str,
    live: Live,
    report: Callable[[Live], None],
    ready: Callable[[], None],
) -> Outcome:
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    stop = context.Event()
    barrier = context.Barrier(plan.processes)
    start = context.Barrier(plan.processes + 1)
    child_plan = _ChildPlan.of(plan)
    children = [
        context.Process(
            target=_child,
            args=(index, child_plan, conninfo, messages, stop, barrier, start),
            name=f"redpacket-stress-{index}",
        )
        for index in range(plan.processes)
    ]
    tally = Tally()
    attempted = bytearray(plan.orders + 1)
    elapsed = 0.0
    interrupted = False
    failure: str | None = None
    latest: dict[int, tuple[int, int, int]] = {}
    done = 0
    errors: list[str] = []
    try:
        for child in children:
            child.start()
        threading.Thread(target=_start_together, args=(start, ready), daemon=True).start()
        while done < len(children):
            try:
                message = messages.get(timeout=0.2)
            except queue.Empty:
                if not any(child.is_alive() for child in children) and messages.empty():
                    break
                continue
            kind, index = message[0], message[1]
            if kind == "progress":
                latest[index] = message[2:5]
                live.add_grants(message[5])
            elif kind == "done":
                done += 1
                tally.merge(message[2])
                for order_id, flag in enumerate(message[3]):
                    if flag:
                        attempted[order_id] = 1
                elapsed = max(elapsed, message[4])
                interrupted = interrupted or message[5]
                failure = failure or message[6]
                latest.pop(index, None)
                live.add_grants(message[2].granted_orders)
            elif kind == "error":
                errors.append(message[2])
                done += 1
            live.attempts = tally.attempts + sum(v[0] for v in latest.values())
            live.granted = tally.granted + sum(v[1] for v in latest.values())
            live.failed = sum(tally.failed.values()) + sum(v[2] for v in latest.values())
            report(live)
    except KeyboardInterrupt:
        interrupted = True
        stop.set()
        barrier.abort()
        start.abort()
        _collect_after_interrupt(messages, children, tally, attempted)
    finally:
        for child in children:
            if child.pid is None:
                continue
            child.join(timeout=10)
            if child.is_alive():
                child.terminate()
    if errors:
        raise LabError(errors[0])
    return Outcome(tally, attempted, elapsed, interrupted, failure)


def _start_together(start: Any, ready: Callable[[], None]) -> None:
    """Release the children together once all are connected; then faults may start."""
    try:
        start.wait(BARRIER_TIMEOUT_S)
    except BrokenBarrierError:
        return
    ready()


def _collect_after_interrupt(
    messages: Any, children: list[Any], tally: Tally, attempted: bytearray
) -> None:
    """After Ctrl-C, take the figures each child still sends before it exits."""
    deadline = time.monotonic() + 10
    remaining = len(children)
    while remaining and time.monotonic() < deadline:
        try:
            message = messages.get(timeout=0.2)
        except queue.Empty:
            if not any(child.is_alive() for child in children):
                break
            continue
        except KeyboardInterrupt:
            continue
        if message[0] == "done":
            remaining -= 1
            tally.merge(message[2])
            for order_id, flag in enumerate(message[3]):
                if flag:
                    attempted[order_id] = 1
