"""The pytest plugin races the user's real code: the example shop, on both engines.

The example (examples/shop) is run as a user runs it, in a pytest of its own with
the plugin loaded from its entry point: the shipped code fails its three tests (a
forced interleaving, every schedule, the hammer), each failure showing the race;
the fix passes them. Misuse gives one clear line, never a hang.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from redpacket.database import ownership
from redpacket.database.connect import connect
from redpacket.database.lab import Lab
from redpacket.database.urls import plain_url
from redpacket.race.explore import as_schedule

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "shop"


_SHOPS: dict[str, Lab] = {}  # database -> the lab that owns it, dropped after the module


def shop_url(lab: Lab) -> str:
    """A database of the lab's own for the example's tables (one per test worker)."""
    database = f"{lab.name}_shop"
    _SHOPS[f"{lab.engine.name}/{database}"] = lab
    return lab.own_database_url(database).render_as_string(hide_password=False)


@pytest.fixture(scope="module", autouse=True)
def no_shop_left_behind() -> Iterator[None]:
    """The example databases go when this module's tests are done (the lab's own drop does
    not know them)."""
    yield
    for key, lab in _SHOPS.items():
        ownership.drop_database(lab, key.split("/", 1)[1])
    _SHOPS.clear()


def run_example(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, url: str, grants: str,
    *args: str,
) -> pytest.RunResult:  # fmt: skip
    """As its README says: ``cd examples/shop``, then the ``pytest`` command (not ``python -m
    pytest``, whose working directory on sys.path would hide a missing setting)."""
    monkeypatch.setenv("SHOP_GRANTS", grants)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.chdir(EXAMPLE)
    command = Path(sys.executable).with_name("pytest")
    return pytester.run(
        command, "--redpacket-url", url, "-p", "no:cacheprovider", "-p", "no:xdist", *args,
    )  # fmt: skip


@pytest.fixture(params=["postgresql", "mariadb"])
def example_url(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        return shop_url(request.getfixturevalue("lab"))
    return shop_url(request.getfixturevalue("mysql_lab"))


def test_the_shipped_code_fails_every_race_test_with_its_timeline(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, example_url: str
) -> None:
    result = run_example(pytester, monkeypatch, example_url, "shop.grants")
    result.assert_outcomes(failed=3)
    out = result.stdout.str()
    # the forced interleaving: the race's timeline in the report, in the user's own SQL
    assert "schedule T1:1,T2:1,T1:end,T2:end" in out
    assert "#2 SELECT shop_orders.id FROM shop_orders" in out
    assert "FOR UPDATE" in out
    assert "assert 2 == 1" in out
    # every schedule: the shortest failing one
    assert "the shortest: T1:1,T2:end,T1:end" in out
    assert "34 of 36 schedules break the invariant" in out  # as the README quotes it
    # the hammer: duplicates found by the user's check, outcomes counted
    assert "after the hammer: red packets per order" in out
    assert "160 calls (16 workers x 10 rounds)" in out
    assert "10 of 10 rounds overlapped" in out


def test_the_fix_passes_every_schedule_and_the_hammer(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, example_url: str
) -> None:
    result = run_example(pytester, monkeypatch, example_url, "shop.grants_fixed")
    result.assert_outcomes(passed=3)


def test_the_buggy_code_fails_the_same_way_on_every_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, lab: Lab
) -> None:
    url = shop_url(lab)
    for _ in range(3):
        result = run_example(pytester, monkeypatch, url, "shop.grants", "-k", "seeds_order")
        result.assert_outcomes(failed=1)
        assert "assert 2 == 1" in result.stdout.str()


MISUSE = """
import pytest
from sqlalchemy import text

def test_no_connection(race):
    race.interleave(lambda: 1, lambda: 2)

def test_missing_session(race):
    def touch():
        with race.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    race.interleave(touch, touch, schedule="T1:1,T3:1")

def test_check_raises(race):
    def touch():
        with race.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    race.explore(touch, touch, check=lambda: 1 / 0)

def test_not_callable(race):
    race.interleave("grant", "grant")
