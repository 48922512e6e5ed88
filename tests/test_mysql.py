"""The seed's own database: the same strategies, scheduler and harness on MariaDB/MySQL.

InnoDB does not behave like PostgreSQL, and the difference is the lesson: a
locking read is a current read and fixes no snapshot, so lock_first and advisory
are fixes there; SERIALIZABLE is shared locks and deadlocks, not SSI. Every
declared verdict is held to the real server, waits are seen from InnoDB's own
tables, and the hot stress run reproduces the bug.
"""

from __future__ import annotations

import importlib.util
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from redpacket.cli import main
from redpacket.database import migrate
from redpacket.database.backends import Server
from redpacket.database.connect import connect
from redpacket.database.lab import Lab, Schema
from redpacket.database.url import URL
from redpacket.database.urls import plain_url
from redpacket.engines.mysql_wire import _c_wire
from redpacket.interleave.explain import explain
from redpacket.interleave.schedule import parse_schedule
from redpacket.interleave.scheduler import Scheduler
from redpacket.interleave.timeline import Kind, Run, Verdict
from redpacket.isolation import Isolation
from redpacket.retry import RetryPolicy
from redpacket.strategies import STRATEGIES, End, Expected, Race, Step, Strategy
from redpacket.strategies.batching import batches
from redpacket.stress.plan import StressPlan, Workload
from redpacket.stress.result import StressResult
from redpacket.stress.runner import run_stress

RC, RR, SER = Isolation.READ_COMMITTED, Isolation.REPEATABLE_READ, Isolation.SERIALIZABLE


@pytest.fixture(scope="module")
def scheduler(mysql_lab: Lab, innodb_watch: None) -> Iterator[Scheduler]:
    with Scheduler(mysql_lab, timeout_s=10) as running:
        yield running


def scheduled(
    scheduler: Scheduler, name: str, level: Isolation, schedule: str, retries: int = 0
) -> Run:
    strategy = STRATEGIES[name]
    plan = parse_schedule(schedule, len(strategy.steps))
    return scheduler.run(strategy, level, plan, RetryPolicy(retries))


CELLS = [(name, level) for name in STRATEGIES for level in Isolation]


@pytest.mark.parametrize(("name", "level"), CELLS)
def test_each_strategy_does_what_it_declares_on_innodb(
    scheduler: Scheduler, name: str, level: Isolation
) -> None:
    """At t2-first-read and t2-waits, with and without retries, as ``strategies`` prints it."""
    declared = STRATEGIES[name].for_engine("mysql").verdicts[level].race
    runs = {
        (schedule, retries): scheduled(scheduler, name, level, schedule, retries)
        for schedule in ("t2-first-read", "t2-waits")
        for retries in (0, 3)
    }
    assert {run.engine for run in runs.values()} == {"mysql"}
    assert all(run.stuck is None for run in runs.values())
    verdicts = {run.verdict for run in runs.values()}
    if declared is Race.DUPLICATE:
        assert Verdict.DUPLICATE in verdicts  # some race of the two duplicates
        return
    assert all(run.red_packets == 1 for run in runs.values())  # never a duplicate
    assert {run.verdict for (_, retries), run in runs.items() if retries} == {Verdict.CORRECT}
    if declared is Race.CORRECT:
        assert verdicts == {Verdict.CORRECT}
    else:
        assert verdicts & {Verdict.REFUSED, Verdict.LOST_RACE}  # some race needs the retry


def test_the_seed_duplicates_on_innodb_and_the_why_says_so(scheduler: Scheduler) -> None:
    run = scheduled(scheduler, "seed", RR, "t2-waits")
    assert (run.verdict, run.red_packets) == (Verdict.DUPLICATE, 2)
    wait = next(e for e in run.events if e.kind is Kind.WAIT)
    assert (wait.session, wait.action, wait.waited_on) == (2, "lock_order", (1,))  # seen in InnoDB
    why = str(explain(run))
    assert "the snapshot its first statement, step 1 (select_order, #5), took" in why
    assert "was a current read: InnoDB locks and reads the newest committed row version" in why
    assert "40001" not in why


@contextmanager
def innodb_cache_kept_stale(url: URL) -> Iterator[list[int]]:
    """A monitoring agent reading information_schema.INNODB_TRX more often than every
    0.1 s: InnoDB then never refreshes the cache its lock tables are served from."""
    stop, reading = threading.Event(), threading.Event()
    reads = [0]

    def monitoring_agent() -> None:
        with connect(url, autocommit=True) as conn:
            cursor = conn.cursor()
            while not stop.is_set():
                cursor.execute("SELECT count(*) FROM information_schema.INNODB_TRX")
                cursor.fetchall()
                reads[0] += 1
                if reads[0] == 3:
                    reading.set()  # the cache is now frozen as it was before the test
                stop.wait(0.02)

    agent = threading.Thread(target=monitoring_agent, daemon=True)
    agent.start()
    try:
        assert reading.wait(10)
        yield reads
    finally:
        stop.set()
        agent.join()


