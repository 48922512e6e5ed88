"""The classic anomalies at every level, on both engines, against what each documents.

Every cell below names its source. PostgreSQL: the PostgreSQL 15 manual, chapter 13.2
"Transaction Isolation" (Table 13.1 and sections 13.2.1 Read Committed, 13.2.2
Repeatable Read, 13.2.3 Serializable). InnoDB: the MySQL 8.0 Reference Manual, 15.7.2.1
"Transaction Isolation Levels", 15.7.2.3 "Consistent Nonlocking Reads", 15.7.2.4
"Locking Reads" and 15.7.1 "InnoDB Locking" (next-key locks), which MariaDB's
knowledge base ("InnoDB Lock Modes", "SET TRANSACTION") describes alike. Hermitage
(github.com/ept/hermitage, postgres.md and innodb.md) ran the same schedules by hand.
The lab judges each cell from the run's data (``catalog``'s witnesses); these tables
are what the documents say must come out.
"""

from __future__ import annotations

import json

import pytest

from redpacket.cli import main
from redpacket.database.lab import Lab
from redpacket.isolation import Isolation
from redpacket.specs.anomalies import anomaly_table
from redpacket.specs.catalog import ANOMALIES, Observed, anomaly_named
from redpacket.specs.events import Table

RC, RR, SER = Isolation.READ_COMMITTED, Isolation.REPEATABLE_READ, Isolation.SERIALIZABLE
BLOCKED_THEN_40001 = "prevented: blocked, then serialization failure 40001"
SSI_40001 = "prevented: serialization failure 40001"
BLOCKED_THEN_DEADLOCK = "prevented: blocked, then deadlock 1213"

POSTGRESQL = {
    # 13.2.1: an UPDATE of a row another transaction updated waits for it to end;
    # 13.2.2: at repeatable read the waiter then fails, "could not serialize access due to
    # concurrent update"; 13.2.3: serializable behaves as repeatable read here.
    "G0": ("prevented: blocked", BLOCKED_THEN_40001, BLOCKED_THEN_40001),
    # Table 13.1: dirty reads are not possible at any level in PostgreSQL; 13.2.1: "never
    # sees either uncommitted data or changes committed by concurrent transactions".
    "G1a": ("prevented: not seen",) * 3,
    "G1b": ("prevented: not seen",) * 3,
    # Table 13.1 (no dirty reads); 13.2.3: at serializable the two read/write dependencies
    # form a cycle and SSI ends one transaction (40001).
    "G1c": ("prevented: not seen", "prevented: not seen", SSI_40001),
    # 13.2.1: the second writer waits, then works on the committed row; 13.2.2: at
    # repeatable read it fails instead (concurrent update).
    "OTV": ("prevented: blocked", BLOCKED_THEN_40001, BLOCKED_THEN_40001),
    # Table 13.1: phantom reads possible at read committed, "allowed, but not in PG" at
    # repeatable read (13.2.2: one snapshot for the whole transaction).
    "PMP": ("possible", "prevented: not seen", "prevented: not seen"),
    # 13.2.1: a DELETE finds only rows committed as of its start, re-checks them after the
    # wait and ignores rows the other made match; 13.2.2: repeatable read fails instead.
    "PMP-write": ("possible", BLOCKED_THEN_40001, BLOCKED_THEN_40001),
    # 13.2.1: the second UPDATE proceeds on the updated row (a lost update); 13.2.2: at
    # repeatable read it gets 40001.
    "P4": ("possible", BLOCKED_THEN_40001, BLOCKED_THEN_40001),
    # Table 13.1: nonrepeatable reads possible only at read committed.
    "G-single": ("possible", "prevented: not seen", "prevented: not seen"),
    # 13.2.2: a DELETE of a row changed since the snapshot fails with 40001 at once.
    "G-single-write": ("possible", SSI_40001, SSI_40001),
    # 13.2.3: write skew is allowed at repeatable read (the manual's class/value example)
    # and ends in 40001 at serializable.
    "G2-item": ("possible", "possible", SSI_40001),
    "G2": ("possible", "possible", SSI_40001),
    # The seed code (explain's t2-waits): at read committed the wait for the order's lock
    # ends in a fresh snapshot that sees the grant (13.2.1); at repeatable read the
    # snapshot predates it (13.2.2); at serializable T2 still waits for the lock, then SSI
    # refuses its insert (13.2.3: "read/write dependencies among transactions"): the run's
    # own events, judged by the same code as every other row.
    "red packet": ("prevented: blocked", "possible", BLOCKED_THEN_40001),
}

