"""explain and matrix: deterministic interleavings, one run or all of them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click
from rich.console import Group
from rich.panel import Panel

from redpacket.cli.app import (
    STRATEGIES_HELP,
    Options,
    check_html,
    cli,
    html_option,
    json_option,
    levels_list,
    open_lab,
    output,
    print_json,
    progress_bar,
    retries_option,
    schedule_list,
    strategy_list,
)
from redpacket.database import migrate as migration
from redpacket.interleave.explain import explain as explain_run
from redpacket.interleave.matrix import cells, run_matrix
from redpacket.interleave.run import run_one
from redpacket.interleave.schedule import SCHEDULE_NAMES, parse_schedule
from redpacket.interleave.timeline import Run
from redpacket.isolation import ISOLATION_NAMES, Isolation, Levels
from redpacket.report.matrix_view import matrix_table
from redpacket.report.timeline_view import timeline_table, verdict_text
from redpacket.retry import RetryPolicy
from redpacket.strategies import get_strategy

schedule_help = (
    f"A named schedule ({', '.join(SCHEDULE_NAMES)}) or entries like T1:1,T2:1,T1:end,T2:end."
)


def render_explained(run: Run) -> Group:
    return Group(
        timeline_table(run),
        verdict_text(run),
        Panel(explain_run(run), title="why", expand=False),
    )


LEVELS_HELP = (
    f"One of: {', '.join(ISOLATION_NAMES)}; or one per session, e.g."
    " T1=repeatable-read,T2=read-committed (one service instance still at the old level)."
)


def _levels(_ctx: click.Context, _param: click.Parameter, value: str) -> Levels:
    return Levels.parse(value)


@cli.command()
@click.argument("strategy")
@click.option(
    "--isolation",
    "-i",
    "levels",
    default=Isolation.READ_COMMITTED.value,
    show_default=True,
    callback=_levels,
    help=LEVELS_HELP,
)
@click.option("--schedule", default="t2-first-read", show_default=True, help=schedule_help)
@retries_option
@json_option
@html_option
@click.pass_obj
def explain(
    options: Options,
    strategy: str,
    levels: Levels,
    schedule: str,
    retries: int,
    as_json: bool,
    html_path: Path | None,
) -> None:
    """Run STRATEGY in two sessions in an exact order and explain what happened."""
    chosen = get_strategy(strategy)  # a user's file is imported once, here
    levels.for_sessions(parse_schedule(schedule, len(chosen.steps)).sessions)
    RetryPolicy(retries)
    check_html(html_path, as_json)
    with open_lab(options) as lab:
        migration.prepare(lab)
        run = run_one(lab, chosen, levels, schedule, retries)
    if as_json:
        print_json(run.to_json() | {"explanation": explain_run(run)})
        return
    with output(html_path) as out:
        out.print(render_explained(run))


@cli.command()
@click.option("--strategies", multiple=True, help=STRATEGIES_HELP)
@click.option(
    "--isolation",
    "levels",
    multiple=True,
    help="Comma-separated levels, or one per session per option"
    " (--isolation T1=repeatable-read,T2=read-committed); default: all three.",
)
@click.option(
    "--schedules",
    multiple=True,
    help="Comma-separated names, or one explicit schedule per option; default: all named.",
)
@retries_option
@json_option
@html_option
@click.pass_obj
def matrix(
    options: Options,
    strategies: Sequence[str],
    levels: Sequence[str],
    schedules: Sequence[str],
    retries: int,
    as_json: bool,
    html_path: Path | None,
) -> None:
    """Run every strategy x isolation level x schedule and show the verdicts."""
    check_html(html_path, as_json)
    todo = cells(
        strategy_list(strategies),
        levels_list(levels),
        schedule_list(schedules) or list(SCHEDULE_NAMES),
    )
    policy = RetryPolicy(retries)
    with open_lab(options) as lab:
        migration.prepare(lab)
        with progress_bar() as bar:
            task = bar.add_task("matrix", total=len(todo))
            runs = run_matrix(lab, todo, policy, lambda _run: bar.advance(task))
    if as_json:
        print_json([run.summary() for run in runs])
        return
    title = f"isolation matrix{f' (retries {retries})' if retries else ' (no retries)'}"
    with output(html_path) as out:
        out.print(matrix_table(runs, title))
