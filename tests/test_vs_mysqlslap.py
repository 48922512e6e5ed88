"""The mysqlslap anchor runs what the harness runs: one statement per query, autocommit off.

These run the real mysqlslap (the MariaDB client ships it) for a moment each.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from benchmarks.vs_mysqlslap import DELIMITER, run_mysqlslap, transaction
from redpacket.database.lab import Lab, Schema
from redpacket.strategies import STRATEGIES

pytestmark = pytest.mark.skipif(
    shutil.which("mysqlslap") is None and shutil.which("mariadb-slap") is None,
    reason="mysqlslap is not installed",
)


def test_every_insert_is_committed_by_the_commit_after_it(mysql_lab: Lab, tmp_path: Path) -> None:
    """on_conflict on orders not granted yet, with autocommit off: an INSERT IGNORE that
    the COMMIT after it did not commit would vanish when mysqlslap disconnects."""
    mysql_lab.reset(10_000)
    strategy = STRATEGIES["on_conflict"]
    sent = transaction(strategy, 7)
    assert [query.split()[0] for query in sent] == ["INSERT", "SELECT", "COMMIT"]
    assert sent[0].startswith("INSERT IGNORE INTO red_packets")
    tps, cpu = run_mysqlslap(mysql_lab, strategy, clients=2, per_client=30, folder=tmp_path)
    assert tps > 0
    assert cpu > 0
    asked = set()
    for path in tmp_path.glob("*.sql"):
        for query in path.read_text().split(DELIMITER):
            found = re.search(r"VALUES \((\d+),", query)
            if found:
                asked.add(int(found.group(1)))
    with mysql_lab.connect(Schema.CONSTRAINED) as conn:
        rows = mysql_lab.engine.run(conn, "SELECT DISTINCT order_id FROM red_packets")
    assert {int(order_id) for (order_id,) in rows} == asked  # every INSERT ran, and COMMIT
    assert len(asked) > 30
