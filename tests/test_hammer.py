"""The hammer runs rounds: every round at a barrier, on warmed connections, with a reset
between rounds and the check after each, and says how many rounds overlapped.

The duplicates here are forced, not hoped for: the two calls of a round meet at a
``threading.Barrier`` between their check and their insert, so every round of the
one-key check-then-insert claim must break the invariant, on both engines.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from redpacket.database import ownership
from redpacket.database.lab import Lab
from redpacket.race.hammer import hammer, overlapping


@pytest.fixture(params=["postgresql", "mariadb"])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    lab: Lab = request.getfixturevalue("lab" if request.param == "postgresql" else "mysql_lab")
    database = f"{lab.name}_hammer"
    made = create_engine(lab.own_database_url(database).sqlalchemy())
    with made.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS claims"))
        conn.execute(text("CREATE TABLE claims (k int, who int)"))
    yield made
    made.dispose()
    ownership.drop_database(lab, database)


def rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM claims")).scalar_one())


def test_every_round_is_reset_checked_and_overlapping(engine: Engine) -> None:
    meet = threading.Barrier(2, timeout=30)
    resets: list[int] = []
    seen: list[int] = []

    def claim() -> None:
        with engine.begin() as conn:
            free = conn.execute(text("SELECT 1 FROM claims WHERE k = 1")).first() is None
            meet.wait()  # both have checked: both insert
            if free:
                conn.execute(text("INSERT INTO claims VALUES (1, 0)"))

    def reset() -> None:
        resets.append(rows(engine))
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM claims"))

    def check() -> str | None:
        seen.append(rows(engine))
        return None if seen[-1] <= 1 else f"{seen[-1]} claims of key 1"

    found = hammer(engine, claim, workers=2, times=5, reset=reset, check=check)
    assert seen == [2, 2, 2, 2, 2]  # each round's own duplicate, checked after it
    assert resets == [0, 2, 2, 2, 2]  # before every round, the last round's rows gone
    assert found.broken_rounds == [1, 2, 3, 4, 5]
    assert found.first_problem == "2 claims of key 1"
    assert found.overlapped == 5
    assert found.returned == 10
    assert found.warmed == 2
    assert "5 of 5 rounds overlapped" in found.summary()


def test_without_a_reset_the_check_is_the_callers_and_a_cold_engine_is_said(
    engine: Engine,
) -> None:
    cold = create_engine(engine.url, poolclass=NullPool)
    calls = []
    found = hammer(cold, lambda: calls.append(1), workers=3, times=4)
    assert len(calls) == 12
    assert found.broken_rounds == []
    assert found.warmed == 0
    assert "keeps 0 connections warm, so 3 workers connect anew" in found.summary()


def test_a_reset_that_raises_ends_the_hammer_with_its_error(engine: Engine) -> None:
    def reset() -> None:
        raise ValueError("no such table")

    with pytest.raises(ValueError, match="no such table"):
        hammer(engine, lambda: None, workers=2, times=3, reset=reset)


def test_overlap_is_two_calls_in_flight_at_one_instant() -> None:
    assert overlapping([(0.0, 2.0), (1.0, 3.0)])
    assert not overlapping([(0.0, 1.0), (1.0, 2.0), (2.5, 3.0)])
    assert overlapping([(5.0, 6.0), (0.0, 10.0)])
