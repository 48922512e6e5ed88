"""explain and matrix: deterministic interleavings, one run or all of them."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import click

from redpacket.cli.app import (
    STRATEGIES_HELP,
    Options,
    check_html,
    check_writable_file,
    cli,
    console,
    html_option,
    json_option,
    levels_list,
    open_lab,
    open_labs,
    print_json,
    progress_bar,
    retries_option,
    schedule_list,
    settings_option,
    strategy_list,
)
from redpacket.cli.show import Show
from redpacket.database import migrate as migration
from redpacket.database.lab import Schema
from redpacket.interleave.explain import explain as explain_run
from redpacket.interleave.matrix import cells, run_matrix
from redpacket.interleave.run import run_one
from redpacket.interleave.schedule import SCHEDULE_NAMES, parse_schedule
from redpacket.isolation import ISOLATION_NAMES, Isolation, Levels
from redpacket.retry import RetryPolicy
from redpacket.service import DEFAULT_CAMPAIGN
from redpacket.specs.export import spec_of_run
from redpacket.strategies import get_strategy

schedule_help = (
    f"A named schedule ({', '.join(SCHEDULE_NAMES)}) or entries like T1:1,T2:1,T1:end,T2:end."
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
@settings_option
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the run as an isolationtester spec file (redpacket spec, or"
    " PostgreSQL's own tester, replays it).",
)
@json_option
@html_option
@click.pass_obj
def explain(
    options: Options,
    strategy: str,
    levels: Levels,
    schedule: str,
    retries: int,
    settings: tuple[tuple[str, str], ...],
    spec_path: Path | None,
    as_json: bool,
    html_path: Path | None,
) -> None:
    """Run STRATEGY in two sessions in an exact order and explain what happened."""
    chosen = get_strategy(strategy)  # a user's file is imported once, here
    levels.for_sessions(parse_schedule(schedule, len(chosen.steps)).sessions)
    RetryPolicy(retries)
    check_html(html_path, as_json)
    if spec_path is not None:
        check_writable_file(spec_path)
    with open_lab(options) as lab:
        migration.prepare(lab)
        run = run_one(lab, chosen, levels, schedule, retries, settings)
        if spec_path is not None:
            dialect = lab.sqlalchemy(Schema.UNCONSTRAINED).dialect
            text = spec_of_run(run, chosen.requires_revision, DEFAULT_CAMPAIGN, dialect)
            spec_path.write_text(text, encoding="utf-8")
    if as_json:
        explanation = explain_run(run)
        print_json(
            run.to_json()
            | {
                "explanation": str(explanation),
                "sentences": [dataclasses.asdict(s) for s in explanation.sentences],
            }
        )
        return
    show = Show(console(), f"redpacket explain {chosen.name}", html_path)
    show.explained(run)
    show.save()


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
@settings_option
@json_option
@html_option
@click.pass_obj
def matrix(
    options: Options,
    strategies: Sequence[str],
    levels: Sequence[str],
    schedules: Sequence[str],
    retries: int,
    settings: tuple[tuple[str, str], ...],
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
    runs = []
    with open_labs(options) as labs, progress_bar() as bar:
        task = bar.add_task("matrix", total=len(todo) * len(labs))
        for lab in labs:  # several servers: side by side, one table
            migration.prepare(lab)
            runs += run_matrix(lab, todo, policy, lambda _run: bar.advance(task), settings)
    if as_json:
        print_json([run.summary() for run in runs])
        return
    title = f"isolation matrix{f' (retries {retries})' if retries else ' (no retries)'}"
    if settings:
        title += ", with " + ", ".join(f"{name}={value}" for name, value in settings)
    show = Show(console(), "redpacket matrix", html_path)
    show.matrix(runs, title)
    show.save()
