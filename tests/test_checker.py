"""The history checker against rows really in the table."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from redpacket.database.lab import Lab, Schema
from redpacket.engines.postgresql import conninfo
from redpacket.strategies import Outcome
from redpacket.stress.checker import check_history
from redpacket.stress.history import (
    History,
    write_history,
)

CAMPAIGN = "checker"


@pytest.fixture
def table(fresh_lab: Lab) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    conn = psycopg.connect(conninfo(fresh_lab.url_of(Schema.UNCONSTRAINED)), autocommit=True)
    yield conn
    conn.close()


def grant_row(conn: psycopg.Connection[tuple[object, ...]], order_id: int) -> int:
    row = conn.execute(
        "INSERT INTO red_packets (order_id, campaign_id, amount) VALUES (%s, %s, 1) RETURNING id",
        (order_id, CAMPAIGN),
    ).fetchone()
    assert row is not None
    return int(str(row[0]))


def record(history: History, order_id: int, outcome: Outcome, packet: int | None = None) -> None:
    reason = "40001" if outcome == Outcome.FAILED else None
    history.record(0, order_id, 1_000, 2_000, outcome, reason, 1, packet)


def test_a_consistent_history_passes(
    fresh_lab: Lab, table: psycopg.Connection[tuple[object, ...]]
) -> None:
    history = History()
    record(history, 1, Outcome.GRANTED, grant_row(table, 1))
    record(history, 1, Outcome.ALREADY_GRANTED)
    record(history, 2, Outcome.FAILED)
    result = check_history(fresh_lab, Schema.UNCONSTRAINED, history, CAMPAIGN)
    assert (result.ok, result.requests, result.violation_count) == (True, 3, 0)


def test_duplicates_and_rows_nobody_reported_are_violations(
    fresh_lab: Lab, table: psycopg.Connection[tuple[object, ...]]
) -> None:
    history = History()
    first = grant_row(table, 1)
    second = grant_row(table, 1)
    record(history, 1, Outcome.GRANTED, first)
    record(history, 1, Outcome.GRANTED, second)
    stray = grant_row(table, 2)  # a row no request reported
    record(history, 2, Outcome.ALREADY_GRANTED)
    result = check_history(fresh_lab, Schema.UNCONSTRAINED, history, CAMPAIGN)
    rules = sorted((v.rule, v.order_id) for v in result.violations)
    assert rules == [("duplicate", 1), ("row_without_grant", 2)]
    duplicate = next(v for v in result.violations if v.rule == "duplicate")
    assert sorted(r.red_packet_id or 0 for r in duplicate.requests) == sorted([first, second])
    assert "order 2" in next(v for v in result.violations if v.order_id == 2).describe()
    assert stray > 0


def test_a_reported_grant_without_its_row_is_a_violation(
    fresh_lab: Lab, table: psycopg.Connection[tuple[object, ...]]
) -> None:
    history = History()
    record(history, 3, Outcome.GRANTED, 999_999)
    result = check_history(fresh_lab, Schema.UNCONSTRAINED, history, CAMPAIGN)
    assert [(v.rule, v.order_id) for v in result.violations] == [("granted_without_row", 3)]


def test_unknown_outcomes_are_resolved_by_the_table(
    fresh_lab: Lab, table: psycopg.Connection[tuple[object, ...]]
) -> None:
    history = History()
    committed = grant_row(table, 4)
    record(history, 4, Outcome.UNKNOWN, committed)  # its row is there: it committed
    record(history, 5, Outcome.UNKNOWN)  # no row for order 5: it did not
    grant_row(table, 6)
    record(history, 6, Outcome.UNKNOWN)  # id unknown, but the order's row explains it
    result = check_history(fresh_lab, Schema.UNCONSTRAINED, history, CAMPAIGN)
    assert result.ok
    assert (result.unknown, result.unknown_committed, result.unknown_not_committed) == (3, 2, 1)


def test_history_file_has_the_fields_of_every_request(tmp_path: Path) -> None:
    history = History()
    history.record(0, 7, 10, 20, Outcome.GRANTED, None, 1, 41)
    history.record(1, 7, 11, 25, Outcome.FAILED, "40001", 3, None)
    history.record(2, 8, 12, 30, Outcome.UNKNOWN, "08006", 1, 42)
    path = tmp_path / "history.jsonl"
    assert write_history(history, path) == 3
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [dataclasses.asdict(history.request(i)) for i in range(3)]
    assert lines[1] == {
        "worker": 1, "order_id": 7, "start_ns": 11, "end_ns": 25, "outcome": "failed",
        "reason": "40001", "attempts": 3, "red_packet_id": None,
    }  # fmt: skip


def test_rows_from_before_the_run_are_owed_no_report(
    fresh_lab: Lab, table: psycopg.Connection[tuple[object, ...]]
) -> None:
    """A run on tables it did not reset: what was there before is nobody's grant."""
    before = grant_row(table, 1)
    history = History()
    record(history, 1, Outcome.ALREADY_GRANTED)
    lab, schema = fresh_lab, Schema.UNCONSTRAINED
    assert check_history(lab, schema, history, CAMPAIGN, existing_before=before).ok
    unowed = check_history(lab, schema, history, CAMPAIGN)
    assert [v.rule for v in unowed.violations] == ["row_without_grant"]
    record(history, 1, Outcome.GRANTED, grant_row(table, 1))  # a duplicate still counts
    assert [v.rule for v in check_history(lab, schema, history, CAMPAIGN, before).violations] == [
        "duplicate"
    ]


def test_an_order_whose_only_request_ended_unknown_is_not_counted_as_missing() -> None:
    """A COMMIT in flight when the run was cut (or the connection went) may or may not have
    committed: the order is not 'left without a grant' by the strategy (a Ctrl-C in CI
    once counted it so)."""
    from redpacket.stress.tally import Tally

    tally, attempted = Tally(), bytearray(4)
    tally.record(1, 3, 0, 1, Outcome.UNKNOWN, "08006", 1, None, attempted)
    tally.record(1, 2, 0, 1, Outcome.ALREADY_GRANTED, None, 1, None, attempted)
    assert list(attempted) == [0, 0, 1, 0]
    assert (tally.attempts, tally.unknown) == (2, 1)
