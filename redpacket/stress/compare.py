"""Many stress runs side by side: what each fix costs, and what it gets wrong.

The core of ``compare`` and of the demo's load section; progress goes through
callbacks, so a terminal can draw bars and a script can ignore them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from redpacket.database.lab import Lab
from redpacket.errors import LabError
from redpacket.isolation import Isolation
from redpacket.strategies import Strategy
from redpacket.stress.live import Live
from redpacket.stress.plan import StressPlan, Workload
from redpacket.stress.result import StressResult
from redpacket.stress.runner import run_stress


def compare_plans(
    strategies: Sequence[Strategy],
    levels: Sequence[Isolation],
    workers: Sequence[int],
    workloads: Sequence[Workload],
    *,
    orders: int,
    retries: int,
    duration_s: float | None = None,
    attempts: int | None = None,
    processes: int = 1,
) -> list[StressPlan]:
    """Every workload x worker count x strategy x level, checked before any runs.

    A uniform run lasts ``duration_s``, or makes ``attempts`` requests (default:
    ten per order); a hot run grants every order once per worker.
    """
    if (duration_s is not None or attempts is not None) and Workload.UNIFORM not in workloads:
        raise LabError(
            "--duration and --attempts are for the uniform workload; add --workload uniform"
        )
    plans = []
    for workload in workloads:
        uniform = workload is Workload.UNIFORM
        for count in workers:
            for strategy in strategies:
                for level in levels:
                    plans.append(
                        StressPlan(
                            strategy=strategy,
                            isolation=level,
                            workers=count,
                            orders=orders,
                            workload=workload,
                            processes=processes,
                            retries=retries,
                            duration_s=duration_s if uniform else None,
                            attempts=(attempts or 10 * orders)
                            if uniform and duration_s is None
                            else None,
                        )
                    )
    return plans


def run_comparison(
    lab: Lab,
    plans: Sequence[StressPlan],
    started: Callable[[StressPlan], Callable[[Live], None] | None] | None = None,
    finished: Callable[[StressResult], None] | None = None,
) -> list[StressResult]:
    """Run ``plans`` one after another; ``started(plan)`` may return a progress callback."""
    results = []
    for plan in plans:
        progress = started(plan) if started is not None else None
        result = run_stress(lab, plan, progress)
        results.append(result)
        if finished is not None:
            finished(result)
    return results