"""


def test_misuse_is_one_clear_failure(pytester: pytest.Pytester, lab: Lab) -> None:
    pytester.makepyfile(test_misuse=MISUSE)
    result = pytester.runpytest_subprocess("--redpacket-url", shop_url(lab), "-p", "no:xdist")
    result.assert_outcomes(failed=4)
    out = result.stdout.str()
    assert "redpacket race: T1 ran to its end without a statement on the engine" in out
    assert "redpacket race: schedule 'T1:1,T3:1' names T3, but the race has 2 calls" in out
    assert "redpacket race: the check raised ZeroDivisionError: division by zero" in out
    assert "redpacket race: 'grant' is not callable" in out
    assert "Traceback" not in out


STUCK = """
from sqlalchemy import text

def test_waits_for_a_lock_the_test_holds(race):
    with race.engine.connect() as holder:
        holder.execute(text("CREATE TABLE IF NOT EXISTS held (id int)"))
        holder.commit()
        holder.execute(text("LOCK TABLE held IN ACCESS EXCLUSIVE MODE"))

        def blocked():
            with race.engine.connect() as conn:
                conn.execute(text("SELECT * FROM held"))

        race.interleave(blocked, schedule="T1:end")
"""


def test_a_race_that_cannot_go_on_fails_instead_of_hanging(
    pytester: pytest.Pytester, lab: Lab
) -> None:
    pytester.makepyfile(test_stuck=STUCK)
    result = pytester.runpytest_subprocess(
        "--redpacket-url", shop_url(lab), "-p", "no:xdist", "--redpacket-step-timeout", "1"
    )
    result.assert_outcomes(failed=1)
    assert "the race cannot go on: T1 waits for a backend outside the race" in result.stdout.str()


def test_a_schedule_is_written_with_its_fewest_entries() -> None:
    assert as_schedule([1, 2, 2, 2, 2, 2, 1, 1, 1, 1]) == ("T1:1,T2:end,T1:end", 2)
    assert as_schedule([1, 1, 1, 1, 1, 2, 2]) == ("T1:end,T2:end", 1)


PSYCOPG = """
import psycopg

def grant(race, order_id):
    with race.psycopg_connect() as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        conn.execute("SELECT id FROM psy_orders WHERE id = %s", (order_id,))
        conn.execute("SELECT id FROM psy_orders WHERE id = %s FOR UPDATE", (order_id,))
        found = conn.execute(
            "SELECT 1 FROM psy_packets WHERE order_id = %s", (order_id,)).fetchone()
        if found is None:
            conn.execute("INSERT INTO psy_packets (order_id) VALUES (%s)", (order_id,))
        conn.commit()

def test_psycopg_code_races_too(race):
    with race.psycopg_connect(autocommit=True) as setup:
        setup.execute("DROP TABLE IF EXISTS psy_packets, psy_orders")
        setup.execute("CREATE TABLE psy_orders (id int PRIMARY KEY)")
        setup.execute("CREATE TABLE psy_packets (order_id int)")
        setup.execute("INSERT INTO psy_orders VALUES (1)")
    request = lambda: grant(race, 1)
    result = race.interleave(request, request, schedule="T1:3,T2:end,T1:end")
    with race.psycopg_connect(autocommit=True) as check:
        count = check.execute("SELECT count(*) FROM psy_packets").fetchone()[0]
    assert "[waits for T1]" in result.timeline
    assert count == 1
"""


def test_code_on_psycopg_is_raced_through_a_wrapped_connection(
    pytester: pytest.Pytester, lab: Lab
) -> None:
    pytester.makepyfile(test_psycopg=PSYCOPG)
    result = pytester.runpytest_subprocess("--redpacket-url", shop_url(lab), "-p", "no:xdist")
    result.assert_outcomes(failed=1)  # the seed's bug, written in psycopg: two grants
    out = result.stdout.str()
    assert "assert 2 == 1" in out
    assert "[waits for T1]" in out  # T2's FOR UPDATE, seen waiting from the server


OWN = """
from sqlalchemy import text

def test_on_the_labs_own_database(race):
    def touch():
        with race.engine.connect() as conn:
            return conn.execute(text("SELECT current_database()")).scalar()
    result = race.interleave(touch, schedule="T1:end")
    assert result[0] == "redpacket_lab_race"
