"""One scheduled run on the lab: the core of ``explain`` and of the demo's timelines."""

from __future__ import annotations

from redpacket.database.lab import Lab
from redpacket.interleave.schedule import parse_schedule
from redpacket.interleave.scheduler import Scheduler
from redpacket.interleave.timeline import Run
from redpacket.isolation import Isolation, Levels
from redpacket.retry import RetryPolicy
from redpacket.strategies import Strategy


def run_one(
    lab: Lab,
    strategy: Strategy,
    levels: Isolation | Levels,
    schedule: str,
    retries: int,
    settings: tuple[tuple[str, str], ...] = (),
) -> Run:
    """Run ``strategy`` at ``schedule`` in sessions of their own, on a fresh order."""
    parsed = parse_schedule(schedule, len(strategy.steps))
    Levels.of(levels).for_sessions(parsed.sessions)  # refused before any connection
    policy = RetryPolicy(retries)
    with Scheduler(lab, sessions=parsed.sessions, settings=settings) as scheduler:
        return scheduler.run(strategy, levels, parsed, policy)
