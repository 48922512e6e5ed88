"""The proxy on PostgreSQL's wire, with real clients (psql, psycopg) and the real server.

The race's participants are psql processes running the seed's grant logic as a script
(``\\gset`` and ``\\if`` give psql the check-then-insert branch): unchanged programs
that know nothing of the lab, which is the point of the wire.
"""

from __future__ import annotations

import json
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from redpacket.cli import main
from redpacket.database.backends import Server
from redpacket.database.url import URL
from redpacket.engines.postgresql import ENGINE, conninfo
from redpacket.errors import LabError
from redpacket.race.controller import RaceError
from redpacket.race.wire_faults import parse_fault
from redpacket.race.wire_race import WireRace
from redpacket.wire.housekeeping import is_housekeeping
from redpacket.wire.link import PassThrough, connect_to
from redpacket.wire.proxy import Proxy
from redpacket.wire.tracer import Tracer
from tests.wire_support import Heard, proxied, seed_database_pg, sessions_left

PSQL = shutil.which("psql")
needs_psql = pytest.mark.skipif(PSQL is None, reason="psql (PostgreSQL's client) is not installed")

SEED = """\
BEGIN ISOLATION LEVEL {level};
SELECT id FROM orders WHERE id = 7;
SELECT id FROM orders WHERE id = 7 FOR UPDATE;
SELECT count(*) = 0 AS absent FROM red_packets WHERE order_id = 7 \\gset
\\if :absent
INSERT INTO red_packets (order_id) VALUES (7);
\\endif
COMMIT;
"""
CHECK = "SELECT order_id, count(*) FROM red_packets GROUP BY order_id HAVING count(*) > 1"
RESET = "DELETE FROM red_packets"


@pytest.fixture(scope="module")
def wire_db(server: Server, worker_id_suffix: str) -> Iterator[URL]:
    """A database of this module's own, with the seed's two tables and order 7."""
    yield from seed_database_pg(server, f"redpacket_wire_{worker_id_suffix}")


@pytest.fixture(autouse=True)
def no_session_left_open(wire_db: URL) -> Iterator[None]:
    """After every test: no half-open session on the server (its own view)."""
    yield
    left = sessions_left(wire_db)
    assert left == [], f"sessions left open: {left}"


def script(tmp_path: Path, level: str) -> str:
    path = tmp_path / f"grant-{level.replace(' ', '-')}.sql"
    path.write_text(SEED.format(level=level), encoding="utf-8")
    return f'psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" -f {path}'


def test_the_proxy_relays_simple_and_extended_queries_and_knows_the_session(
    wire_db: URL,
) -> None:
    proxy, heard = proxied(wire_db)
    try:
        with psycopg.connect(conninfo(proxy.url()), autocommit=True) as conn:
            pid = conn.execute("SELECT pg_backend_pid()").fetchone()
            assert conn.execute("SELECT %s::int + 1", (41,)).fetchone() == (42,)
            with pytest.raises(psycopg.errors.UniqueViolation) as refused:
                conn.execute("INSERT INTO orders VALUES (7)")
        assert pid is not None
        links = {link.session_id for link, _ in heard.requests}
        assert links == {pid[0]}  # BackendKeyData names the server's own session
        assert any("SELECT $1::int + 1" in r.statements for _, r in heard.requests)
        errors = [a.error for a in heard.answers if a.error]
        assert errors == [("23505", refused.value.diag.message_primary)]
    finally:
        proxy.close()


def test_a_client_at_sslmode_prefer_goes_on_in_plain_text_and_require_is_told(
    wire_db: URL,
) -> None:
    proxy, _ = proxied(wire_db)
    try:
        with psycopg.connect(conninfo(proxy.url()) + " sslmode=prefer") as conn:
            assert conn.pgconn.ssl_in_use is False
            assert conn.execute("SELECT 1").fetchone() == (1,)
        with pytest.raises(psycopg.OperationalError, match="SSL"):
            psycopg.connect(conninfo(proxy.url()) + " sslmode=require")
        proxy.settle()
        assert any("asked for TLS" in note for note in proxy.notes)
    finally:
        proxy.close()


CANCELLING_CLIENT = """
import sys, threading, psycopg
conn = psycopg.connect(sys.argv[1], autocommit=True)
threading.Timer(0.3, conn.cancel).start()  # the client's own cancel, as an impatient user's
try:
    conn.execute("SELECT pg_sleep(30)")
except psycopg.Error as exc:
    print(exc.sqlstate)
"""


