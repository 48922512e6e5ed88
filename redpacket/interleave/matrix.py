"""Every strategy x isolation level x schedule, each cell one deterministic run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from redpacket.database.lab import Lab
from redpacket.interleave.schedule import parse_schedule
from redpacket.interleave.scheduler import Scheduler
from redpacket.interleave.timeline import Run
from redpacket.isolation import Isolation, Levels
from redpacket.retry import RetryPolicy
from redpacket.strategies import Strategy


@dataclass(frozen=True)
class Cell:
    strategy: Strategy
    levels: Levels
    schedule: str


def cells(
    strategies: Sequence[Strategy],
    levels: Sequence[Isolation | Levels],
    schedules: Sequence[str],
) -> list[Cell]:
    """The matrix's cells; every schedule is checked against every strategy and every
    per-session level before any run."""
    chosen = [Levels.of(level) for level in levels]
    for strategy in strategies:
        for schedule in schedules:
            sessions = parse_schedule(schedule, len(strategy.steps)).sessions
            for level in chosen:
                level.for_sessions(sessions)
    return [Cell(s, level, name) for s in strategies for name in schedules for level in chosen]


def run_matrix(
    lab: Lab,
    todo: Sequence[Cell],
    retry: RetryPolicy,
    progress: Callable[[Run], None] | None = None,
    settings: tuple[tuple[str, str], ...] = (),
) -> list[Run]:
    results = []
    sessions = max(
        parse_schedule(cell.schedule, len(cell.strategy.steps)).sessions for cell in todo
    )
    with Scheduler(lab, sessions=sessions, settings=settings) as scheduler:
        for cell in todo:
            schedule = parse_schedule(cell.schedule, len(cell.strategy.steps))
            run = scheduler.run(cell.strategy, cell.levels, schedule, retry)
            results.append(run)
            if progress is not None:
                progress(run)
    return results
