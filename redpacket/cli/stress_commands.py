"""stress and compare: concurrent load, one run or a grid of them."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import click
from rich.progress import Progress, TaskID

from redpacket.cli.app import (
    STRATEGIES_HELP,
    Options,
    check_writable_file,
    cli,
    console,
    isolation_list,
    isolation_option,
    json_option,
    open_lab,
    print_json,
    progress_bar,
    require_extra,
    retries_option,
    split_names,
    strategy_list,
    strategy_option,
)
from redpacket.database import migrate as migration
from redpacket.database.lab import Lab
from redpacket.errors import LabError
from redpacket.isolation import Isolation
from redpacket.report.stress_view import compare_table, stress_table, violations_text
from redpacket.retry import RETRIED
from redpacket.strategies import Strategy
from redpacket.stress.compare import compare_plans, run_comparison
from redpacket.stress.history import write_history
from redpacket.stress.live import Live
from redpacket.stress.plan import Engine, StressPlan, Workload
from redpacket.stress.result import StressResult, append_csv
from redpacket.stress.runner import run_stress


def _check_writable_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise LabError(f"cannot write charts to {path}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def _live_bar(description: str, plan: StressPlan) -> Iterator[tuple[Progress, TaskID]]:
    with progress_bar() as bar:
        task = bar.add_task(description, total=plan.expected_requests)
        yield bar, task


def _show(bar: Progress, task: TaskID, label: str) -> Callable[[Live], None]:
    def update(live: Live) -> None:
        bar.update(
            task,
            completed=live.attempts,
            description=f"{label}  duplicates {live.duplicates}  failed {live.failed}",
        )

    return update


def _run_with_bar(lab: Lab, plan: StressPlan) -> StressResult:
    with _live_bar(plan.label, plan) as (bar, task):
        return run_stress(lab, plan, _show(bar, task, plan.label))


workers_option = click.option("--workers", "-w", default=16, show_default=True, type=int)
orders_option = click.option(
    "--orders", "-n", default=100, show_default=True, type=int, help="Orders to grant (ids 1..N)."
)
processes_option = click.option(
    "--processes", "-p", default=1, show_default=True, type=int, help="Processes to spread over."
)
duration_option = click.option("--duration", type=float, help="Seconds to run (uniform workload).")
attempts_option = click.option("--attempts", type=int, help="Grant requests to make (uniform).")
engine_option = click.option(
    "--engine",
    default="loop",
    show_default=True,
    help="loop: event loop over libpq (fast); service: a thread per worker calling grant().",
)


@cli.command()
@strategy_option
@isolation_option
@workers_option
@orders_option
@click.option(
    "--workload",
    default="hot",
    show_default=True,
    help="hot (all workers on one order at a time), uniform (random orders),"
    " or crossed (pairs of orders in opposite order: deadlocks).",
)
@processes_option
@retries_option
@duration_option
@attempts_option
@engine_option
@click.option("--kill-backends", "kill_rate", type=float, help="Terminate ~RATE backends/s.")
@click.option("--lock-timeout", "lock_timeout_ms", type=int, help="lock_timeout for workers (ms).")
@click.option(
    "--statement-timeout", "statement_timeout_ms", type=int, help="statement_timeout (ms)."
)
@click.option(
    "--deadlock-timeout",
    "deadlock_timeout_ms",
    type=int,
    help="deadlock_timeout for workers (ms; needs a superuser). Default: the server's (1 s).",
)
@json_option
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), help="Append a row here.")
@click.option(
    "--history",
    "history_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write every request (worker, order, start/end ns, outcome, SQLSTATE, attempts,"
    " red packet) here as JSON Lines.",
)
@click.option(
    "--expect",
    type=click.Choice(["correct"]),
    help="Exit 1 when any order ends with a duplicate or without its grant.",
)
@click.pass_obj
def stress(
    options: Options,
    strategy: Strategy,
    isolation: Isolation,
    workers: int,
    orders: int,
    workload: str,
    processes: int,
    retries: int,
    duration: float | None,
    attempts: int | None,
    engine: str,
    kill_rate: float | None,
    lock_timeout_ms: int | None,
    statement_timeout_ms: int | None,
    deadlock_timeout_ms: int | None,
    as_json: bool,
    csv_path: Path | None,
    history_path: Path | None,
    expect: str | None,
) -> None:
    """Grant under concurrent load and count what went wrong and what it cost."""
    chosen = Workload.parse(workload)
    if chosen is Workload.UNIFORM and duration is None and attempts is None:
        attempts = 10 * orders
    plan = StressPlan(
        strategy=strategy,
        isolation=isolation,
        workers=workers,
        orders=orders,
        workload=chosen,
        processes=processes,
        retries=retries,
        duration_s=duration,
        attempts=attempts,
        engine=Engine.parse(engine),
        kill_rate=kill_rate,
        lock_timeout_ms=lock_timeout_ms,
        statement_timeout_ms=statement_timeout_ms,
        deadlock_timeout_ms=deadlock_timeout_ms,
    )
    for path in (csv_path, history_path):
        if path is not None:
            check_writable_file(path)
    with open_lab(options) as lab:
        migration.prepare(lab)
        result = _run_with_bar(lab, plan)
    if csv_path is not None:
        append_csv(csv_path, result)
    if history_path is not None:
        written = write_history(result.tally.history, history_path)
        click.echo(f"history: {written:,} requests in {history_path}", err=True)
    if as_json:
        print_json(result.to_json())
    else:
        console().print(stress_table(result))
        violations = violations_text(result)
        if violations:
            click.echo(violations)
    if result.error:
        raise LabError(result.error)
    if expect == "correct" and not result.correct:
        raise click.exceptions.Exit(1)
    if result.interrupted:
        raise click.exceptions.Exit(130)


def run_comparison_with_bars(lab: Lab, plans: Sequence[StressPlan]) -> list[StressResult]:
    """The core's comparison, with a bar for the whole and one for the run under way."""
    with progress_bar() as bar:
        overall = bar.add_task("compare", total=len(plans))
        current = bar.add_task("", total=None)

        def started(plan: StressPlan) -> Callable[[Live], None]:
            bar.reset(current, total=plan.expected_requests, description=plan.label)
            return _show(bar, current, plan.label)

        return run_comparison(lab, plans, started, lambda _result: bar.advance(overall))


