"""Run a stress plan: set up the orders, drive the engine(s), check the table.

One process runs the loop engine in place; ``--processes P`` spawns P processes,
each with its own loop and its share of the workers, released together by a
barrier (and, for the hot workload, by one barrier per order).
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from threading import BrokenBarrierError
from typing import Any

from redpacket.database.lab import Lab, Schema
from redpacket.errors import LabError
from redpacket.isolation import Isolation
from redpacket.strategies import get_strategy
from redpacket.stress.check import check_grants
from redpacket.stress.live import Live
from redpacket.stress.loop_engine import ConnectionFailed, LoopEngine
from redpacket.stress.plan import Engine, StressPlan, Workload
from redpacket.stress.result import StressResult
from redpacket.stress.tally import Tally

OnProgress = Callable[[Live], None]
BARRIER_TIMEOUT_S = 60.0


def run_stress(lab: Lab, plan: StressPlan, on_progress: OnProgress | None = None) -> StressResult:
    schema = Schema.for_revision(plan.strategy.requires_revision)
    lab.reset(plan.orders)
    conninfo = lab.conninfo(schema)
    live = Live(expected=_expected(plan))
    report = on_progress or (lambda _live: None)
    if plan.engine is Engine.SERVICE:
        from redpacket.stress.service_engine import run_threads

        tally, attempted, elapsed, interrupted = run_threads(lab, plan, live, report)
    elif plan.processes == 1:
        tally, attempted, elapsed, interrupted = _run_here(plan, conninfo, live, report)
    else:
        tally, attempted, elapsed, interrupted = _run_processes(plan, conninfo, live, report)
    check = check_grants(conninfo, attempted, plan.campaign_id)
    return StressResult(plan, tally, check, elapsed, interrupted)


def _expected(plan: StressPlan) -> int | None:
    if plan.workload is Workload.HOT:
        return plan.workers * plan.orders
    return plan.attempts


def _run_here(
    plan: StressPlan, conninfo: str, live: Live, report: OnProgress
) -> tuple[Tally, bytearray, float, bool]:
    try:
        engine = LoopEngine(plan, conninfo, plan.workers, plan.attempts, plan.seed)
    except ConnectionFailed as exc:
        raise LabError(f"stress workers cannot connect: {exc}") from None

    def progress(tally: Tally) -> bool:
        live.attempts, live.granted = tally.attempts, tally.granted
        live.failed = sum(tally.failed.values())
        live.add_grants(tally.drain_granted_orders())
        report(live)
        return True

    started = time.monotonic()
    deadline = started + plan.duration_s if plan.duration_s else None
    interrupted = False
    try:
        tally = engine.run(deadline, progress)
    except KeyboardInterrupt:
        interrupted = True
        tally = engine.tally
    finally:
        elapsed = time.monotonic() - started
        engine.close()
    return tally, engine.attempted, elapsed, interrupted


# -- several processes -------------------------------------------------------------------


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
        return cls(fields, plan.strategy.name, plan.isolation.value, plan.workload.value,
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
) -> None:
    plan = child_plan.plan()
    workers, attempts = plan.share(index)
    try:
        engine = LoopEngine(plan, conninfo, workers, attempts, plan.seed * 1000 + index)
    except ConnectionFailed as exc:
        messages.put(("error", index, str(exc)))
        barrier.abort()
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

    interrupted = False
    started = time.monotonic()
    try:
        wait_for_all()
        started = time.monotonic()
        deadline = started + plan.duration_s if plan.duration_s else None
        hot = plan.workload is Workload.HOT
        tally = engine.run(deadline, progress, wait_for_all if hot else None)
    except KeyboardInterrupt:
        interrupted = True
        tally = engine.tally
    finally:
        engine.close()
    if plan.workload is Workload.HOT:
        barrier.abort()  # a sibling still waiting for this process must not wait forever
    messages.put(
        ("done", index, tally, bytes(engine.attempted), time.monotonic() - started, interrupted)
    )


def _run_processes(
    plan: StressPlan, conninfo: str, live: Live, report: OnProgress
) -> tuple[Tally, bytearray, float, bool]:
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    stop = context.Event()
    barrier = context.Barrier(plan.processes)
    child_plan = _ChildPlan.of(plan)
    children = [
        context.Process(
            target=_child,
            args=(index, child_plan, conninfo, messages, stop, barrier),
            name=f"redpacket-stress-{index}",
        )
        for index in range(plan.processes)
    ]
    for child in children:
        child.start()
    tally = Tally()
    attempted = bytearray(plan.orders + 1)
    elapsed = 0.0
    interrupted = False
    latest: dict[int, tuple[int, int, int]] = {}
    done = 0
    errors: list[str] = []
    try:
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
        _collect_after_interrupt(messages, children, tally, attempted)
    finally:
        for child in children:
            child.join(timeout=10)
            if child.is_alive():
                child.terminate()
    if errors:
        raise LabError(f"stress workers cannot connect: {errors[0]}")
    return tally, attempted, elapsed, interrupted


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
