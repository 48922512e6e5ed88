"""Run a stress plan: set up the orders, drive the engine(s), check the table.

One process runs the loop engine in place; ``--processes P`` spawns P processes,
each with its own loop and its share of the workers, released together by a
barrier (and, for the hot workload, by one barrier per order).
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

from redpacket.database.lab import Lab, Schema
from redpacket.errors import LabError
from redpacket.isolation import Isolation
from redpacket.strategies import get_strategy
from redpacket.stress.check import check_grants
from redpacket.stress.checker import check_history
from redpacket.stress.faults import WORKER_APPLICATION, BackendKiller
from redpacket.stress.live import Live
from redpacket.stress.loop_engine import ConnectionFailed, LoopEngine, ServerGone
from redpacket.stress.plan import Engine, StressPlan, Workload
from redpacket.stress.result import StressResult
from redpacket.stress.tally import Tally

OnProgress = Callable[[Live], None]
BARRIER_TIMEOUT_S = 60.0


def run_stress(
    lab: Lab, plan: StressPlan, on_progress: OnProgress | None = None, *, reset: bool = True
) -> StressResult:
    """Run ``plan`` on freshly loaded orders (``reset=False`` keeps the tables as they are)."""
    schema = Schema.for_revision(plan.strategy.requires_revision)
    if reset:
        lab.reset(plan.orders)
    conninfo = lab.conninfo(schema, WORKER_APPLICATION, plan.server_options)
    live = Live()
    report = on_progress or (lambda _live: None)
    killer = None
    if plan.kill_rate:
        killer = BackendKiller(lab.conninfo(schema), plan.kill_rate, plan.seed)
    ready = killer.start if killer is not None else _nothing
    try:
        if plan.engine is Engine.SERVICE:
            from redpacket.stress.service_engine import run_threads

            outcome = run_threads(lab, plan, live, report)
        elif plan.processes == 1:
            outcome = _run_here(plan, conninfo, live, report, ready)
        else:
            outcome = _run_processes(plan, conninfo, live, report, ready)
    finally:
        if killer is not None and killer.is_alive():
            killer.stop()
    check = history_check = None
    if outcome.error is None:
        check = check_grants(lab.conninfo(schema), outcome.attempted, plan.campaign_id)
        history_check = check_history(lab.conninfo(schema), outcome.tally.history, plan.campaign_id)
    return StressResult(
        plan,
        outcome.tally,
        check,
        outcome.elapsed_s,
        outcome.interrupted,
        history_check=history_check,
        backends_killed=killer.killed if killer else 0,
        error=outcome.error,
    )


def _nothing() -> None:
    pass


@dataclass
class Outcome:
    """What the engine(s) handed back."""

    tally: Tally
    attempted: bytearray
    elapsed_s: float
    interrupted: bool = False
    error: str | None = None


def drive(
    engine: LoopEngine,
    plan: StressPlan,
    progress: Callable[[Tally], bool],
    barrier: Callable[[], None] | None = None,
    ready: Callable[[], None] = _nothing,
) -> tuple[float, bool, str | None]:
    """Run an engine to its end, Ctrl-C or a lost server: (elapsed, interrupted, error)."""
    started = time.monotonic()
    deadline = started + plan.duration_s if plan.duration_s else None
    interrupted, error = False, None
    try:
        ready()  # every worker is connected: faults may start
        engine.run(deadline, progress, barrier)
    except KeyboardInterrupt:
        interrupted = True
    except ServerGone as exc:
        error = f"the server went away mid-run ({exc}); the figures are those gathered so far"
    finally:
        engine.close()
    return time.monotonic() - started, interrupted, error


def _run_here(
    plan: StressPlan, conninfo: str, live: Live, report: OnProgress, ready: Callable[[], None]
) -> Outcome:
    try:
        engine = LoopEngine(plan, conninfo, plan.workers, plan.attempts, plan.seed)
    except ConnectionFailed as exc:
        raise LabError(f"stress workers cannot connect: {exc}") from None
    except KeyboardInterrupt:  # before anything ran: nothing to report but that
        return Outcome(Tally(), bytearray(plan.orders + 1), 0.0, interrupted=True)

    def progress(tally: Tally) -> bool:
        live.attempts, live.granted = tally.attempts, tally.granted
        live.failed = sum(tally.failed.values())
        live.add_grants(tally.drain_granted_orders())
        report(live)
        return True

    elapsed, interrupted, error = drive(engine, plan, progress, ready=ready)
    return Outcome(engine.tally, engine.attempted, elapsed, interrupted, error)


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
    start: Any,
) -> None:
    plan = child_plan.plan()
    workers, attempts = plan.share(index)
    first_worker = sum(plan.share(i)[0] for i in range(index))
    try:
        engine = LoopEngine(
            plan, conninfo, workers, attempts, plan.seed * 1000 + index, first_worker
        )
    except (ConnectionFailed, ServerGone) as exc:
        messages.put(("error", index, str(exc)))
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


def _run_processes(
    plan: StressPlan, conninfo: str, live: Live, report: OnProgress, ready: Callable[[], None]
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
        raise LabError(f"stress workers cannot connect: {errors[0]}")
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
