"""Run a stress plan: set up the orders, drive the engine(s), check the table.

One process runs the loop engine in place; ``--processes P`` spawns P processes,
each with its own loop and its share of the workers, released together by a
barrier (and, for the hot workload, by one barrier per order).
"""

from __future__ import annotations

from collections.abc import Callable

from redpacket.database.lab import Lab, Schema
from redpacket.errors import LabError
from redpacket.stress.check import check_grants
from redpacket.stress.checker import check_history, rows_so_far
from redpacket.stress.driving import EngineReport, drive, nothing
from redpacket.stress.fast import build
from redpacket.stress.faults import BackendKiller
from redpacket.stress.live import Live
from redpacket.stress.plan import Engine, StressPlan
from redpacket.stress.processes import run_processes
from redpacket.stress.result import StressResult
from redpacket.stress.statements import ConnectionFailed, StatementRefused
from redpacket.stress.tally import Tally

OnProgress = Callable[[Live], None]


def run_stress(
    lab: Lab, plan: StressPlan, on_progress: OnProgress | None = None, *, reset: bool = True
) -> StressResult:
    """Run ``plan`` on freshly loaded orders (``reset=False`` keeps the tables as they are)."""
    schema = Schema.for_revision(plan.strategy.requires_revision)
    plan.strategy.for_engine(lab.engine.name, lab.engine.label)  # refused here, in one line
    lab.engine.session_settings(  # so is a setting the engine does not have
        plan.lock_timeout_ms, plan.statement_timeout_ms, plan.deadlock_timeout_ms
    )
    if reset:
        lab.reset(plan.orders)
    existing_before = 0 if reset else rows_so_far(lab, schema)
    target = (lab.engine.name, lab.url_of(schema).render_as_string(hide_password=False))
    live = Live()
    report = on_progress or (lambda _live: None)
    killer = None
    if plan.kill_rate:
        killer = BackendKiller(lab, schema, plan.kill_rate, plan.seed, window_s=plan.duration_s)
    ready = killer.start if killer is not None else nothing
    try:
        if plan.engine is Engine.SERVICE:
            from redpacket.stress.service_engine import run_threads

            outcome = run_threads(lab, plan, live, report)
        elif plan.processes == 1:
            outcome = _run_here(plan, target, live, report, ready)
        else:
            outcome = run_processes(plan, target, live, report, ready)
    finally:
        if killer is not None and killer.is_alive():
            killer.stop()
    check = history_check = None
    if outcome.error is None:
        check = check_grants(lab, schema, outcome.attempted, plan.campaign_id)
        history_check = check_history(
            lab, schema, outcome.tally.history, plan.campaign_id, existing_before
        )
    return StressResult(
        plan,
        outcome.tally,
        check,
        outcome.elapsed_s,
        outcome.interrupted,
        history_check=history_check,
        backends_killed=killer.killed if killer else 0,
        error=outcome.error,
        database=lab.engine.name,
    )


def _run_here(
    plan: StressPlan,
    target: tuple[str, str],
    live: Live,
    report: OnProgress,
    ready: Callable[[], None],
) -> EngineReport:
    try:
        engine = build(plan, *target, plan.workers, plan.attempts, plan.seed)
    except ConnectionFailed as exc:
        raise LabError(f"stress workers cannot connect: {exc}") from None
    except StatementRefused as exc:
        raise LabError(str(exc)) from None
    except KeyboardInterrupt:  # before anything ran: nothing to report but that
        return EngineReport(Tally(), bytearray(plan.orders + 1), 0.0, interrupted=True)

    def progress(tally: Tally) -> bool:
        live.attempts, live.granted = tally.attempts, tally.granted
        live.failed = sum(tally.failed.values())
        live.add_grants(tally.drain_granted_orders())
        report(live)
        return True

    elapsed, interrupted, error = drive(engine, plan, progress, ready=ready)
    return EngineReport(engine.tally, engine.attempted, elapsed, interrupted, error)


# -- several processes -------------------------------------------------------------------