def test_a_cancel_request_reaches_the_server(wire_db: URL) -> None:
    """In a process of its own, as a real client is (psycopg's binary libpq holds the GIL
    while it cancels, so a client in the proxy's own process could not be served)."""
    proxy, _ = proxied(wire_db)
    try:
        done = subprocess.run(
            [sys.executable, "-c", CANCELLING_CLIENT, conninfo(proxy.url())],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.stdout.strip() == "57014", done.stderr
    finally:
        proxy.close()


@needs_psql
def test_the_seed_duplicates_through_the_wire_at_repeatable_read(
    wire_db: URL, tmp_path: Path
) -> None:
    """t2-waits: T2 waits for T1's lock; at repeatable read PostgreSQL fixed T2's snapshot as
    its first statement started, so its check misses T1's red packet: two rows."""
    command = script(tmp_path, "REPEATABLE READ")
    race = WireRace(wire_db, [command, command], check=CHECK, reset=RESET, step_timeout=20)
    attempt = race.scheduled("t2-waits")
    assert attempt.broken == ((7, 2),)
    with psycopg.connect(conninfo(wire_db)) as conn:
        assert conn.execute("SELECT count(*) FROM red_packets").fetchone() == (2,)
    waits = [e for e in attempt.result.events if e.kind == "wait"]
    assert [(e.call, e.waited_on) for e in waits] == [(2, (1,))]  # the server's account
    assert "FOR UPDATE" in waits[0].sql
    assert [f.status for f in attempt.finished] == [0, 0]  # type: ignore[union-attr]


@needs_psql
def test_read_committed_fixes_the_seed_through_the_wire(wire_db: URL, tmp_path: Path) -> None:
    command = script(tmp_path, "READ COMMITTED")
    race = WireRace(wire_db, [command, command], check=CHECK, reset=RESET, step_timeout=20)
    assert race.scheduled("t2-waits").broken == ()
    with psycopg.connect(conninfo(wire_db)) as conn:
        assert conn.execute("SELECT count(*) FROM red_packets").fetchone() == (1,)


@needs_psql
def test_explore_through_the_wire_finds_the_shortest_breaking_schedule(
    wire_db: URL, tmp_path: Path
) -> None:
    """Five steps each (BEGIN is housekeeping, glued): C(10, 5) = 252 orders, but a call
    waiting for a lock cannot be chosen, so far fewer runs; as the in-process fixture
    finds for the same logic, the shortest break is T1:1,T2:end,T1:end."""
    command = script(tmp_path, "REPEATABLE READ")
    race = WireRace(wire_db, [command, command], check=CHECK, reset=RESET, step_timeout=20)
    found = race.explored()
    assert found.complete
    assert found.shortest is not None
    assert found.shortest.schedule == "T1:1,T2:end,T1:end"
    assert 0 < len(found.failing) < found.runs  # serial orders are correct
    serial = WireRace(wire_db, [command, command], check=CHECK, reset=RESET)
    assert serial.scheduled("serial").broken == ()
    fixed = script(tmp_path, "READ COMMITTED")
    held = WireRace(wire_db, [fixed, fixed], check=CHECK, reset=RESET, step_timeout=20).explored()
    assert held.complete
    assert held.runs > 1
    assert held.failing == [], str(held.shortest)  # every order of the fix holds


@needs_psql
def test_race_command_exit_statuses_and_json(
    wire_db: URL, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = wire_db.render_as_string(hide_password=False)
    broken = script(tmp_path, "REPEATABLE READ")
    fixed = script(tmp_path, "READ COMMITTED")
    base = ["race", "--upstream", url, "--check", CHECK, "--reset", RESET]
    assert main([*base, "--run", broken, "--run", broken, "--schedule", "t2-waits",
                 "--expect", "correct"]) == 1  # fmt: skip
    out = capsys.readouterr().out
    assert "verdict: broken" in out
    flat = " ".join(out.replace("│", " ").split())  # the table's cells, their lines joined
    assert "[waits for T1]" in flat
    # explain's table: T2 marked blocked from its wait to its return, rows as they ran
    assert "schedule t2-waits on PostgreSQL" in out
    assert out.count("┆ blocked") == 3  # T1's check, insert and COMMIT ran meanwhile
    assert "#2 returns [T1 let it go]" in flat
    assert main([*base, "--run", fixed, "--run", fixed, "--schedule", "t2-waits",
                 "--expect", "correct", "--json"]) == 0  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "correct"
    assert [p["status"] for p in data["participants"]] == [0, 0]
    assert any(e["kind"] == "wait" and e["waited_on"] == [1] for e in data["events"])


def refused_race(wire_db: URL, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[str, str]:
    """``redpacket race`` on the module's database, refused: exit status 2 and one line
    on stderr. What it printed (out, err), for the caller's own assertions."""
    url = wire_db.render_as_string(hide_password=False)
    assert main(["race", "--upstream", url, *args]) == 2
    captured = capsys.readouterr()
    assert len(captured.err.strip().splitlines()) == 1, captured.err
    return captured.out, captured.err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--run", "true", "--schedule", "serial"], "two --run commands or more"),
        (["--run", "true", "--run", "true"], "give --schedule S, --explore or --hammer N"),
        (["--run", "a", "--run", "b", "--explore", "--schedule", "serial"], "one of them"),
        (["--run", "a", "--run", "b", "--schedule", "serial", "--listen", "nope"], "--listen"),
        (["--run", "a", "--run", "b", "--schedule", "serial", "--expect", "correct"], "--check"),
    ],
)
def test_race_bad_input_is_one_line_and_status_2(
    wire_db: URL, args: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert says in refused_race(wire_db, capsys, *args)[1]


@pytest.mark.parametrize(
    "command",
    [
        ["race", "--run", "true", "--run", "true", "--schedule", "serial"],
        ["proxy"],
        ["proxy", "--pass-through"],
    ],
)
def test_an_unreachable_upstream_is_one_line_without_its_password(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:  # a port nobody listens on: bound, never listening
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        url = f"postgresql://postgres:s3cret-pw@127.0.0.1:{port}/shop"
        assert main([*command, "--upstream", url]) == 2
    captured = capsys.readouterr()
    assert "s3cret-pw" not in captured.err + captured.out
    assert f"cannot connect to postgresql://postgres:***@127.0.0.1:{port}/shop" in captured.err
    assert len(captured.err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("check", "says"),
    [
        ("DELETE FROM red_packets", "--check 'DELETE FROM red_packets' is not a query"),
        ("SELECT * FROM nowhere", "--check failed on the server: 42P01"),
        # a query that writes: refused by the read-only transaction it runs in
        (
            "WITH gone AS (DELETE FROM red_packets RETURNING *) SELECT * FROM gone WHERE false",
            "--check failed on the server: 25006",
        ),
        ("SELECT * INTO copied FROM red_packets", "--check failed on the server: 25006"),
    ],
)
def test_a_check_that_is_no_query_or_fails_stops_the_race_before_it_starts(
    wire_db: URL, check: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with psycopg.connect(conninfo(wire_db), autocommit=True) as conn:
        conn.execute(RESET)
        conn.execute("INSERT INTO red_packets (order_id) VALUES (7)")
    marker = "redpacket-never-started"
    out, err = refused_race(wire_db, capsys, "--check", check, "--run", f"echo {marker}",
                            "--run", "true", "--schedule", "serial")  # fmt: skip
    assert says in err
    assert marker not in out
    with psycopg.connect(conninfo(wire_db)) as conn:  # the user's rows are as they were
        assert conn.execute("SELECT count(*) FROM red_packets").fetchone() == (1,)
        conn.execute(RESET)


def test_a_check_may_open_with_a_comment_and_only_reads(wire_db: URL) -> None:
    check = "-- duplicates\n/* per order */ SELECT order_id FROM red_packets WHERE false"
    race = WireRace(wire_db, ["true", "true"], check=check)
    assert race._broken() == ()


def test_a_command_that_fails_before_its_first_step_is_told_with_its_status(
    wire_db: URL, capsys: pytest.CaptureFixture[str]
) -> None:
    failing = "echo 'grant.js: cannot find module pg' >&2; exit 3"
    _, err = refused_race(wire_db, capsys, "--check", CHECK, "--run", failing,
                          "--run", "true", "--schedule", "serial")  # fmt: skip
    assert (
        f"T1 ({failing}) exited with status 3 before its first step:"
        " grant.js: cannot find module pg"
    ) in err


@needs_psql
def test_a_command_that_sends_only_housekeeping_is_told_so(
    wire_db: URL, capsys: pytest.CaptureFixture[str]
) -> None:
    ping = f'{PSQL} "$DATABASE_URL" -c "SELECT 1"'
    _, err = refused_race(wire_db, capsys, "--check", CHECK, "--run", ping, "--run", ping,
                          "--schedule", "serial")  # fmt: skip
    assert f"T1 ({ping}) sent only statements that touch no table (SELECT 1)" in err


def test_a_command_that_never_reaches_the_proxy_is_named_and_ended(
    wire_db: URL, capsys: pytest.CaptureFixture[str]
) -> None:
    stuck = "exec sleep 97.125"  # a command line no other process has
    _, err = refused_race(wire_db, capsys, "--check", CHECK, "--run", stuck, "--run", "true",
                          "--schedule", "serial", "--step-timeout", "1")  # fmt: skip
    assert f"T1 ({stuck}) sent no statement through the proxy in 1 s" in err
    assert not still_running("sleep 97.125")


def still_running(command_line: str, within_s: float = 5.0) -> list[int]:
    """Processes whose command line is ``command_line`` (none, once a kill has landed)."""
    import psutil

    deadline = time.monotonic() + within_s
    while True:
        found = [
            p.pid for p in psutil.process_iter(["cmdline", "status"])
            if " ".join(p.info["cmdline"] or ()) == command_line
            and p.info["status"] != psutil.STATUS_ZOMBIE
        ]  # fmt: skip
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)  # a SIGKILL lands at once; the scan is what takes time


def test_a_function_that_fails_before_its_first_step_is_told_with_its_exception(
    wire_db: URL,
) -> None:
    from redpacket.race.proxied import ProxiedRace

    with ProxiedRace(wire_db) as proxied:

        def grant() -> None:
            raise ConnectionRefusedError("the pool is closed")

        def read() -> None:
            with psycopg.connect(proxied.url) as conn:
                conn.execute("SELECT id FROM orders")

        told = r"T1 \(grant\) raised ConnectionRefusedError before its first step: the pool is"
        with pytest.raises(RaceError, match=told):
            proxied.interleave(grant, read, schedule="serial")


def test_a_command_that_never_connects_is_named(wire_db: URL) -> None:
    race = WireRace(wire_db, ["true", "true"], check=CHECK, step_timeout=5)
    with pytest.raises(RaceError, match=r"T1 \(true\) ran to its end without a statement"):
        race.scheduled("serial")


def test_the_tracer_reports_waits_ends_and_refusals_from_the_server(wire_db: URL) -> None:
    records: list[dict[str, Any]] = []
    waits: list[dict[str, Any]] = []
    seen_waiting = threading.Event()

    def emit(record: dict[str, Any]) -> None:
        if record["event"] == "wait":
            waits.append(record)
            seen_waiting.set()
        else:
            records.append(record)

    proxy = Proxy(wire_db, ENGINE.wire_protocol()).start()
    tracer = Tracer(wire_db, ENGINE, emit)
    proxy.listener = tracer
    try:
        first = psycopg.connect(conninfo(proxy.url()))
        second = psycopg.connect(conninfo(proxy.url()))
        first.execute("SELECT id FROM orders WHERE id = 7 FOR UPDATE")
        blocked = threading.Thread(
            target=lambda: second.execute("SELECT id FROM orders WHERE id = 7 FOR UPDATE")
        )
        blocked.start()
        assert seen_waiting.wait(20)  # the tracer saw it from the server, live
        first.commit()
        blocked.join(10)
        second.rollback()
        with pytest.raises(psycopg.errors.UniqueViolation):
            first.execute("INSERT INTO orders VALUES (7)")
        first.rollback()
        first.close()
        second.close()
    finally:
        proxy.close()
        tracer.close()
    ends = [(r["connection"], r["end"]) for r in records]
    assert ends == [(1, "committed"), (2, "rolled back"), (1, "refused")]
    waited = records[1]["steps"][0]
    assert waited["waited_on"] == [1]  # connection 1 held the lock, as the server said
    assert records[2]["error"]["code"] == "23505"
    assert "waited for connection 1" in records[1]["text"]
    assert [(w["connection"], w["waits_for"]) for w in waits] == [(2, [1])]


@pytest.mark.parametrize(
    ("statements", "in_transaction", "housekeeping"),
    [
        (("SET extra_float_digits = 3",), False, True),
        (("BEGIN",), False, True),
        (("SHOW TRANSACTION ISOLATION LEVEL",), True, True),
        (("/* mysql-connector-j */ SELECT @@session.transaction_read_only",), False, True),
        (("SELECT version()",), False, True),
        (("SELECT set_config('TimeZone', 'UTC', false)",), False, True),  # Django's
        (("SELECT set_config('TimeZone', 'UTC', false)",), True, False),
        (("SELECT 1",), False, True),
        (("SELECT 1",), True, False),  # inside a transaction PostgreSQL takes the snapshot
        (("BEGIN", "SELECT 1"), False, False),
        (("START TRANSACTION WITH CONSISTENT SNAPSHOT",), False, False),
        (("SET autocommit = 1",), True, False),  # MySQL: commits the open transaction
        (("SELECT pg_advisory_xact_lock(7)",), True, False),
        (("SELECT GET_LOCK('grant-7', 10)",), False, False),
        (("SELECT id FROM orders WHERE id = 7",), False, False),
        (("COMMIT",), True, False),
    ],
)
def test_housekeeping_is_what_takes_no_snapshot_and_no_lock(
    statements: tuple[str, ...], in_transaction: bool, housekeeping: bool
) -> None:
    assert is_housekeeping(statements, in_transaction) is housekeeping


def test_proxy_command_traces_psql_as_json_lines(wire_db: URL) -> None:
    """``redpacket proxy --json`` in a process of its own, psql through it."""
    if PSQL is None:
        pytest.skip("psql (PostgreSQL's client) is not installed")
    url = wire_db.render_as_string(hide_password=False)
    with subprocess.Popen(
        [sys.executable, "-m", "redpacket", "proxy", "--upstream", url, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as tracer:  # fmt: skip
        try:
            assert tracer.stderr is not None
            assert tracer.stdout is not None
            first = tracer.stderr.readline()
            address = first.rsplit(" at ", 1)[1].strip()
            done = subprocess.run(
                [PSQL, "-X", "-q", address, "-c", "BEGIN", "-c", "SELECT count(*) FROM orders",
                 "-c", "COMMIT"], capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            record = json.loads(tracer.stdout.readline())
            assert record["end"] == "committed"
            sql = [step["sql"] for step in record["steps"]]
            assert sql == ["SELECT count(*) FROM orders", "COMMIT"]
        finally:
            tracer.terminate()
            tracer.wait(10)


RETRYING_GRANT = """\
import os, sys, psycopg
# A service's grant for request r1 with the usual retry on a lost connection. "blind"
# inserts one red packet per request without looking; "checked" looks first, in the same
# transaction, with the order locked.
mode = sys.argv[1]
for attempt in range(1, 4):
    try:
        with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
            if mode == "checked":
                conn.execute("SELECT id FROM orders WHERE id = 7 FOR UPDATE")
                found = conn.execute(
                    "SELECT count(*) FROM red_packets WHERE order_id = 7").fetchone()
                if found[0]:
                    print(f"attempt {attempt}: already granted")
                    break
            conn.execute("INSERT INTO red_packets (order_id) VALUES (7)")
        print(f"attempt {attempt}: granted")
        break
    except psycopg.OperationalError as exc:
        print(f"attempt {attempt}: connection lost ({type(exc).__name__}), retrying")
"""
ONE_PER_REQUEST = "SELECT order_id, count(*) FROM red_packets GROUP BY order_id HAVING count(*) > 1"


def retrying(tmp_path: Path, mode: str) -> str:
    path = tmp_path / "retrying_grant.py"
    path.write_text(RETRYING_GRANT, encoding="utf-8")
    return f"{sys.executable} {path} {mode}"


def test_cut_after_commit_a_blind_retry_grants_twice_and_the_cut_is_reported_unknown(
    wire_db: URL, tmp_path: Path
) -> None:
    """The server committed T1's grant; the proxy cut T1 before it heard. T1 retries on a
    new connection (still T1: the cut participant's next connection is its own), and a
    grant that does not look first inserts a second red packet for the same request."""
    blind, checked = retrying(tmp_path, "blind"), retrying(tmp_path, "checked")
    race = WireRace(wire_db, [blind, checked], check=ONE_PER_REQUEST, reset=RESET,
                    step_timeout=20, faults=[parse_fault("cut-after-commit:T1", 2)])  # fmt: skip
    attempt = race.scheduled("serial")
    with psycopg.connect(conninfo(wire_db)) as conn:
        assert conn.execute("SELECT count(*) FROM red_packets").fetchone() == (2,)
    assert attempt.broken == ((7, 2),)
    [cut] = attempt.cuts
    assert (cut.fault, cut.participant, cut.sql, cut.server) == (
        "cut-after-commit",
        1,
        "COMMIT",
        "committed",
    )
    t1, t2 = attempt.finished
    assert "attempt 1: connection lost" in t1.output  # type: ignore[union-attr]
    assert "attempt 2: granted" in t1.output  # type: ignore[union-attr]
    assert "attempt 1: already granted" in t2.output  # type: ignore[union-attr]
    t1_sql = [e.sql for e in attempt.result.events if e.call == 1]
    assert t1_sql == ["INSERT INTO red_packets (order_id) VALUES (7)", "COMMIT",
                      "INSERT INTO red_packets (order_id) VALUES (7)", "COMMIT"]  # fmt: skip
    marks = [(e.call, e.sql, e.error[0]) for e in attempt.result.events if e.error]
    assert marks == [(1, "COMMIT", "cut-after-commit")]  # the fault's mark, not the server's
    assert "[cut-after-commit: the server" in attempt.result.timeline


def test_cut_after_commit_a_checked_retry_sees_its_own_grant(wire_db: URL, tmp_path: Path) -> None:
    checked = retrying(tmp_path, "checked")
    race = WireRace(wire_db, [checked, checked], check=ONE_PER_REQUEST, reset=RESET,
                    step_timeout=20, faults=[parse_fault("cut-after-commit:T1", 2)])  # fmt: skip
    attempt = race.scheduled("serial")
    assert attempt.broken == ()
    t1 = attempt.finished[0]
    assert "attempt 2: already granted" in t1.output  # type: ignore[union-attr]
    assert [c.server for c in attempt.cuts] == ["committed"]


def test_cut_before_commit_the_server_rolls_back_and_the_retry_grants(
    wire_db: URL, tmp_path: Path
) -> None:
    checked = retrying(tmp_path, "checked")
    race = WireRace(wire_db, [checked, checked], check=ONE_PER_REQUEST, reset=RESET,
                    step_timeout=20, faults=[parse_fault("cut-before-commit:T1", 2)])  # fmt: skip
    attempt = race.scheduled("serial")
    assert attempt.broken == ()
    with psycopg.connect(conninfo(wire_db)) as conn:
        assert conn.execute("SELECT count(*) FROM red_packets").fetchone() == (1,)
    [cut] = attempt.cuts
    assert cut.server.startswith("rolled back")
    t1, t2 = attempt.finished
    assert "attempt 1: connection lost" in t1.output  # type: ignore[union-attr]
    assert "attempt 2: granted" in t1.output  # type: ignore[union-attr]
    assert "already granted" in t2.output  # type: ignore[union-attr]


@needs_psql
def test_hammer_through_the_wire_breaks_the_seed_and_not_the_fix(
    wire_db: URL, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = wire_db.render_as_string(hide_password=False)
    base = ["race", "--upstream", url, "--check", CHECK, "--reset", RESET, "--json"]
    broken, fixed = script(tmp_path, "REPEATABLE READ"), script(tmp_path, "READ COMMITTED")
    assert main([*base, "--run", broken, "--run", broken, "--hammer", "5",
                 "--expect", "correct"]) == 1  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert data["gated"] == 5  # every attempt's first steps went together
    assert data["broken_attempts"], data  # released together, the seed breaks
    with psycopg.connect(conninfo(wire_db)) as conn:  # the last attempt's rows, as counted
        count = conn.execute("SELECT count(*) FROM red_packets").fetchone()
    assert count == ((2,) if 5 in data["broken_attempts"] else (1,))
    assert main([*base, "--run", fixed, "--run", fixed, "--hammer", "5",
                 "--fault", "latency:5", "--expect", "correct"]) == 0  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert data["broken_attempts"] == []
    assert data["outcomes"] == {"exited 0": 10}


@pytest.mark.parametrize(
    ("text", "says"),
    [("cut-after-commit:T3", "T1 to T2"), ("latency:-1", "milliseconds"), ("cut:T1", "give")],
)
def test_bad_faults_are_one_line(
    wire_db: URL, text: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = wire_db.render_as_string(hide_password=False)
    argv = ["race", "--upstream", url, "--run", "a", "--run", "b", "--schedule", "serial",
            "--fault", text]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says in err
    assert len(err.strip().splitlines()) == 1


SERVICE = """\
import os, queue, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import psycopg

level = sys.argv[2]
pool = queue.Queue()
for _ in range(2):  # the service's pool, opened before any request
    pool.put(psycopg.connect(os.environ["DATABASE_URL"]))


class Grant(BaseHTTPRequestHandler):
    def do_POST(self):
        conn = pool.get()
        try:
            conn.execute(f"SET TRANSACTION ISOLATION LEVEL {level}")
            conn.execute("SELECT id FROM orders WHERE id = 7")
            conn.execute("SELECT id FROM orders WHERE id = 7 FOR UPDATE")
            if not conn.execute("SELECT 1 FROM red_packets WHERE order_id = 7").fetchone():
                conn.execute("INSERT INTO red_packets (order_id) VALUES (7)")
            conn.commit()
        finally:
            pool.put(conn)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"granted")

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Grant).serve_forever()
"""


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize(("level", "broken"), [("REPEATABLE READ", ((7, 2),)),
                                               ("READ COMMITTED", ())])  # fmt: skip
def test_a_long_running_service_is_raced_through_its_pool(
    wire_db: URL, tmp_path: Path, level: str, broken: tuple[tuple[int, int], ...]
) -> None:
    """--serve starts the service once (its pool's two connections open before the race);
    each --run is an HTTP request, and its participant is the pooled connection that
    carries the first step after the request was fired."""
    path = tmp_path / "service.py"
    path.write_text(SERVICE, encoding="utf-8")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    request = f"curl -sf -X POST http://127.0.0.1:{port}/grant"
    race = WireRace(wire_db, [request, request], check=CHECK, reset=RESET, step_timeout=20,
                    serve=f'{sys.executable} {path} {port} "{level}"',
                    ready=f"127.0.0.1:{port}")  # fmt: skip
    attempt = race.scheduled("t2-waits")
    assert attempt.broken == broken
    assert [f.output for f in attempt.finished] == ["granted", "granted"]  # type: ignore[union-attr]
    waits = [(e.call, e.waited_on) for e in attempt.result.events if e.kind == "wait"]
    assert waits == [(2, (1,))]  # T2's FOR UPDATE on the pool's other connection
    sessions = {e.call: s.session_id for e in attempt.result.events for s in
                attempt.result.calls[e.call - 1].statements}  # fmt: skip
    assert len(set(sessions.values())) == 2


def test_ready_that_never_answers_is_one_line(wire_db: URL) -> None:
    race = WireRace(wire_db, ["true", "true"], serve="sleep 30", ready="127.0.0.1:1",
                    ready_timeout=1)  # fmt: skip
    with pytest.raises(LabError, match=r"^--ready 127\.0\.0\.1:1 did not answer within 1 s$"):
        race.scheduled("serial")
    exited = WireRace(wire_db, ["true", "true"], serve="exit 3", ready="127.0.0.1:1")
    with pytest.raises(LabError, match="--serve exited with status 3 before it was ready"):
        exited.scheduled("serial")


def test_a_closed_proxy_frees_its_port_at_once(wire_db: URL) -> None:
    """Django reads DATABASES once, so a test suite may put a proxy on the same port test
    after test: closing must release it (an accept() under way kept it bound)."""
    first = Proxy(wire_db, ENGINE.wire_protocol()).start()
    port = first.port
    first.close()
    second = Proxy(wire_db, ENGINE.wire_protocol(), ("127.0.0.1", port)).start()
    try:
        with psycopg.connect(conninfo(second.url())) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        second.close()


def test_an_upstream_on_a_unix_socket_is_reached_by_it_and_clients_by_the_proxy(
    wire_db: URL,
) -> None:
    """The embedded server listens on a socket only (``?host=/tmp/...``): the proxy must
    reach it there, not 127.0.0.1:5432 (another server), and its URL must not pass the
    socket on, or clients would skip the proxy."""
    with psycopg.connect(conninfo(wire_db)) as probe:
        row = probe.execute("SHOW unix_socket_directories").fetchone()
    assert row is not None
    folder = row[0].split(",")[0].strip()
    by_socket = wire_db.set(host=None, port=None).update_query_dict({"host": folder})
    proxy = Proxy(by_socket, ENGINE.wire_protocol()).start()
    try:
        assert "host" not in proxy.url().query
        with psycopg.connect(conninfo(proxy.url())) as client:
            # no client address: the server was reached by its socket, here by the proxy
            address = client.execute("SELECT inet_client_addr()").fetchone()
            assert address == (None,)
            assert client.info.port == proxy.port
        assert len(proxy.links) == 1
    finally:
        proxy.close()


SYNC = b"S\x00\x00\x00\x04"
THREE_READS = [
    "SELECT id FROM orders WHERE id = $1",
    "SELECT id + 1 FROM orders WHERE id = $1",
    "SELECT id + 2 FROM orders WHERE id = $1",
]


def test_a_flushed_request_is_counted_even_when_its_answer_beats_the_proxy(
    wire_db: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    """asyncpg sends Parse, Describe, Flush, then Bind, Execute, Sync. The relay must count
    the Sync's answer before the Sync goes: on a loaded machine the server's
    ReadyForQuery was relayed first, the late count made the relay think the next
    request was still in flight, and that step escaped the race (a schedule that always
    breaks passed). Here the upstream socket holds every Sync's sender until the answer
    has been heard, which is that interleaving, forced."""
    asyncpg = pytest.importorskip("asyncpg")
    import asyncio

    import redpacket.wire.proxy as proxy_module

    heard_answers = threading.Semaphore(0)

    class HeldAtSync(socket.socket):
        def sendall(self, data: Any, flags: int = 0) -> None:
            super().sendall(data, flags)
            if bytes(data).endswith(SYNC):
                heard_answers.acquire(timeout=3)  # the answer is in before we go on

    def connect_held(address: Any, timeout: float) -> socket.socket:
        sock = connect_to(address, timeout)
        return HeldAtSync(sock.family, sock.type, sock.proto, fileno=sock.detach())

    monkeypatch.setattr(proxy_module, "connect_to", connect_held)
    proxy = Proxy(wire_db, ENGINE.wire_protocol()).start()
    statements: list[str] = []

    class Counting(PassThrough):
        def before(self, link: Any, request: Any) -> bool:
            return True

        def after(self, link: Any, request: Any, answer: Any) -> None:
            statements.extend(request.statements)
            heard_answers.release()

    proxy.listener = Counting()

    async def fetches() -> None:
        conn = await asyncpg.connect(proxy.url().render_as_string(hide_password=False))
        try:
            for sql in THREE_READS:
                assert await conn.fetchval(sql, 7)
        finally:
            await conn.close()

    try:
        asyncio.run(fetches())
    finally:
        proxy.close()
    assert [s for s in statements if s in THREE_READS] == THREE_READS


def pipelined_grant(url: str, level: psycopg.IsolationLevel) -> None:
    """The seed's grant in psycopg 3's pipeline mode: the reads go out together, and the
    INSERT is sent on, before the pipeline's Sync, once the check's row has been read."""
    with psycopg.connect(url) as conn:
        conn.isolation_level = level
        with conn.pipeline():
            conn.execute("SELECT id FROM orders WHERE id = %s", (7,))
            conn.execute("SELECT id FROM orders WHERE id = %s FOR UPDATE", (7,))
            found = conn.execute("SELECT 1 FROM red_packets WHERE order_id = %s", (7,))
            if found.fetchone() is None:
                conn.execute("INSERT INTO red_packets (order_id) VALUES (%s)", (7,))


@pytest.mark.parametrize(
    ("level", "packets"),
    [(psycopg.IsolationLevel.REPEATABLE_READ, 2), (psycopg.IsolationLevel.READ_COMMITTED, 1)],
    ids=["repeatable read", "read committed"],
)
def test_psycopg_pipeline_mode_is_raced_a_pipeline_a_step(
    wire_db: URL, level: psycopg.IsolationLevel, packets: int
) -> None:
    from redpacket.race.proxied import ProxiedRace

    def count() -> int:
        with psycopg.connect(conninfo(wire_db)) as conn:
            row = conn.execute("SELECT count(*) FROM red_packets").fetchone()
        assert row is not None
        return int(row[0])

    def reset() -> None:
        with psycopg.connect(conninfo(wire_db)) as conn:
            conn.execute(RESET)

    reset()
    with ProxiedRace(wire_db) as proxied:
        grant = lambda: pipelined_grant(proxied.url, level)  # noqa: E731
        # a pipeline is one round trip: T1's (its lock taken, its INSERT sent) then T2's,
        # which waits for T1's lock, then T1's COMMIT
        result = proxied.interleave(grant, grant, schedule="t1-first-read")
        assert count() == packets
        t1_steps = [e.sql for e in result.events if e.call == 1 and e.kind == "done"]
        assert len(t1_steps) == 2  # the pipeline, then COMMIT (psycopg's lone Flush is none)
        assert t1_steps[1] == "COMMIT"
        waits = [e for e in result.events if e.kind == "wait"]
        assert [(e.call, e.waited_on) for e in waits] == [(2, (1,))]  # the server's account
        t1_pipeline = next(e for e in result.events if e.call == 1 and e.kind == "done")
        # one step: the three reads and the INSERT sent on before the pipeline's Sync
        assert "FOR UPDATE" in t1_pipeline.sql
        assert "INSERT INTO red_packets" in t1_pipeline.sql
        assert "(bound: 7, 7, 7, 7)" in t1_pipeline.sql

        def one_grant() -> None:
            assert count() == 1

        found = proxied.explore(grant, grant, check=one_grant, reset=reset)
        assert found.complete
        if packets == 1:
            assert found.failing == []
        else:
            assert found.shortest is not None  # T2's pipeline waits on T1's lock, then ends
            assert found.shortest.schedule == "T1:1,T2:1,T1:end,T2:end"
    reset()


REQUIRING_TLS = ' "$DATABASE_URL?sslmode=require" -c "SELECT id FROM orders"'


@needs_psql
def test_a_participant_that_requires_tls_is_told_why_in_one_line(
    wire_db: URL, capsys: pytest.CaptureFixture[str]
) -> None:
    strict = f"{PSQL}{REQUIRING_TLS}"
    _, err = refused_race(wire_db, capsys, "--check", CHECK, "--run", strict,
                          "--run", strict, "--schedule", "serial")  # fmt: skip
    assert f"T1 ({strict}) exited with status 2 before its first step" in err
    assert "server does not support SSL, but SSL was required" in err  # psql's own words


def test_a_pipelining_client_has_every_request_held_and_answered_in_order(wire_db: URL) -> None:
    """libpq's pipeline mode, a Sync after each statement, sends its second request while
    the first is still unanswered (here: waiting, on the server, for a lock held
    elsewhere). Each is a request of its own, heard before it goes, answered in order;
    the relay once passed the second one unheard, as if it were the first's COPY data."""
    with psycopg.connect(conninfo(wire_db)) as conn:
        conn.execute(RESET)  # other tests of the module leave their grants
    proxy, _ = proxied(wire_db)
    heard: list[tuple[str, ...]] = []
    answered: list[tuple[tuple[str, ...], tuple[str, ...]]] = []

    class InOrder(Heard):
        def before(self, link: Any, request: Any) -> bool:
            heard.append(request.statements)
            return True

        def after(self, link: Any, request: Any, answer: Any) -> None:
            answered.append((request.statements, answer.tags))

    proxy.listener = InOrder()
    rows: list[Any] = []

    def pipelined() -> None:
        rows.extend(libpq_pipelined_reads(conninfo(proxy.url())))

    try:
        with psycopg.connect(conninfo(wire_db)) as holder:
            holder.execute("SELECT id FROM orders WHERE id = 7 FOR UPDATE")
            client = threading.Thread(target=pipelined)
            client.start()
            deadline = time.monotonic() + 20
            while not any(ENGINE.blocked_by(holder, link.session_id or 0) for link in proxy.links):
                assert time.monotonic() < deadline, "the client's first request never waited"
                time.sleep(0.01)  # polling the server's own view of the wait
            holder.commit()
        client.join(20)
    finally:
        proxy.close()
    assert rows == [7, 0]
    statements = [
        ("SELECT id FROM orders WHERE id = $1 FOR UPDATE",),
        ("SELECT count(*) FROM red_packets",),
    ]
    assert [h for h in heard if h] == statements  # (and the pipeline's closing lone Sync)
    assert [a for a in answered if a[0]] == [(statements[0], ("SELECT 1",)),
                                             (statements[1], ("SELECT 1",))]  # fmt: skip


def test_copy_in_and_out_pass_through_the_proxy_as_one_request_each(wire_db: URL) -> None:
    """COPY's data is part of its request's answer (or of the request itself): it passes
    at once, and the COPY is heard as one request with its own ending."""
    with psycopg.connect(conninfo(wire_db)) as conn:
        conn.execute(RESET)  # other tests of the module leave their grants
    proxy, heard = proxied(wire_db)
    try:
        with psycopg.connect(conninfo(proxy.url())) as conn:
            with conn.cursor().copy("COPY red_packets (order_id) FROM STDIN") as copy:
                for _ in range(1000):
                    copy.write_row((7,))
            conn.commit()
            with conn.cursor().copy("COPY (SELECT order_id FROM red_packets) TO STDOUT") as copy:
                copied = [row for row in copy.rows()]
            conn.execute(RESET)
    finally:
        proxy.close()
    assert len(copied) == 1000
    tags = [answer.tags for answer in heard.answers]
    assert ("COPY 1000",) in tags  # in, ended where the server ended it
    assert tags.count(("COPY 1000",)) == 2  # and out
    assert tags[-1] == ("COMMIT",)  # every later answer in step


def libpq_pipelined_reads(conninfo_text: str) -> list[int]:
    """libpq's own pipeline mode: two reads, a Sync after each, both written before any
    answer is read; the first is a locking read of order 7."""
    found: list[int] = []
    with psycopg.connect(conninfo_text, autocommit=True) as conn:
        pgconn = conn.pgconn
        pgconn.enter_pipeline_mode()
        pgconn.send_query_params(b"SELECT id FROM orders WHERE id = $1 FOR UPDATE", [b"7"])
        pgconn.pipeline_sync()
        pgconn.send_query_params(b"SELECT count(*) FROM red_packets", None)
        pgconn.pipeline_sync()
        while pgconn.flush():
            pass
        syncs = 0
        while syncs < 2:
            select.select([pgconn.socket], [], [], 5.0)  # an answer to read
            pgconn.consume_input()
            while syncs < 2 and not pgconn.is_busy():
                result = pgconn.get_result()
                if result is None:
                    continue  # between one statement's results and the next's
                if result.status == psycopg.pq.ExecStatus.PIPELINE_SYNC:
                    syncs += 1
                elif result.status == psycopg.pq.ExecStatus.TUPLES_OK:
                    found.append(int(result.get_value(0, 0) or b"0"))
    return found


def test_pipelined_requests_of_a_race_are_one_step(wire_db: URL) -> None:
    """A participant that pipelines two requests: the second is sent before the first is
    answered, so both are one round trip, one step, ended by the last answer (the race
    once parked the second as a new step and never saw the first end)."""
    from redpacket.race.proxied import ProxiedRace

    with psycopg.connect(conninfo(wire_db)) as conn:
        conn.execute(RESET)  # other tests of the module leave their grants
    with ProxiedRace(wire_db, step_timeout=10) as proxied:
        reads = lambda: libpq_pipelined_reads(proxied.url)  # noqa: E731
        result = proxied.interleave(reads, reads, schedule="serial")
    assert result.results == [[7, 0], [7, 0]]
    steps = [(e.call, e.sql) for e in result.events if e.kind == "done"]
    both = (
        "SELECT id FROM orders WHERE id = $1 FOR UPDATE; SELECT count(*) FROM red_packets"
        "  (bound: 7)"
    )
    assert steps == [(1, both), (2, both)], steps


def housekeeping_first_pipeline(url: str) -> None:
    """A pipeline whose first part (before psycopg's Flush) is housekeeping."""
    with psycopg.connect(url) as conn, conn.pipeline():
        conn.execute("SHOW transaction_isolation").fetchone()
        conn.execute("SELECT id FROM orders WHERE id = %s FOR UPDATE", (7,))
        conn.execute("SELECT count(*) FROM red_packets").fetchone()


def test_a_flushed_request_that_grows_past_housekeeping_is_held(wire_db: URL) -> None:
    """The part before the Flush touched no table; the Bind after it does: it is a step,
    held and raced, not let through with the housekeeping it followed."""
    from redpacket.race.proxied import ProxiedRace

    with ProxiedRace(wire_db, step_timeout=10) as proxied:
        run = lambda: housekeeping_first_pipeline(proxied.url)  # noqa: E731
        result = proxied.interleave(run, run, schedule="t1-first-read")
    steps = [e.sql for e in result.events if e.call == 1 and e.kind == "done"]
    assert any("FOR UPDATE" in sql for sql in steps), steps
    waits = [(e.call, e.waited_on) for e in result.events if e.kind == "wait"]
    assert waits == [(2, (1,))]  # T2's pipeline waits for T1's lock, as the server says


def test_a_function_call_goes_through_and_is_answered(wire_db: URL) -> None:
    """FunctionCall (psycopg2's large objects, pgjdbc's Fastpath) ends at its own
    ReadyForQuery: it once waited in the proxy for a Sync that never comes."""
    psycopg2 = pytest.importorskip("psycopg2")
    proxy, heard = proxied(wire_db)
    written: list[int] = []

    def large_object() -> None:
        conn = psycopg2.connect(proxy.url().render_as_string(hide_password=False))
        try:
            large = conn.lobject(mode="wb")
            written.append(large.write(b"seven"))
            large.unlink()
            conn.rollback()
        finally:
            conn.close()

    client = threading.Thread(target=large_object, daemon=True)
    try:
        client.start()
        client.join(20)
        assert not client.is_alive(), "the FunctionCall was never answered"
    finally:
        proxy.close()  # a client still waiting gets its connection closed
    assert written == [5]
    asked = [request for _link, request in heard.requests if not request.closes]
    assert len(heard.answers) == len(asked)  # every request answered (Terminate is not)