MARIADB = {
    # 15.7.1: a row's exclusive lock is held to the end of the transaction: writers wait.
    "G0": ("prevented: blocked",) * 3,
    # 15.7.2.3: consistent reads see only committed data; 15.7.2.1: at serializable plain
    # SELECTs become locking reads (FOR SHARE) and wait for the writer.
    "G1a": ("prevented: not seen", "prevented: not seen", "prevented: blocked"),
    "G1b": ("prevented: not seen", "prevented: not seen", "prevented: blocked"),
    # 15.7.2.1 (serializable: shared locks) and 15.7.5 deadlock detection: the reads wait
    # for each other's row locks and one transaction is rolled back (1213).
    "G1c": ("prevented: not seen", "prevented: not seen", BLOCKED_THEN_DEADLOCK),
    # 15.7.1: the second writer waits for the row lock at every level.
    "OTV": ("prevented: blocked",) * 3,
    # 15.7.2.1: read committed takes a fresh snapshot per consistent read; repeatable read
    # reads the snapshot of the first read (15.7.2.3); serializable locks the scanned range
    # with next-key locks (15.7.1), so the insert waits.
    "PMP": ("possible", "prevented: not seen", "prevented: blocked"),
    # 15.7.2.3: "the snapshot ... applies to SELECT statements ..., not necessarily to DML
    # statements": the DELETE waits, then reads the newest committed rows and deletes the
    # row that now matches.
    "PMP-write": ("prevented: blocked",) * 3,
    # 15.7.2.3: the second UPDATE waits, then updates the newest committed row (Hermitage:
    # lost update possible at repeatable read); 15.7.2.1: at serializable both hold shared
    # locks from their reads and deadlock.
    "P4": ("possible", "possible", BLOCKED_THEN_DEADLOCK),
    # 15.7.2.1 / 15.7.2.3: a fresh snapshot per read at read committed, one snapshot at
    # repeatable read; at serializable the writer waits for the reader's shared lock.
    "G-single": ("possible", "prevented: not seen", "prevented: blocked"),
    # 15.7.2.3: the DELETE is a current read whatever the snapshot (repeatable read too).
    "G-single-write": ("possible", "possible", BLOCKED_THEN_DEADLOCK),
    # 15.7.2.1: only serializable's shared locks stop write skew, by deadlock.
    "G2-item": ("possible", "possible", BLOCKED_THEN_DEADLOCK),
    "G2": ("possible", "possible", BLOCKED_THEN_DEADLOCK),
    # The seed code: the FOR UPDATE waits at every level; at read committed the check
    # reads a fresh snapshot, at repeatable read the old one (15.7.2.3), at serializable
    # the check is a locking read of the newest rows (15.7.2.1).
    "red packet": ("prevented: blocked", "possible", "prevented: blocked"),
}


def table_of(lab: Lab) -> dict[str, tuple[str, ...]]:
    found: dict[str, list[str]] = {}
    for cell in anomaly_table(lab):
        found.setdefault(cell.anomaly, []).append(cell.shown())
    return {name: tuple(shown) for name, shown in found.items()}


def test_postgresql_prevents_what_its_manual_says_at_each_level(lab: Lab) -> None:
    assert table_of(lab) == POSTGRESQL


def test_mariadb_prevents_what_innodbs_manual_says_at_each_level(mysql_lab: Lab) -> None:
    conn = mysql_lab.engine.connect(mysql_lab.server.url)
    try:
        cursor = conn.cursor()
        cursor.execute("SHOW GLOBAL VARIABLES LIKE 'innodb_snapshot_isolation'")
        setting = cursor.fetchall()
    finally:
        conn.close()
    if setting and str(setting[0][1]).upper() == "ON":
        pytest.skip("innodb_snapshot_isolation=ON here: repeatable read refuses lost updates")
    assert table_of(mysql_lab) == MARIADB


def test_every_anomaly_is_judged_by_its_data_not_its_name() -> None:
    """Each witness says yes to the anomaly's data and no to the serial outcome."""
    g_single = anomaly_named("G-single")
    assert g_single.witness(Observed({"t1_r2": []}, failed=False)) is False
    skewed = Observed({"t1_r2": [Table(("value",), (("18",),))]}, failed=False)
    assert g_single.witness(skewed) is True
    lost = Observed({"check": [Table(("id", "value"), (("1", "11"), ("2", "20")))]}, False)
    assert anomaly_named("P4").witness(lost) is True
    assert anomaly_named("P4").witness(Observed(lost.tables, failed=True)) is False
    assert len({a.code for a in ANOMALIES}) == 12


def test_the_command_prints_one_table_per_server_and_json(
    lab: Lab, mysql_lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = []
    for one in (lab, mysql_lab):
        urls += ["--database-url", one.server.url.render_as_string(hide_password=False)]
    args = [*urls, "--lab-database", lab.name, "anomalies", "--only", "P4,G2", "--isolation",
            "repeatable-read"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "anomalies on PostgreSQL" in out
    assert "anomalies on MariaDB" in out or "anomalies on MySQL" in out
    assert main([*args, "--json"]) == 0
    cells = json.loads(capsys.readouterr().out)
    assert {(c["anomaly"], c["engine"]) for c in cells} >= {("P4", "postgresql"), ("P4", "mysql")}
    p4 = {c["engine"]: c for c in cells if c["anomaly"] == "P4"}
    assert p4["postgresql"]["outcome"] == "prevented"
    assert p4["postgresql"]["error"] == "could not serialize access due to concurrent update"


def test_an_unknown_anomaly_is_one_line_and_exit_2(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    url = lab.server.url.render_as_string(hide_password=False)
    assert main(["--database-url", url, "anomalies", "--only", "G9"]) == 2
    assert "unknown anomaly 'G9'" in capsys.readouterr().err