def test_a_wait_is_seen_while_another_client_keeps_innodbs_cache_stale(
    scheduler: Scheduler, mysql_server: Server
) -> None:
    """The wait is seen live (the InnoDB monitor) and T1 named as the holder."""
    with innodb_cache_kept_stale(mysql_server.url) as reads:
        before, started = reads[0], time.monotonic()
        run = scheduled(scheduler, "seed", RR, "t2-waits")
        took = time.monotonic() - started
        assert reads[0] - before >= took / 0.1  # it read all along, more often than 0.1 s
    assert run.stuck is None
    assert (run.verdict, run.red_packets) == (Verdict.DUPLICATE, 2)
    wait = next(e for e in run.events if e.kind is Kind.WAIT)
    assert (wait.session, wait.action, wait.waited_on) == (2, "lock_order", (1,))


def test_the_fault_injector_sees_transactions_through_a_stale_cache(
    fresh_mysql_lab: Lab, mysql_server: Server
) -> None:
    """The killer must pick sessions inside a transaction, as of now."""
    engine = fresh_mysql_lab.engine
    schema = Schema.CONSTRAINED
    database = fresh_mysql_lab.url_of(schema).database or ""
    with (
        fresh_mysql_lab.connect(schema) as worker,
        fresh_mysql_lab.connect(schema) as observer,
        innodb_cache_kept_stale(mysql_server.url),
    ):
        worker_id = engine.session_id(worker)
        assert worker_id not in engine.sessions_in_transaction(observer, database)
        engine.run(worker, "BEGIN")
        engine.run(worker, "SELECT id FROM orders WHERE id = 1 FOR UPDATE")
        assert worker_id in engine.sessions_in_transaction(observer, database)
        engine.run(worker, "COMMIT")
        assert worker_id not in engine.sessions_in_transaction(observer, database)


def test_lock_first_is_a_fix_on_innodb_because_a_locking_read_takes_no_snapshot(
    scheduler: Scheduler,
) -> None:
    run = scheduled(scheduler, "lock_first", RR, "t2-waits")
    assert run.verdict is Verdict.CORRECT
    second = [e for e in run.events if e.session == 2]
    lock, check = second[1], next(e for e in second if e.action == "find_grant")
    assert (lock.read, lock.takes_snapshot) == ("current read", False)
    assert (check.read, check.takes_snapshot) == ("snapshot", True)
    assert check.rows  # it saw T1's red packet
    why = str(explain(run))
    assert "was its first plain read, so its snapshot was taken then, after T1's commit" in why
    assert "InnoDB fixes a transaction's snapshot at its first plain (consistent) read" in why


def test_serializable_on_innodb_is_a_deadlock_not_ssi(scheduler: Scheduler) -> None:
    run = scheduled(scheduler, "naive", SER, "t2-first-read")
    assert run.verdict is Verdict.REFUSED
    assert run.failed_sqlstates == ("1213",)
    why = str(explain(run))
    assert "InnoDB found a deadlock and broke it by refusing" in why
    assert "1213" in why
    assert "(1213 (SQLSTATE 40001), safe to retry)" in why


def test_a_get_lock_wait_is_seen_and_the_lock_released_after_every_end(
    scheduler: Scheduler, mysql_lab: Lab
) -> None:
    run = scheduled(scheduler, "advisory", RR, "t2-waits")
    wait = next(e for e in run.events if e.kind is Kind.WAIT)
    assert (wait.session, wait.action, wait.read) == (2, "advisory_lock", "none")
    releases = [e for e in run.events if e.action == "release"]
    assert [e.session for e in releases] == [1, 2]  # after each session's COMMIT
    assert run.verdict is Verdict.CORRECT
    with mysql_lab.connect(Schema.UNCONSTRAINED) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT IS_USED_LOCK(CONCAT('redpacket:', %s))", (run.order_id,))
        assert cursor.fetchone() == (None,)  # nobody holds it after the run


