"""The README's verdict tables are what `matrix` measures on the two servers, cell for cell.

Each table is one schedule (the README says which, and the command that prints it);
this test runs that matrix on the real PostgreSQL and MariaDB and rebuilds each row, so
a table that drifted from the servers fails here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from redpacket.database.lab import Lab
from redpacket.interleave.matrix import cells, run_matrix
from redpacket.interleave.timeline import Run, Verdict
from redpacket.isolation import Isolation
from redpacket.retry import RetryPolicy
from redpacket.strategies import STRATEGIES

README = Path(__file__).resolve().parent.parent / "README.md"
SCHEDULES = ("t2-first-read", "t2-waits")


def short(run: Run) -> str:
    """A cell as the README writes it: the verdict, and the code that refused it."""
    word = run.verdict.value
    failed = list(dict.fromkeys(run.failed_sqlstates))
    return f"{word} {'/'.join(failed)}" if word == "refused" and failed else word


def rows(pg: Sequence[Run], innodb: Sequence[Run]) -> list[str]:
    found = []
    for name in STRATEGIES:
        cells_pg = [short(r) for level in Isolation for r in pg
                    if r.strategy == name and r.isolation == level.value]  # fmt: skip
        cells_my = [short(r) for level in Isolation for r in innodb
                    if r.strategy == name and r.isolation == level.value]  # fmt: skip
        found.append(f"| `{name}` | {' / '.join(cells_pg)} | {' / '.join(cells_my)} |")
    return found


def test_the_readmes_verdict_tables_are_the_servers(
    lab: Lab, mysql_lab: Lab, innodb_watch: None
) -> None:
    text = README.read_text(encoding="utf-8")
    for schedule in SCHEDULES:
        todo = cells(list(STRATEGIES.values()), list(Isolation), [schedule])
        pg = run_matrix(lab, todo, RetryPolicy(0))
        innodb = run_matrix(mysql_lab, todo, RetryPolicy(0))
        if not innodb[0].server.startswith("MariaDB"):
            pytest.skip(f"the README's tables are MariaDB's; this is {innodb[0].server}")
        heading = f"Schedule `{schedule}`"
        assert heading in text, heading
        table = text[text.index(heading) :].split("\n\n")[1]
        expected = rows(pg, innodb)
        assert table.splitlines()[2:] == expected, "\n".join(expected)
        # "With --retries 3 every refused and lost-race cell ends correct, and no other
        # cell changes"
        retried = [
            *run_matrix(lab, todo, RetryPolicy(3)),
            *run_matrix(mysql_lab, todo, RetryPolicy(3)),
        ]
        for before, after in zip([*pg, *innodb], retried, strict=True):
            assert (before.strategy, before.isolation, before.engine) == (
                after.strategy,
                after.isolation,
                after.engine,
            )
            settles = before.verdict in (Verdict.REFUSED, Verdict.LOST_RACE)
            assert after.verdict is (Verdict.CORRECT if settles else before.verdict), (
                f"{before.engine} {before.strategy} {before.isolation} {schedule}:"
                f" {before.verdict.value} without retries, {after.verdict.value} with 3"
            )
    assert "With `--retries 3` every refused and lost-race cell in them ends\ncorrect" in text
