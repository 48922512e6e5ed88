"""demo: the lab's main job, made for a class — the seed bug step by step, then every fix."""

from __future__ import annotations

from pathlib import Path

import click

from redpacket.cli.app import Options, cli, console, html_option, open_lab
from redpacket.cli.show import Show
from redpacket.cli.stress_commands import run_comparison_with_bars
from redpacket.database import migrate as migration
from redpacket.doctor import diagnose
from redpacket.interleave.matrix import cells, run_matrix
from redpacket.interleave.run import run_one
from redpacket.interleave.schedule import NAMED
from redpacket.interleave.takeaways import takeaways
from redpacket.isolation import Isolation
from redpacket.retry import RetryPolicy
from redpacket.strategies import STRATEGIES
from redpacket.stress.plan import StressPlan

RC, RR, SER = Isolation.READ_COMMITTED, Isolation.REPEATABLE_READ, Isolation.SERIALIZABLE
DEMO_STRESS = [
    ("naive", RC), ("seed", RR), ("seed", RC), ("lock_first", RR), ("lock_first", RC),
    ("conditional_update", RR), ("on_conflict", RC), ("seed", SER),
]  # fmt: skip
INTRO = (
    "An order must get exactly one red packet per campaign. The service read the order,"
    " locked it with SELECT ... FOR UPDATE, checked whether a red packet existed and, if"
    " not, inserted one. Two concurrent requests still granted two. Below, two sessions"
    " run those steps in an exact order against this server; every wait is seen from the"
    " server, and every sentence under 'why' is built from what the run did."
)
# (heading, strategy, level, schedule): the timelines a class is walked through
LESSONS = [
    ("1. The baseline: check, then insert, no lock, at read committed", "naive", RC, "t2-waits"),
    ("2. The bug as shipped: the seed service at repeatable read", "seed", RR, "t2-waits"),
    ("3. The same code at read committed", "seed", RC, "t2-waits"),
    ("4. The obvious repair, lock first, at repeatable read", "lock_first", RR, "t2-waits"),
]  # fmt: skip


@cli.command()
@html_option
@click.pass_obj
def demo(options: Options, html_path: Path | None) -> None:
    """Reproduce the seed bug step by step, explain it, compare every fix, then load them."""
    show = Show(console(), "redpacket demo: the duplicate red packet", html_path)
    if html_path is not None:
        show.check_writable()
    with open_lab(options) as lab:
        migration.prepare(lab)
        show.paragraph(INTRO)
        show.legend()
        for heading, name, level, schedule in LESSONS:
            show.heading(heading)
            show.paragraph(f"Schedule {schedule}: {NAMED[schedule][1]}.", style="dim")
            show.explained(run_one(lab, STRATEGIES[name], level, schedule, 0))
        show.heading("5. Every strategy at every level")
        show.paragraph(
            "Schedules t2-first-read (" + NAMED["t2-first-read"][1] + ") and t2-waits.",
            style="dim",
        )
        todo = cells(list(STRATEGIES.values()), list(Isolation), ["t2-first-read", "t2-waits"])
        once = run_matrix(lab, todo, RetryPolicy(0))
        again = run_matrix(lab, todo, RetryPolicy(3))
        show.matrix(once, "no retries")
        show.matrix(again, "with 3 retries")
        show.heading("6. Under load: 16 workers racing for each of 50 orders")
        plans = [
            StressPlan(strategy=STRATEGIES[name], isolation=level, workers=16, orders=50, retries=3)
            for name, level in DEMO_STRESS
        ]
        show.compare(run_comparison_with_bars(lab, plans), "stress comparison")
        show.takeaways(
            takeaways(once, again), "takeaways: which fixes hold at which level, and why"
        )
        show.doctor(diagnose(lab))
    show.save()
