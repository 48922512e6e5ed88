"""demo: the lab's main job — the seed bug reproduced and explained, then the matrix."""

from __future__ import annotations

from pathlib import Path

import click
from rich.rule import Rule

from redpacket.cli.app import Options, cli, html_option, open_lab, output
from redpacket.cli.interleave_commands import render_explained
from redpacket.cli.stress_commands import run_comparison_with_bars
from redpacket.database import migrate as migration
from redpacket.doctor import diagnose
from redpacket.interleave.matrix import cells, run_matrix
from redpacket.interleave.run import run_one
from redpacket.isolation import Isolation
from redpacket.report.doctor_view import doctor_table
from redpacket.report.matrix_view import matrix_table
from redpacket.report.stress_view import compare_table
from redpacket.retry import RetryPolicy
from redpacket.strategies import STRATEGIES
from redpacket.stress.plan import StressPlan

DEMO_STRESS = [
    ("seed", Isolation.REPEATABLE_READ),
    ("seed", Isolation.READ_COMMITTED),
    ("lock_first", Isolation.REPEATABLE_READ),
    ("lock_first", Isolation.READ_COMMITTED),
    ("conditional_update", Isolation.REPEATABLE_READ),
    ("on_conflict", Isolation.READ_COMMITTED),
    ("seed", Isolation.SERIALIZABLE),
]


@cli.command()
@html_option
@click.pass_obj
def demo(options: Options, html_path: Path | None) -> None:
    """Reproduce the seed bug step by step, explain it, compare every fix, then load them."""
    with output(html_path) as out, open_lab(options) as lab:
        migration.prepare(lab)
        seed = STRATEGIES["seed"]
        out.print(doctor_table(diagnose(lab)))
        out.print(Rule("1. The bug, step by step: the seed service at repeatable-read"))
        out.print(render_explained(run_one(lab, seed, Isolation.REPEATABLE_READ, "t2-waits", 0)))
        out.print(Rule("2. The same code at read-committed"))
        out.print(render_explained(run_one(lab, seed, Isolation.READ_COMMITTED, "t2-waits", 0)))
        out.print(Rule("3. Every strategy at every level (schedule t2-first-read)"))
        todo = cells(list(STRATEGIES.values()), list(Isolation), ["t2-first-read"])
        out.print(matrix_table(run_matrix(lab, todo, RetryPolicy(0)), "no retries"))
        out.print(matrix_table(run_matrix(lab, todo, RetryPolicy(3)), "with 3 retries"))
        out.print(Rule("4. Under load: 16 workers racing for each of 50 orders"))
        plans = [
            StressPlan(strategy=STRATEGIES[name], isolation=level, workers=16, orders=50, retries=3)
            for name, level in DEMO_STRESS
        ]
        out.print(compare_table(run_comparison_with_bars(lab, plans), "stress comparison"))