"""


def test_without_a_url_the_race_runs_in_a_database_the_lab_owns(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, lab: Lab
) -> None:
    monkeypatch.delenv("REDPACKET_URL", raising=False)
    monkeypatch.delenv("REDPACKET_LAB_DATABASE", raising=False)
    monkeypatch.setenv(
        "REDPACKET_DATABASE_URL", lab.server.url.render_as_string(hide_password=False)
    )
    pytester.makepyfile(test_own=OWN)
    result = pytester.runpytest_subprocess("-p", "no:xdist")
    result.assert_outcomes(passed=1)


OWN_ON_MYSQL = """
import os
from sqlalchemy import text

def test_on_the_labs_own_database_there(race):
    with race.engine.begin() as conn:
        conn.execute(text("CREATE TABLE claims (k int, who int)"))
    def claim(who):
        def call():
            with race.engine.begin() as conn:
                if conn.execute(text("SELECT 1 FROM claims WHERE k = 1")).first() is None:
                    conn.execute(text("INSERT INTO claims VALUES (1, :w)"), {"w": who})
            with race.engine.connect() as conn:
                return conn.execute(text("SELECT DATABASE()")).scalar()
        return call
    result = race.interleave(claim(1), claim(2), schedule="T1:1,T2:1,T1:end,T2:end")
    assert result[0] == result[1] == os.environ["REDPACKET_LAB_DATABASE"] + "_race"
    with race.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM claims")).scalar() == 2
"""


def test_a_mysql_url_without_a_database_races_in_one_the_lab_owns_there(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, mysql_lab: Lab
) -> None:
    """The README's own form, mysql://root@127.0.0.1:3306/: the lab's race database on that
    server, created for the session and dropped after it (the lab created it)."""
    server = mysql_lab.server.url.set(database=None)
    monkeypatch.setenv("REDPACKET_URL", plain_url(server))
    monkeypatch.setenv("REDPACKET_LAB_DATABASE", mysql_lab.name)
    pytester.makepyfile(test_own_mysql=OWN_ON_MYSQL)
    result = pytester.runpytest_subprocess("-p", "no:xdist")
    result.assert_outcomes(passed=1)
    with connect(mysql_lab.maintenance_url, autocommit=True) as conn:
        assert mysql_lab.engine.mark_of(conn, mysql_lab.race_database) is False


ENDINGS = """
import pytest
from sqlalchemy import text

def setup_table(race):
    with race.engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS endings"))
        conn.execute(text("CREATE TABLE endings (id int PRIMARY KEY, v int)"))
        conn.execute(text("INSERT INTO endings VALUES (1, 0)"))

def test_a_rollback_is_a_point_of_the_schedule(race):
    setup_table(race)
    def fails_after_update():
        with race.engine.begin() as conn:
            conn.execute(text("UPDATE endings SET v = 1 WHERE id = 1"))
            raise ValueError("the request fails after its update")
    def reads():
        with race.engine.connect() as conn:
            return conn.execute(text("SELECT v FROM endings WHERE id = 1 FOR UPDATE")).scalar()
    result = race.interleave(fails_after_update, reads, schedule="T1:1,T2:end,T1:end")
    assert isinstance(result[0], ValueError)
    assert result[1] == 0
    lines = result.timeline.splitlines()
    assert any("#2 ROLLBACK" in line for line in lines), result.timeline
    assert any("[waits for T1]" in line for line in lines), result.timeline

def test_begin_is_no_point_of_the_users_code(race):
    race.interleave(lambda: 1, lambda: 2, schedule="t2-begins-first")
"""


def test_commit_and_rollback_are_the_users_and_begin_is_refused(
    pytester: pytest.Pytester, lab: Lab
) -> None:
    pytester.makepyfile(test_endings=ENDINGS)
    result = pytester.runpytest_subprocess("--redpacket-url", shop_url(lab), "-p", "no:xdist")
    result.assert_outcomes(passed=1, failed=1)
    assert "stops a call at 'begin', which is no statement of your code" in result.stdout.str()