def test_a_strategy_without_sql_for_the_engine_is_refused_in_one_line(
    mysql_lab: Lab, tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    path = tmp_path / "pg_only.py"
    path.write_text(
        "from redpacket.isolation import Isolation\n"
        "from redpacket.strategies import End, Expected, Race, Step, Strategy\n"
        "STRATEGY = Strategy(name='pg_only', summary='x', steps=(Step('lock',"
        " 'SELECT pg_advisory_xact_lock(:order_id)', dialects={'mysql': None}),"
        " Step('ins', 'INSERT INTO red_packets (order_id, campaign_id, amount) VALUES"
        " (:order_id, :campaign_id, :amount) RETURNING id', on_row=End.GRANTED)),"
        " requires_revision='0001', verdicts={l: Expected(Race.CORRECT) for l in Isolation})\n"
    )
    url = plain_url(mysql_lab.server.url)
    status = main(["--database-url", url, "--lab-database", mysql_lab.name, "explain", str(path)])
    err = capsys.readouterr().err
    assert status == 2
    assert err == (
        "redpacket: error: strategy 'pg_only' has no SQL for MariaDB / MySQL (step lock);"
        " run it on another engine\n"
    )


# -- under load -----------------------------------------------------------------------------


def stress(lab: Lab, name: str, level: Isolation, **options: object) -> StressResult:
    settings: dict[str, object] = {"workers": 8, "orders": 50, **options}
    return run_stress(lab, StressPlan(STRATEGIES[name], level, **settings))  # type: ignore[arg-type]


def per_order(lab: Lab, name: str) -> Counter[int]:
    schema = Schema.for_revision(STRATEGIES[name].requires_revision)
    with lab.connect(schema) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT order_id FROM red_packets")
        return Counter(int(row[0]) for row in cursor.fetchall())


@pytest.mark.stress
def test_hot_stress_reproduces_the_seed_bug_on_innodb(mysql_lab: Lab) -> None:
    result = stress(mysql_lab, "seed", RR, orders=100, workers=16)
    check = result.check
    assert check is not None
    assert check.duplicate_orders >= 90  # the bug on at least 90 % of the orders
    counts = per_order(mysql_lab, "seed")
    assert sum(1 for n in counts.values() if n > 1) == check.duplicate_orders
    assert result.tally.granted == sum(counts.values())
    assert result.tally.attempts == 1600


FIXES = [
    (name, level)
    for name, strategy in STRATEGIES.items()
    for level in Isolation
    if strategy.for_engine("mysql").verdicts[level].race is not Race.DUPLICATE
]


@pytest.mark.stress
@pytest.mark.parametrize(("name", "level"), FIXES, ids=[f"{n}-{lv.value}" for n, lv in FIXES])
def test_every_declared_fix_holds_under_hot_load_on_innodb(
    mysql_lab: Lab, name: str, level: Isolation
) -> None:
    result = stress(mysql_lab, name, level, retries=30)
    assert per_order(mysql_lab, name) == dict.fromkeys(range(1, 51), 1)
    assert (result.tally.granted, result.tally.already_granted) == (50, 350)
    assert not result.tally.failed
    assert result.history_check is not None
    assert result.history_check.ok


@pytest.mark.stress
def test_a_strategy_whose_steps_batch_with_commit_holds_under_hot_load_on_innodb(
    mysql_lab: Lab,
) -> None:
    """A lock that decides nothing, then an insert that commits either way: the batches a
    pipeline would send together go one statement at a time on InnoDB (mysql_loop)."""
    strategy = Strategy(
        name="batched",
        summary="lock, INSERT IGNORE, commit: one round trip",
        steps=(
            Step("lock_order", "SELECT id FROM orders WHERE id = :order_id FOR UPDATE"),
            Step(
                "insert_if_absent",
                "INSERT IGNORE INTO red_packets (order_id, campaign_id, amount)"
                " VALUES (:order_id, :campaign_id, :amount)",
                on_row=End.GRANTED,
                on_no_row=End.ALREADY_GRANTED,
            ),
        ),
        requires_revision="0002",
        verdicts={level: Expected(Race.CORRECT) for level in Isolation},
    )
    closing, _open = batches(strategy)
    assert [(batch.steps, batch.commit) for batch in closing] == [((0, 1), True), ((1,), True)]
    result = run_stress(mysql_lab, StressPlan(strategy, RR, workers=8, orders=50))
    with mysql_lab.connect(Schema.CONSTRAINED) as conn:
        rows = mysql_lab.engine.run(conn, "SELECT order_id, count(*) FROM red_packets GROUP BY 1")
    assert dict(rows) == dict.fromkeys(range(1, 51), 1)
    assert (result.tally.granted, result.tally.already_granted) == (50, 350)
    assert not result.tally.failed


@pytest.mark.stress
def test_killed_connections_lose_and_duplicate_nothing_on_innodb(mysql_lab: Lab) -> None:
    result = stress(mysql_lab, "lock_first", RR, workers=8, orders=100, retries=10, kill_rate=40.0)
    assert per_order(mysql_lab, "lock_first") == dict.fromkeys(range(1, 101), 1)
    assert result.history_check is not None
    assert result.history_check.ok
    assert result.backends_killed > 0
    assert result.tally.connections_lost > 0


@pytest.mark.stress
def test_a_uniform_run_and_two_processes_on_innodb(mysql_lab: Lab) -> None:
    result = stress(
        mysql_lab, "on_conflict", RC, workload=Workload.UNIFORM, orders=200, attempts=1000,
        processes=2, workers=4,
    )  # fmt: skip
    assert result.tally.attempts == 1000
    assert max(per_order(mysql_lab, "on_conflict").values()) == 1
    assert result.correct


# -- the lab's databases and migrations ------------------------------------------------------


def test_the_same_migrations_move_the_duplicates_and_come_back(mysql_lab: Lab) -> None:
    migrate.downgrade(mysql_lab, Schema.CONSTRAINED, "0001")
    with mysql_lab.connect(Schema.CONSTRAINED) as conn:
        cursor = conn.cursor()
        cursor.execute("INSERT INTO orders (id, user_id, amount) VALUES (900001, 1, 10)")
        for _ in range(3):
            cursor.execute(
                "INSERT INTO red_packets (order_id, campaign_id, amount) VALUES (900001, 'c', 1)"
            )
    migrate.upgrade(mysql_lab, Schema.CONSTRAINED, "head")
    with mysql_lab.connect(Schema.CONSTRAINED) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT count(*) FROM red_packets WHERE order_id = 900001")
        assert cursor.fetchone() == (1,)
        cursor.execute("SELECT count(*) FROM red_packet_duplicates WHERE order_id = 900001")
        assert cursor.fetchone() == (2,)
        cursor.execute(
            "SELECT INDEX_NAME, NON_UNIQUE FROM information_schema.STATISTICS"
            " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'red_packets'"
            " AND INDEX_NAME LIKE %s",
            ("%red_packets_order_campaign",),
        )
        assert set(cursor.fetchall()) == {("uq_red_packets_order_campaign", 0)}
    migrate.downgrade(mysql_lab, Schema.CONSTRAINED, "0001")
    with mysql_lab.connect(Schema.CONSTRAINED) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT count(*) FROM red_packets WHERE order_id = 900001")
        assert cursor.fetchone() == (3,)  # nothing lost on the way down
    migrate.upgrade(mysql_lab, Schema.CONSTRAINED, "head")
    mysql_lab.reset(10)


def test_the_lab_refuses_a_database_it_did_not_create(
    mysql_lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    foreign = Lab(mysql_lab.server, "redpacket_foreign_test")
    with mysql_lab.connect(Schema.UNCONSTRAINED) as conn:
        cursor = conn.cursor()
        cursor.execute("CREATE DATABASE IF NOT EXISTS redpacket_foreign_test_unconstrained")
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS redpacket_foreign_test_unconstrained.orders (id INT)"
        )
        cursor.execute("INSERT INTO redpacket_foreign_test_unconstrained.orders VALUES (7)")
    try:
        url = plain_url(mysql_lab.server.url)
        for command in (["drop"], ["reset"], ["migrate"]):
            status = main(["--database-url", url, "--lab-database", foreign.name, *command])
            err = capsys.readouterr().err
            assert status == 2, command
            assert "exists but was not created by redpacket" in err
        with mysql_lab.connect(Schema.UNCONSTRAINED) as conn:
            cursor = conn.cursor()
            cursor.execute("SELECT id FROM redpacket_foreign_test_unconstrained.orders")
            assert cursor.fetchall() == ((7,),)  # untouched
    finally:
        with mysql_lab.connect(Schema.UNCONSTRAINED) as conn:
            conn.cursor().execute("DROP DATABASE IF EXISTS redpacket_foreign_test_unconstrained")


def test_a_password_in_a_mysql_url_is_never_printed(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["--database-url", "mysql://root:s3cr3t-pw@127.0.0.1:1/", "doctor"])
    err = capsys.readouterr().err
    assert status == 2
    assert "s3cr3t-pw" not in err
    assert err.startswith("redpacket: error: cannot connect to mysql://root:***@127.0.0.1:1/")
    assert len(err.strip().splitlines()) == 1


def test_innodb_snapshot_isolation_changes_the_lost_race_but_not_the_seed(
    mysql_lab: Lab, innodb_watch: None
) -> None:
    """innodb_snapshot_isolation=ON refuses a write to a row changed after the snapshot
    (1020); the seed's order row was only locked, never changed, so it still duplicates."""
    settings = (("innodb_snapshot_isolation", "ON"),)
    with Scheduler(mysql_lab, settings=settings) as strict:
        optimistic = strict.run(
            STRATEGIES["optimistic"], RR, parse_schedule("t2-waits", 4), RetryPolicy(0)
        )
        seed = strict.run(STRATEGIES["seed"], RR, parse_schedule("t2-waits", 4), RetryPolicy(0))
    assert (optimistic.verdict, optimistic.failed_sqlstates) == (Verdict.REFUSED, ("1020",))
    assert optimistic.settings == ("innodb_snapshot_isolation=ON",)
    why = str(explain(optimistic))
    assert "“Record has changed since last read in table" in why
    assert "with innodb_snapshot_isolation InnoDB refuses to lock or write" in why
    assert (seed.verdict, seed.red_packets) == (Verdict.DUPLICATE, 2)
    with Scheduler(mysql_lab) as default:
        usual = default.run(
            STRATEGIES["optimistic"], RR, parse_schedule("t2-waits", 4), RetryPolicy(0)
        )
    assert usual.verdict is Verdict.LOST_RACE  # off (10.11's default): the bump just misses


@pytest.mark.stress
def test_lock_timeouts_and_crossed_deadlocks_on_innodb(mysql_lab: Lab) -> None:
    """1205 after innodb_lock_wait_timeout, not retried; crossed pairs deadlock (1213), retried."""
    with mysql_lab.connect(Schema.UNCONSTRAINED, autocommit=False) as holder:
        mysql_lab.reset(5)
        cursor = holder.cursor()
        cursor.execute("SELECT id FROM orders FOR UPDATE")  # every order locked by an outsider
        result = run_stress(
            mysql_lab,
            StressPlan(STRATEGIES["lock_first"], RC, workers=2, orders=5, lock_timeout_ms=1000),
            reset=False,
        )
        holder.rollback()
    assert result.tally.failed == Counter({"1205": 10})  # every request timed out, none retried
    assert result.faults["lock_timeouts"] == 10
    crossed = stress(
        mysql_lab, "lock_first", RC, workers=4, orders=10, workload=Workload.CROSSED, retries=30
    )
    assert crossed.correct
    assert per_order(mysql_lab, "lock_first") == dict.fromkeys(range(1, 11), 1)


def test_the_deadlock_timeout_is_postgresqls(
    mysql_lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    url = plain_url(mysql_lab.server.url)
    argv = ["--database-url", url, "--lab-database", mysql_lab.name, "stress", "-n", "2",
            "--deadlock-timeout", "20"]  # fmt: skip
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        "redpacket: error: --deadlock-timeout is PostgreSQL's: InnoDB finds a deadlock as it"
        " forms\n"
    )


@pytest.mark.stress
def test_every_command_takes_a_mysql_url(
    mysql_server: object, worker_id_suffix: str, capsys: pytest.CaptureFixture[str],
    innodb_watch: None,
) -> None:  # fmt: skip
    assert isinstance(mysql_server, Server)
    base = ["--database-url", plain_url(mysql_server.url), "--lab-database",
            f"redpacket_cli_{worker_id_suffix}"]  # fmt: skip

    def run(*argv: str) -> str:
        status = main([*base, *argv])
        out, err = capsys.readouterr()
        assert status in (0, 1), (argv, err)
        return out

    assert "MariaDB" in run("doctor") or "MySQL" in run("doctor")
    doctor = json.loads(run("doctor", "--json"))
    mysqlclient = importlib.util.find_spec("MySQLdb") is not None
    assert doctor["driver"] == ("mysqlclient" if mysqlclient else "PyMySQL")
    assert doctor["stress_wire"] == ("MySQL C wire" if _c_wire() else "MySQL Python wire")
    assert ("halve the service's client CPU" in doctor["faster_driver"]) is not mysqlclient
    if not mysqlclient:  # the extra's name as the user types it (Rich once took it for markup)
        assert "pip install 'redpacket[mysql-fast]'" in run("doctor")
    assert "at revision 0002" in run("migrate")
    assert "10 orders loaded" in run("reset", "--orders", "10")
    assert "lock_check" in run("strategies")
    assert "granted (red packet" in run("grant", "3", "-s", "unique_catch")
    assert "already granted" in run("grant", "3", "-s", "unique_catch")
    explained = json.loads(run("explain", "lock_first", "-i", "repeatable-read", "--json"))
    assert explained["verdict"] == "correct"
    assert explained["server"].startswith(("MariaDB", "MySQL"))
    cells = json.loads(run("matrix", "--strategies", "seed", "--schedules", "t2-waits", "--json"))
    assert {c["isolation"]: c["verdict"] for c in cells}["repeatable-read"] == "duplicate"
    shown = json.loads(run("stress", "-s", "on_conflict", "-w", "4", "-n", "20", "--json"))
    assert shown["correct"]
    compare = ["compare", "--strategies", "seed,lock_first", "--isolation", "repeatable-read"]
    compared = json.loads(run(*compare, "--workers", "4", "-n", "10", "--json"))
    assert [r["verdict"] for r in compared["results"]] == ["duplicate", "correct"]
    assert "dropped" in run("drop")


@pytest.mark.stress
def test_a_worker_waiting_on_a_lock_never_stops_the_loop_on_innodb(mysql_lab: Lab) -> None:
    """Eight workers of one event loop queue on each order's row lock, each holder a
    worker of the same loop. Were a wait read blocking, the holder's COMMIT could not
    go out and every waiter would hit the 1 s lock wait timeout (1205)."""
    result = stress(mysql_lab, "lock_first", RR, workers=8, orders=30, lock_timeout_ms=1000)
    assert per_order(mysql_lab, "lock_first") == dict.fromkeys(range(1, 31), 1)
    assert (result.tally.granted, result.tally.already_granted) == (30, 210)
    assert not result.tally.failed
    assert "1205" not in result.tally.errors


def test_the_servers_refusal_is_printed_whole(
    capsys: pytest.CaptureFixture[str], mysql_server: Server
) -> None:
    """The driver's message, to its last character: the parenthesis closing the errno, the
    quote closing the host (both were cut off once)."""
    url = mysql_server.url
    refused = url.set(port=1).render_as_string(hide_password=False)
    nobody = url.set(username="redpacket_nobody", password=None).render_as_string(False)
    assert main(["--database-url", refused, "doctor"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("Connection refused)"), err
    assert main(["--database-url", nobody, "doctor"]) == 2
    err = capsys.readouterr().err.strip()
    assert re.search(
        r"Access denied for user 'redpacket_nobody'@'[^']+'( \(using password: NO\))?$", err
    ), err


@pytest.mark.parametrize(("level", "schedule"), [(RC, "t2-waits"), (RR, "t2-first-read")])
def test_a_missed_uncommitted_grant_is_explained_by_innodbs_rule_not_postgresqls(
    scheduler: Scheduler, level: Isolation, schedule: str
) -> None:
    """On InnoDB READ UNCOMMITTED does read dirty: "no isolation level shows uncommitted
    rows" and "the level makes no difference" are PostgreSQL's facts, not InnoDB's."""
    run = scheduled(scheduler, "naive", level, schedule)
    assert run.verdict is Verdict.DUPLICATE
    checks = [e for e in run.events if e.action == "find_grant" and e.kind is not Kind.WAIT]
    assert checks
    assert all(e.read != "current read" for e in checks)  # plain reads: the rule applies
    why = str(explain(run))
    assert "no isolation level" not in why
    assert "makes no difference" not in why
    if schedule == "t2-waits":
        assert "only READ UNCOMMITTED reads them dirty" in why
    else:
        assert "At read committed and at repeatable read alike an InnoDB consistent read" in why


@pytest.mark.parametrize("schedule", ["t2-first-read", "t2-waits"])
def test_a_locking_check_is_not_explained_by_the_rules_of_plain_reads(
    scheduler: Scheduler, schedule: str
) -> None:
    """lock_check's check is SELECT ... FOR UPDATE: on InnoDB a current read, which uses no
    snapshot; what consistent reads see is not what decided it."""
    run = scheduled(scheduler, "lock_check", RC, schedule)
    checks = [e for e in run.events if e.action == "lock_check" and e.read is not None]
    assert checks
    assert {e.read for e in checks} == {"current read"}
    why = str(explain(run))
    assert "consistent read" not in why
    assert "no isolation level" not in why
    assert "makes no difference" not in why
    if schedule == "t2-first-read":  # both locking reads find nothing (no gap locks at RC)
        assert run.verdict is Verdict.DUPLICATE
        assert "Both checks ran before either session inserted" in why
    else:  # T2's locking read waits on T1's uncommitted row, then reads it committed
        assert run.verdict is Verdict.CORRECT
        assert "a locking read reads the newest committed version" in why


@pytest.mark.parametrize("name", ["advisory", "lock_check"])
def test_a_wait_that_held_the_check_past_the_commit_is_credited_whatever_ended_it(
    scheduler: Scheduler, name: str
) -> None:
    """GET_LOCK's wait ends at RELEASE_LOCK (after the COMMIT), lock_check's at the COMMIT:
    either way the events show T2 waiting from before T1's commit to after it."""
    run = scheduled(scheduler, name, RC, "t2-waits")
    events = run.events
    commit = next(i for i, e in enumerate(events) if e.session == 1 and e.action == "commit")
    wait = next(i for i, e in enumerate(events) if e.session == 2 and e.kind is Kind.WAIT)
    resume = next(
        i for i, e in enumerate(events) if i > wait and e.session == 2 and e.kind is Kind.RESUME
    )
    assert wait < commit < resume  # held back past the winner's commit, by the server's account
    why = str(explain(run))
    assert "Nothing held back" not in why
    assert f"Waiting for T1 (#{wait + 1}) put T2's check" in why
    check = next(e for e in events[resume:] if e.session == 2 and e.role == "check")
    if check.read == "current read":
        assert "a locking read reads the newest committed version" in why
        assert "plain read" not in why
    else:
        assert scheduler.lab.engine.fresh_snapshot_rule in why


def test_the_legend_gives_mysqls_numbers_with_the_sqlstates_the_server_maps_them_to() -> None:
    from redpacket.engines.mysql import SQLSTATES
    from redpacket.report.marks import LEGEND

    said = dict(LEGEND)["error 40001 / error 1062"]
    for number in (1062, 1213):
        assert f"{number}: SQLSTATE {SQLSTATES[number]}" in said or (
            f"{number}: {SQLSTATES[number]}" in said
        )


def test_of_several_spec_files_one_for_postgresql_is_skipped_on_mariadb(
    mysql_lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    specs = Path(__file__).resolve().parent / "specs"
    with mysql_lab.connect(Schema.UNCONSTRAINED) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT VERSION()")
        if "MariaDB" not in str(cursor.fetchone()[0]):
            pytest.skip("the expected files are MariaDB's")
    url = mysql_lab.server.url.render_as_string(hide_password=False)
    files = [str(specs / "notices.spec"), str(specs / "basics.spec")]
    status = main(["--database-url", url, "--lab-database", mysql_lab.name, "spec", *files,
                   "--expected", str(specs / "expected")])  # fmt: skip
    printed = capsys.readouterr()
    assert status == 0, printed
    assert "# notices: skipped, written for postgresql, not MariaDB / MySQL" in printed.err
    rows = [line.split()[:2] for line in printed.out.splitlines()]
    assert rows == [["notices", "skipped"], ["basics", "ok"]]  # basics.mariadb.out compared
    # every file skipped: --json lists no run (a list, as for several files), exit 0
    only_pg = [str(specs / "notices.spec"), str(specs / "stuck.spec")]
    status = main(["--database-url", url, "--lab-database", mysql_lab.name, "spec", *only_pg,
                   "--json"])  # fmt: skip
    printed = capsys.readouterr()
    assert (status, json.loads(printed.out)) == (0, []), printed


def test_sql_the_server_refuses_ends_the_stress_run_before_it_starts_naming_the_step(
    mysql_lab: Lab, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """As on PostgreSQL: the server prepares every statement first (MySQL's PREPARE), so a
    wrong column is one line naming the strategy, the step and the server's message, and
    no figures."""
    source = """
from redpacket.strategies import STRATEGIES
from dataclasses import replace
seed = STRATEGIES["lock_first"]
steps = list(seed.steps)
steps[1] = replace(steps[1], sql=steps[1].sql.replace("SELECT id", "SELECT no_such_column"),
                   dialects={})
STRATEGY = replace(seed, name="typo", steps=tuple(steps), engine_verdicts={})
"""
    path = tmp_path / "typo.py"
    path.write_text(source)
    base = ["--database-url", plain_url(mysql_lab.server.url), "--lab-database", mysql_lab.name]
    for processes in ("1", "2"):
        status = main([*base, "stress", "-s", str(path), "-w", "4", "-n", "5", "-p", processes])
        out, err = capsys.readouterr()
        assert status == 2, (out, err)
        assert out == ""  # no table of zero figures
        (line,) = err.strip().splitlines()
        assert line.startswith(
            "redpacket: error: strategy 'typo', step find_grant: the server refuses its SQL"
            " (1054): Unknown column 'no_such_column' in '"  # 'SELECT' here; 'field list'
        ), err


def test_no_explained_run_on_innodb_has_an_empty_why(mysql_lab: Lab, innodb_watch: None) -> None:
    """All 135 cells (9 strategies x 3 levels x 5 schedules): each says what decided it;
    a check that saw the winner's grant at serializable says it was a locking read, as the
    timeline marks it."""
    from redpacket.interleave.matrix import cells, run_matrix
    from redpacket.interleave.schedule import SCHEDULE_NAMES

    todo = cells(list(STRATEGIES.values()), list(Isolation), list(SCHEDULE_NAMES))
    runs = run_matrix(mysql_lab, todo, RetryPolicy(0))
    assert len(runs) == 135
    empty = [(r.strategy, r.schedule) for r in runs if not str(explain(r)).strip()]
    assert empty == []
    for run in runs:
        why = str(explain(run))
        if "a current read, which uses no snapshot" in why:
            assert any(e.read == "current read" for e in run.events), why


@pytest.mark.parametrize("level", [RC, RR])
def test_the_insert_that_decided_is_credited_not_the_read_after_it(
    scheduler: Scheduler, level: Isolation
) -> None:
    """INSERT IGNORE waited on the winner and inserted nothing: that decided the attempt;
    the order read after it only told "granted already" from "no such order"."""
    run = scheduled(scheduler, "on_conflict", level, "t2-waits")
    inserted_nothing = [
        e for e in run.events
        if e.session == 2 and e.action == "insert_on_conflict" and e.kind is Kind.RESUME
    ]  # fmt: skip
    assert inserted_nothing
    assert not inserted_nothing[0].rows
    why = str(explain(run))
    assert "found the conflicting row and inserted nothing" in why
    assert "ended its grant as already granted" not in why
    assert "snapshot" not in why  # a write is a current read: no snapshot decided it


def test_the_two_engine_matrix_reads_at_a_normal_terminal_width(
    lab: Lab, mysql_lab: Lab, innodb_watch: None
) -> None:
    """At 80 columns every strategy, server and schedule is printed whole (the verdicts
    wrap in their cells): "condition…" and "MariaD…" named nothing."""
    from rich.console import Console

    from redpacket.interleave.matrix import cells, run_matrix
    from redpacket.report.matrix_view import matrix_table

    todo = cells([STRATEGIES["conditional_update"], STRATEGIES["seed"]], list(Isolation),
                 ["t2-first-read", "t2-begins-first"])  # fmt: skip
    runs = [run for one in (lab, mysql_lab) for run in run_matrix(one, todo, RetryPolicy(0))]
    console = Console(width=80, record=True, color_system=None)
    console.print(matrix_table(runs))
    text = console.export_text()
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    for run in runs:
        assert run.strategy in text
        assert run.server in text
        assert run.schedule in text


def test_a_deadlock_why_names_the_cycle_from_the_servers_waits(scheduler: Scheduler) -> None:
    """lock_check at repeatable read: both locking reads found nothing, each insert then
    needs what the other holds. The why names who waited for whom, as the server said."""
    run = scheduled(scheduler, "lock_check", RR, "t2-first-read")
    events = run.events
    refused = next(i for i, e in enumerate(events) if e.sqlstate == "1213")
    loser = events[refused].session
    waits = [
        i for i, e in enumerate(events[:refused])
        if e.kind is Kind.WAIT and e.session != loser and loser in e.waited_on
    ]  # fmt: skip
    assert waits  # the server reported the other session waiting for the loser
    wait = events[waits[-1]]
    why = str(explain(run))
    assert (
        f"The cycle: T{wait.session}'s step {wait.step_number} ({wait.action}, #{waits[-1] + 1})"
        f" was waiting for a lock T{loser} held"
    ) in why


@pytest.mark.parametrize(
    ("strategy", "level", "held_mode"),
    [
        # SERIALIZABLE turns the plain existence check into a shared locking read
        ("naive", Isolation.SERIALIZABLE, "S"),
        # FOR UPDATE takes exclusive next-key locks, on the gap too when it finds nothing
        ("lock_check", RR, "X"),
    ],
)
def test_a_deadlock_why_names_the_locks_the_server_reported(
    scheduler: Scheduler, strategy: str, level: Isolation, held_mode: str
) -> None:
    """Both checks found nothing and locked the gap where the red packet would go; each
    insert then wants an insert-intention lock into that gap, which waits for the other's
    gap lock. The locks come from InnoDB's own deadlock report, and the why says them."""
    run = scheduled(scheduler, strategy, level, "t2-first-read")
    failure = next(e for e in run.events if e.sqlstate == "1213")
    assert failure.locks, "InnoDB's report of this deadlock was not read"
    assert {c.waiting for c in failure.locks} == {1, 2}
    for conflict in failure.locks:
        assert conflict.wanted.kind == "insert intention"
        assert conflict.wanted.table == "red_packets"
        holders = {lock.holder for lock in conflict.held}
        assert holders == {3 - conflict.waiting}  # the other session, nobody else
        assert {lock.mode for lock in conflict.held} == {held_mode}
        assert all(lock.place == conflict.wanted.place for lock in conflict.held)
    why = str(explain(run))
    held = failure.locks[0].held[0]
    assert f"T1 and T2 each held {held.what} on {held.place}" in why
    assert "wanted an insert-intention lock there" in why
    assert " a exclusive" not in why
    assert json.loads(json.dumps(run.to_json(), default=str))["events"][run.events.index(failure)][
        "locks"
    ]


def test_a_claim_that_decided_is_not_explained_by_the_snapshot(scheduler: Scheduler) -> None:
    """conditional_update at repeatable read: the loser's UPDATE, a current read, found the
    order claimed; when it began or took a snapshot decided nothing, and the why must not
    offer BEGIN or the snapshot rule as the reason."""
    run = scheduled(scheduler, "conditional_update", RR, "t2-waits")
    claims = [e for e in run.events if e.role == "claim" and e.kind is not Kind.WAIT]
    loser = next(e for e in claims if not e.rows)
    assert loser.read == "current read"
    why = str(explain(run))
    assert "already claimed" in why
    assert "BEGIN" not in why
    assert scheduler.lab.engine.snapshot_rule not in why


@pytest.mark.parametrize("schedule", ["t2-first-read", "t1-first-read"])
def test_locking_checks_that_found_nothing_locked_nothing_at_read_committed(
    scheduler: Scheduler, schedule: str
) -> None:
    """lock_check at read committed duplicates on InnoDB: FOR UPDATE that finds no row takes
    no gap lock there, so neither insert waits. The why says so, and only because the run
    shows no wait at all."""
    run = scheduled(scheduler, "lock_check", RC, schedule)
    assert run.red_packets == 2
    assert not [e for e in run.events if e.kind is Kind.WAIT]
    checks = [e for e in run.events if e.role == "check"]
    assert all(e.read == "current read" and not e.rows for e in checks)
    why = str(explain(run))
    assert scheduler.lab.engine.empty_locking_read_rule(RC) in why
    assert "neither insert waited" in why
    at_rr = scheduled(scheduler, "lock_check", RR, schedule)  # gap locks: no duplicate there
    assert at_rr.red_packets == 1
    assert "neither insert waited" not in str(explain(at_rr))


def test_a_lost_version_race_says_why_the_check_missed_the_grant(scheduler: Scheduler) -> None:
    """optimistic at repeatable read: the loser's check ran after the winner's commit and
    found nothing, because it read a snapshot fixed before that commit; only the version
    check stopped it. The why names those events."""
    run = scheduled(scheduler, "optimistic", RR, "t2-first-read")
    events = run.events
    commit = next(i for i, e in enumerate(events) if e.action == "commit" and e.session == 1)
    check = next(i for i, e in enumerate(events) if e.role == "check" and e.session == 2)
    snapshot = next(i for i, e in enumerate(events) if e.takes_snapshot and e.session == 2)
    assert snapshot < commit < check
    assert not events[check].rows
    why = str(explain(run))
    assert "lost the race" in why
    bump = next(e for e in events if e.role == "bump" and e.session == 2 and not e.rows)
    assert bump.read == "current read"
    assert "an UPDATE is a current read on InnoDB" in why
    assert (
        f"ran after T1's commit (#{commit + 1}) and still found no red packet: it read T2's"
        f" snapshot from #{snapshot + 1}"
    ) in why


def test_mariadbs_handshake_version_is_labelled_by_the_real_version(mysql_lab: Lab) -> None:
    """The protocol's greeting says 5.5.5-10.11.x-MariaDB (a prefix for old clients); the
    spec runner reads that one, SELECT VERSION() the other: both name the same server."""
    engine = mysql_lab.engine
    with mysql_lab.connect(Schema.UNCONSTRAINED) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT VERSION()")
        selected = engine.server_label(str(cursor.fetchone()[0]))
    spec_server = engine.spec_server(mysql_lab.url_of(Schema.UNCONSTRAINED))
    try:
        greeted = engine.server_label(spec_server.version())
    finally:
        spec_server.close()
    assert greeted == selected
    assert "5.5.5" not in greeted


def test_a_deadlock_of_a_transaction_that_wrote_nothing_still_names_its_locks(
    scheduler: Scheduler,
) -> None:
    """optimistic at serializable: the victim had only read (shared-locking reads), so InnoDB
    gave it no transaction id and prints its locks as trx id 0; they are still its locks."""
    run = scheduled(scheduler, "optimistic", SER, "t2-first-read")
    failure = next(e for e in run.events if e.sqlstate == "1213")
    assert {c.waiting for c in failure.locks} == {1, 2}
    wanted = {(c.wanted.table, c.wanted.mode) for c in failure.locks}
    assert ("orders", "X") in wanted  # the version bump's row lock
    for conflict in failure.locks:
        assert {lock.holder for lock in conflict.held} == {3 - conflict.waiting}
    assert "The locks, as InnoDB reported this deadlock" in str(explain(run))