@cli.command()
@click.option("--strategies", multiple=True, help=STRATEGIES_HELP)
@click.option("--isolation", "levels", multiple=True, help="Comma-separated; default: all three.")
@click.option("--workers", "worker_counts", multiple=True, help="Comma-separated; default: 16.")
@click.option(
    "--workload", "workloads", multiple=True,
    help=f"Comma-separated ({', '.join(w.value for w in Workload)}); default: hot.",
)  # fmt: skip
@orders_option
@processes_option
@click.option(
    "--retries", default=3, show_default=True, type=int,
    help=f"Extra attempts per grant after {RETRIED}.",
)  # fmt: skip
@duration_option
@attempts_option
@click.option("--out", type=click.Path(path_type=Path), help="Write PNG charts to this folder.")
@json_option
@click.pass_obj
def compare(
    options: Options,
    strategies: Sequence[str],
    levels: Sequence[str],
    worker_counts: Sequence[str],
    workloads: Sequence[str],
    orders: int,
    processes: int,
    retries: int,
    duration: float | None,
    attempts: int | None,
    out: Path | None,
    as_json: bool,
) -> None:
    """Run strategies x levels x worker counts x workloads; table and charts side by side."""
    counts = []
    for text in split_names(worker_counts) or ["16"]:
        try:
            counts.append(int(text))
        except ValueError:
            raise LabError(f"--workers takes whole numbers, got {text!r}") from None
    plans = compare_plans(
        strategy_list(strategies),
        isolation_list(levels),
        counts,
        [Workload.parse(name) for name in split_names(workloads) or ["hot"]],
        orders=orders,
        retries=retries,
        duration_s=duration,
        attempts=attempts,
        processes=processes,
    )
    if out is not None:
        require_extra("matplotlib", "plots", "--out")
        _check_writable_dir(out)
    with open_lab(options) as lab:
        migration.prepare(lab)
        results = run_comparison_with_bars(lab, plans)
    charts: list[Path] = []
    if out is not None:
        from redpacket.report.charts import write_charts

        charts = write_charts(results, out)
    if as_json:
        print_json(
            {"results": [r.to_json() for r in results], "charts": [os.fspath(c) for c in charts]}
        )
        return
    console().print(compare_table(results))
    for chart in charts:
        click.echo(f"chart: {chart}")
