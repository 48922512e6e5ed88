"""demo: the lab's main job, made for a class — the seed bug step by step, then every fix."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import click

from redpacket.cli.app import Options, cli, console, html_option, open_labs
from redpacket.cli.show import Show
from redpacket.cli.stress_commands import run_comparison_with_bars
from redpacket.database import migrate as migration
from redpacket.database.backends import open_server
from redpacket.database.lab import Lab
from redpacket.database.mysql_servers import local_problem, mysql_problem
from redpacket.doctor import diagnose
from redpacket.errors import LabError
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


MYSQL_LESSONS = [
    ("the seed service at repeatable read, InnoDB's default", "seed", RR, "t2-waits"),
    ("lock first at repeatable read: a fix on InnoDB", "lock_first", RR, "t2-waits"),
]  # fmt: skip
ADD_MYSQL_HOW = (
    "Add one with --database-url mysql://USER@HOST:PORT/ (a second --database-url beside"
    " PostgreSQL's), or install mariadb-server for --backend mysql-local, or start Docker."
)
ADD_MYSQL = f"MySQL/MariaDB: not shown, no server to hand. {ADD_MYSQL_HOW}"


@contextlib.contextmanager
def _labs_for_the_demo(options: Options) -> Iterator[tuple[Lab, Lab | None, str]]:
    """The main server's lab, and a MySQL-family one (given, private, or in Docker) or why
    there is none: a MariaDB that will not start costs the demo its section, not its run."""
    with open_labs(options) as labs:
        mysql = next((lab for lab in labs if lab.engine.name == "mysql"), None)
        main = next((lab for lab in labs if lab is not mysql), labs[0])
        if mysql is not None or main.engine.name == "mysql":
            yield main, mysql if mysql is not main else None, ""
            return
        if mysql_problem() is not None:
            yield main, None, ADD_MYSQL
            return
        backend = "mysql-local" if local_problem() is None else "mysql-docker"
        with contextlib.ExitStack() as stack:
            try:
                server = stack.enter_context(open_server(backend))
            except LabError as exc:
                yield main, None, f"MySQL/MariaDB: not shown, {exc.message}. {ADD_MYSQL_HOW}"
                return
            side = Lab(server, options.lab_database)
            try:
                yield main, side, ""
            finally:
                side.close()


@cli.command()
@html_option
@click.pass_obj
def demo(options: Options, html_path: Path | None) -> None:
    """Reproduce the seed bug step by step, explain it, compare every fix, then load them."""
    show = Show(console(), "redpacket demo: the duplicate red packet", html_path)
    if html_path is not None:
        show.check_writable()
    with _labs_for_the_demo(options) as (lab, mysql, why_no_mysql):
        migration.prepare(lab)
        show.paragraph(INTRO)
        show.legend()
        for heading, name, level, schedule in LESSONS:
            show.heading(heading)
            show.paragraph(f"Schedule {schedule}: {NAMED[schedule][1]}.", style="dim")
            show.explained(run_one(lab, STRATEGIES[name], level, schedule, 0))
        servers = [lab] + ([mysql] if mysql is not None else [])
        if mysql is not None:
            migration.prepare(mysql)
            for number, (what, name, level, schedule) in enumerate(MYSQL_LESSONS, start=5):
                show.heading(f"{number}. The same code on {mysql.engine.label}: {what}")
                show.explained(run_one(mysql, STRATEGIES[name], level, schedule, 0))
        else:
            show.paragraph(why_no_mysql, style="dim")
        show.heading("Every strategy at every level" + (", on both engines" if mysql else ""))
        show.paragraph(
            "Schedules t2-first-read (" + NAMED["t2-first-read"][1] + ") and t2-waits.",
            style="dim",
        )
        todo = cells(list(STRATEGIES.values()), list(Isolation), ["t2-first-read", "t2-waits"])
        once = [run for server in servers for run in run_matrix(server, todo, RetryPolicy(0))]
        again = [run for server in servers for run in run_matrix(server, todo, RetryPolicy(3))]
        show.matrix(once, "no retries")
        show.matrix(again, "with 3 retries")
        show.heading(f"Under load on {lab.engine.label}: 16 workers racing for each of 50 orders")
        plans = [
            StressPlan(strategy=STRATEGIES[name], isolation=level, workers=16, orders=50, retries=3)
            for name, level in DEMO_STRESS
        ]
        show.compare(run_comparison_with_bars(lab, plans), "stress comparison")
        show.takeaways(
            takeaways(once, again), "takeaways: which fixes hold at which level, and why"
        )
        for server in servers:
            show.doctor(diagnose(server))
    show.save()
