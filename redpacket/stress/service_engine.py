"""The plain engine: one thread per worker, each calling the SQLAlchemy grant service.

Slower than the loop engine (Python and the GIL, not the database, set its pace),
but it runs literally the code a caller of ``redpacket.service.grant`` runs, so it
cross-checks that the loop engine's verdicts are the service's verdicts.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

from sqlalchemy import Connection

from redpacket.database.lab import Lab, Schema
from redpacket.retry import RetryPolicy
from redpacket.service import GrantRequest, grant_on
from redpacket.stress.driving import EngineReport
from redpacket.stress.live import Live
from redpacket.stress.plan import StressPlan
from redpacket.stress.tally import Tally


def run_threads(
    lab: Lab, plan: StressPlan, live: Live, report: Callable[[Live], None]
) -> EngineReport:
    engine = lab.sqlalchemy(Schema.for_revision(plan.strategy.requires_revision))
    policy = RetryPolicy(plan.retries)
    tallies = [Tally() for _ in range(plan.workers)]
    attempted = bytearray(plan.orders + 1)
    stop = threading.Event()
    barrier = threading.Barrier(plan.workers)
    budget = [plan.attempts]
    budget_lock = threading.Lock()
    errors: list[BaseException] = []

    def take_one() -> bool:
        if plan.attempts is None:
            return True
        with budget_lock:
            if budget[0] is None or budget[0] <= 0:
                return False
            budget[0] -= 1
            return True

    def work(index: int) -> None:
        tally = tallies[index]
        rng = random.Random(plan.seed * 1000 + index)
        try:
            with engine.connect() as conn:
                if plan.workload.hot:
                    for order_id in range(1, plan.orders + 1):
                        barrier.wait()
                        if stop.is_set():
                            break
                        _grant(conn, index, order_id, tally)
                else:
                    while not stop.is_set() and take_one():
                        _grant(conn, index, rng.randint(1, plan.orders), tally)
        except threading.BrokenBarrierError:
            pass
        except BaseException as exc:  # reported after the run
            errors.append(exc)
            barrier.abort()

    def _grant(conn: Connection, worker: int, order_id: int, tally: Tally) -> None:
        started = time.perf_counter_ns()
        result = grant_on(
            conn, plan.strategy, plan.isolation, GrantRequest(order_id, plan.campaign_id), policy
        )
        ended = time.perf_counter_ns()
        tally.latency.record(ended - started)
        tally.retries += result.retries
        tally.errors.update(result.errors)
        tally.record(
            worker, order_id, started, ended, result.outcome, result.reason, result.attempts,
            result.red_packet_id, attempted,
        )  # fmt: skip

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(plan.workers)]
    started = time.monotonic()
    cpu_started = time.process_time()
    deadline = started + plan.duration_s if plan.duration_s else None
    interrupted = False
    for thread in threads:
        thread.start()
    try:
        while alive := [thread for thread in threads if thread.is_alive()]:
            alive[0].join(timeout=0.1)  # wakes for the progress report, or when it ends
            live.attempts = sum(t.attempts for t in tallies)
            live.granted = sum(t.granted for t in tallies)
            live.failed = sum(sum(t.failed.values()) for t in tallies)
            for tally in tallies:
                live.add_grants(tally.drain_granted_orders())
            report(live)
            if deadline is not None and time.monotonic() >= deadline:
                stop.set()
    except KeyboardInterrupt:
        interrupted = True
        stop.set()
        barrier.abort()
        for thread in threads:
            thread.join(timeout=10)
    elapsed = time.monotonic() - started
    if errors:
        raise errors[0]
    total = Tally(client_cpu_s=time.process_time() - cpu_started)
    for tally in tallies:
        total.merge(tally)
    return EngineReport(total, attempted, elapsed, interrupted)
