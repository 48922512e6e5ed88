"""The proxy on MySQL's wire, with real clients (PyMySQL, the mariadb client) and MariaDB.

The race's participants are Python programs on PyMySQL that read ``DATABASE_URL`` and run
the seed's grant logic, as a service would: they know nothing of the lab.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from redpacket.cli import main
from redpacket.database.backends import Server
from redpacket.database.url import URL
from redpacket.engines.mysql import ENGINE
from redpacket.race.wire_faults import parse_fault
from redpacket.race.wire_race import WireRace
from redpacket.wire.link import Answer, Link, PassThrough, Request
from redpacket.wire.proxy import Proxy
from redpacket.wire.tracer import Tracer
from tests.wire_support import mysql_connect, proxied, seed_database_mysql, sessions_left

MARIADB = shutil.which("mariadb") or shutil.which("mysql")
needs_client = pytest.mark.skipif(MARIADB is None, reason="the mariadb client is not installed")

GRANT = """\
import os, sys
from urllib.parse import unquote, urlsplit
import pymysql
url = urlsplit(os.environ["DATABASE_URL"])
conn = pymysql.connect(host=url.hostname, port=url.port, user=unquote(url.username or "root"),
                       password=unquote(url.password or ""), database=url.path.lstrip("/"))
cur = conn.cursor()
cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL " + sys.argv[1])
cur.execute("BEGIN")
cur.execute("SELECT id FROM orders WHERE id = %s", (7,))
cur.execute("SELECT id FROM orders WHERE id = %s FOR UPDATE", (7,))
cur.execute("SELECT count(*) FROM red_packets WHERE order_id = %s", (7,))
if cur.fetchone()[0] == 0:
    cur.execute("INSERT INTO red_packets (order_id) VALUES (%s)", (7,))
conn.commit()
"""
CHECK = "SELECT order_id, count(*) FROM red_packets GROUP BY order_id HAVING count(*) > 1"
RESET = "DELETE FROM red_packets"


connect = mysql_connect


@pytest.fixture(scope="module")
def wire_db(mysql_server: Server, worker_id_suffix: str) -> Iterator[URL]:
    """A database of this module's own, with the seed's two tables and order 7."""
    yield from seed_database_mysql(mysql_server, f"redpacket_wire_{worker_id_suffix}")


@pytest.fixture(autouse=True)
def no_session_left_open(wire_db: URL) -> Iterator[None]:
    """After every test: no half-open session on the server (its own view)."""
    yield
    left = sessions_left(wire_db)
    assert left == [], f"sessions left open: {left}"


def grant(tmp_path: Path, level: str) -> str:
    path = tmp_path / "grant.py"
    path.write_text(GRANT, encoding="utf-8")
    return f'{sys.executable} {path} "{level}"'


def test_the_proxy_relays_queries_results_and_errors_and_knows_the_session(
    wire_db: URL,
) -> None:
    proxy, heard = proxied(wire_db)
    try:
        flags = pymysql.constants.CLIENT.MULTI_STATEMENTS
        with connect(proxy.url(), client_flag=flags) as conn, conn.cursor() as cur:
            cur.execute("SELECT CONNECTION_ID()")
            (session,) = cur.fetchone()
            cur.execute("SELECT id FROM orders; SELECT 1, 2")  # two result sets, one answer
            assert cur.fetchall() == ((7,),)
            assert cur.nextset()
            assert cur.fetchall() == ((1, 2),)
            cur.execute("BEGIN")
            cur.execute("INSERT INTO red_packets (order_id) VALUES (7)")
            with pytest.raises(pymysql.err.IntegrityError) as refused:
                cur.execute("INSERT INTO orders VALUES (7)")
            cur.execute("ROLLBACK")
            cur.execute("SELECT count(*) FROM red_packets")
            assert cur.fetchone() == (0,)
        assert {link.session_id for link, _ in heard.requests} == {session}  # the greeting's id
        by_sql = {r.sql: a for (_, r), a in zip(heard.requests, heard.answers, strict=False)}
        assert by_sql["SELECT id FROM orders; SELECT 1, 2"].tags == ("SELECT 1", "SELECT 1")
        assert by_sql["INSERT INTO red_packets (order_id) VALUES (7)"].tags == ("INSERT 1",)
        assert by_sql["INSERT INTO red_packets (order_id) VALUES (7)"].in_transaction
        code, message = refused.value.args
        assert by_sql["INSERT INTO orders VALUES (7)"].error == (str(code), message)
        assert by_sql["INSERT INTO orders VALUES (7)"].in_transaction  # 1062: statement only
        assert not by_sql["ROLLBACK"].in_transaction
    finally:
        proxy.close()


@needs_client
def test_a_client_that_prefers_tls_goes_on_in_plain_text_and_one_that_requires_it_is_told(
    wire_db: URL,
) -> None:
    proxy, _ = proxied(wire_db)
    base = [str(MARIADB), "-h", proxy.host, "-P", str(proxy.port), "-u", "root", "-N", "-B"]
    try:
        said = subprocess.run([*base, "--ssl", "-e", "SHOW STATUS LIKE 'Ssl_cipher'"],
                              capture_output=True, text=True, timeout=30)  # fmt: skip
        assert said.returncode == 0, said.stderr
        assert said.stdout.split() == ["Ssl_cipher"]  # no cipher: plain text
        refused = subprocess.run([*base, "--ssl-verify-server-cert", "-e", "SELECT 1"],
                                 capture_output=True, text=True, timeout=30)  # fmt: skip
        assert refused.returncode != 0
        proxy.settle()
        assert any("if it requires TLS" in note for note in proxy.notes), proxy.notes
    finally:
        proxy.close()


@pytest.fixture
def password_user(wire_db: URL, worker_id_suffix: str) -> Iterator[tuple[str, str, str]]:
    """Users of the test's own with a password, per authentication plugin the server has."""
    users: list[str] = []
    with connect(wire_db, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT plugin_name FROM information_schema.plugins"
                    " WHERE plugin_name = 'ed25519' AND plugin_status = 'ACTIVE'")  # fmt: skip
        ed25519 = cur.fetchone() is not None
        native = f"redpacket_native_{worker_id_suffix}"
        cur.execute(f"DROP USER IF EXISTS '{native}'@'%'")
        cur.execute(f"CREATE USER '{native}'@'%' IDENTIFIED VIA mysql_native_password"
                    " USING PASSWORD('s3cret')")  # fmt: skip
        users.append(native)
        edwards = ""
        if ed25519:
            edwards = f"redpacket_ed25519_{worker_id_suffix}"
            cur.execute(f"DROP USER IF EXISTS '{edwards}'@'%'")
            cur.execute(f"CREATE USER '{edwards}'@'%' IDENTIFIED VIA ed25519"
                        " USING PASSWORD('s3cret')")  # fmt: skip
            users.append(edwards)
        for user in users:
            cur.execute(f"GRANT SELECT ON {wire_db.database}.* TO '{user}'@'%'")
    yield native, edwards, "s3cret"
    with connect(wire_db, autocommit=True) as conn, conn.cursor() as cur:
        for user in users:
            cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")


@needs_client
def test_passwords_are_relayed_unread_native_and_ed25519(
    wire_db: URL, password_user: tuple[str, str, str]
) -> None:
    native, edwards, password = password_user
    proxy, _ = proxied(wire_db)
    try:
        as_native = proxy.url().set(username=native, password=password)
        with connect(as_native) as conn, conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER()")
            assert cur.fetchone()[0].startswith(native)
        with pytest.raises(pymysql.err.OperationalError) as wrong:
            connect(proxy.url().set(username=native, password="wrong"))
        assert wrong.value.args[0] == 1045  # the server's refusal, relayed
        if not edwards:
            pytest.skip("the server has no ed25519 plugin (INSTALL SONAME 'auth_ed25519')")
        said = subprocess.run(
            [str(MARIADB), "-h", proxy.host, "-P", str(proxy.port), "-u", edwards,
             f"-p{password}", "-N", "-B", "-e", "SELECT CURRENT_USER()"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert said.returncode == 0, said.stderr
        assert said.stdout.startswith(edwards)
    finally:
        proxy.close()


def test_the_seed_duplicates_through_the_wire_at_repeatable_read(
    wire_db: URL, tmp_path: Path, innodb_watch: None
) -> None:
    """t2-waits: T2's first plain read fixed its snapshot before T1 inserted; its FOR UPDATE
    waits for T1 (InnoDB's account of the wait), then its check misses T1's row."""
    command = grant(tmp_path, "REPEATABLE READ")
    race = WireRace(wire_db, [command, command], check=CHECK, reset=RESET, step_timeout=20)
    attempt = race.scheduled("t2-waits")
    assert attempt.broken == ((7, 2),)
    with connect(wire_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM red_packets")
        assert cur.fetchone() == (2,)
    waits = [e for e in attempt.result.events if e.kind == "wait"]
    assert [(e.call, e.waited_on) for e in waits] == [(2, (1,))]
    assert "FOR UPDATE" in waits[0].sql
    assert [f.status for f in attempt.finished] == [0, 0]  # type: ignore[union-attr]


def test_read_committed_fixes_the_seed_through_the_wire(
    wire_db: URL, tmp_path: Path, innodb_watch: None
) -> None:
    command = grant(tmp_path, "READ COMMITTED")
    race = WireRace(wire_db, [command, command], check=CHECK, reset=RESET, step_timeout=20)
    assert race.scheduled("t2-waits").broken == ()
    with connect(wire_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM red_packets")
        assert cur.fetchone() == (1,)


def test_race_command_explores_mysql_and_finds_the_shortest_break(
    wire_db: URL, tmp_path: Path, innodb_watch: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """PyMySQL's SET NAMES, SET AUTOCOMMIT and BEGIN are housekeeping: five steps each, as on
    PostgreSQL; only the two serial orders hold at repeatable read on InnoDB."""
    url = wire_db.render_as_string(hide_password=False)
    command = grant(tmp_path, "REPEATABLE READ")
    argv = ["race", "--upstream", url, "--check", CHECK, "--reset", RESET, "--run", command,
            "--run", command, "--explore", "--expect", "correct", "--json"]  # fmt: skip
    assert main(argv) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["complete"]
    assert data["shortest"] == "T1:1,T2:end,T1:end"
    assert len(data["failing"]) == data["runs"] - 2
    fixed = grant(tmp_path, "READ COMMITTED")
    argv = ["race", "--upstream", url, "--check", CHECK, "--reset", RESET, "--run", fixed,
            "--run", fixed, "--explore", "--expect", "correct", "--json"]  # fmt: skip
    assert main(argv) == 0  # every order of the fix holds
    held = json.loads(capsys.readouterr().out)
    assert held["complete"]
    assert held["runs"] > 1
    assert held["failing"] == []


def test_the_tracer_reports_innodb_waits_ends_and_refusals(
    wire_db: URL, innodb_watch: None
) -> None:
    records: list[dict[str, Any]] = []
    waits: list[dict[str, Any]] = []
    seen_waiting = threading.Event()

    def emit(record: dict[str, Any]) -> None:
        (waits if record["event"] == "wait" else records).append(record)
        if record["event"] == "wait":
            seen_waiting.set()

    proxy = Proxy(wire_db, ENGINE.wire_protocol()).start()
    tracer = Tracer(wire_db, ENGINE, emit)
    proxy.listener = tracer
    try:
        first, second = connect(proxy.url()), connect(proxy.url())
        first.cursor().execute("SELECT id FROM orders WHERE id = 7 FOR UPDATE")
        blocked = threading.Thread(
            target=lambda: second.cursor().execute("SELECT id FROM orders WHERE id = 7 FOR UPDATE")
        )
        blocked.start()
        assert seen_waiting.wait(20)  # seen from InnoDB, live
        first.commit()
        blocked.join(10)
        second.rollback()
        with pytest.raises(pymysql.err.IntegrityError):
            first.cursor().execute("INSERT INTO orders VALUES (7)")
        first.rollback()
        first.close()
        second.close()
    finally:
        proxy.close()
        tracer.close()
    ends = [(r["connection"], r["end"]) for r in records]
    assert ends == [(1, "committed"), (2, "rolled back"), (1, "refused")]
    assert records[1]["steps"][0]["waited_on"] == [1]
    assert records[2]["error"]["code"] == "1062"  # then the client rolled back
    assert [(w["connection"], w["waits_for"]) for w in waits] == [(2, [1])]


BLIND_RETRY = """\
import os
from urllib.parse import urlsplit
import pymysql
url = urlsplit(os.environ["DATABASE_URL"])
for attempt in range(1, 4):  # a grant that does not look first, retried on a lost connection
    try:
        conn = pymysql.connect(host=url.hostname, port=url.port, user=url.username or "root",
                               database=url.path.lstrip("/"))
        conn.cursor().execute("INSERT INTO red_packets (order_id) VALUES (7)")
        conn.commit()
        print(f"attempt {attempt}: granted")
        break
    except pymysql.err.OperationalError as exc:
        print(f"attempt {attempt}: connection lost ({exc.args[0]}), retrying")
"""


def test_cut_after_commit_on_mysql_a_blind_retry_grants_twice(
    wire_db: URL, tmp_path: Path, innodb_watch: None
) -> None:
    path = tmp_path / "blind.py"
    path.write_text(BLIND_RETRY, encoding="utf-8")
    blind = f"{sys.executable} {path}"
    race = WireRace(wire_db, [blind, grant(tmp_path, "READ COMMITTED")], check=CHECK,
                    reset=RESET, step_timeout=20,
                    faults=[parse_fault("cut-after-commit:T1", 2)])  # fmt: skip
    attempt = race.scheduled("serial")
    assert attempt.broken == ((7, 2),)
    [cut] = attempt.cuts
    assert (cut.participant, cut.sql, cut.server) == (1, "COMMIT", "committed")
    output = attempt.finished[0].output  # type: ignore[union-attr]
    assert "attempt 1: connection lost" in output
    assert "attempt 2: granted" in output


def test_hammer_on_mysql_breaks_the_seed_at_repeatable_read(
    wire_db: URL, tmp_path: Path, innodb_watch: None
) -> None:
    command = grant(tmp_path, "REPEATABLE READ")
    race = WireRace(wire_db, [command, command], check=CHECK, reset=RESET, step_timeout=20)
    found = race.hammered(4)
    assert found.gated == 4
    assert found.broken  # released together, InnoDB's old snapshot lets the second in
    assert found.outcomes == {"exited 0": 8}
    fixed = grant(tmp_path, "READ COMMITTED")
    race = WireRace(wire_db, [fixed, fixed], check=CHECK, reset=RESET, step_timeout=20)
    assert race.hammered(4).broken == []


def test_an_upstream_on_a_unix_socket_is_reached_by_it(wire_db: URL) -> None:
    """``?unix_socket=`` names MySQL's socket: the proxy goes there, its clients to it."""
    with mysql_connect(wire_db) as probe, probe.cursor() as cursor:
        cursor.execute("SELECT @@socket")
        (path,) = cursor.fetchone() or ("",)
    assert path
    by_socket = wire_db.update_query_dict({"unix_socket": path})
    proxy = Proxy(by_socket, ENGINE.wire_protocol()).start()
    try:
        assert "unix_socket" not in proxy.url().query
        with mysql_connect(proxy.url()) as client, client.cursor() as cursor:
            cursor.execute(
                "SELECT host FROM information_schema.processlist WHERE id = CONNECTION_ID()"
            )
            assert cursor.fetchone() == ("localhost",)  # a socket session, not 127.0.0.1:N
        assert len(proxy.links) == 1
    finally:
        proxy.close()


def test_change_user_and_a_server_side_cursor_keep_the_relay_in_step(
    wire_db: URL, password_user: tuple[str, str, str]
) -> None:
    """Oracle's driver asks what few drivers do: a cursor opened on the server
    (COM_STMT_EXECUTE with CURSOR_TYPE_READ_ONLY, rows by COM_STMT_FETCH) and
    COM_CHANGE_USER, whose answer is a new authentication on the same session. The
    proxy must end each answer where the server did, or every later step is misread."""
    connector = pytest.importorskip("mysql.connector")
    native, _edwards, password = password_user
    proxy, _ = proxied(wire_db)
    answered: list[tuple[tuple[str, ...], tuple[str, ...], bool]] = []

    class Answers(PassThrough):
        def before(self, link: Link, request: Request) -> bool:
            return True  # hear every answer

        def after(self, link: Link, request: Request, answer: Answer) -> None:
            answered.append((request.statements, answer.tags, answer.in_transaction))

    proxy.listener = Answers()
    try:
        cnx = connector.connect(host=proxy.host, port=proxy.port, user="root",
                                database=wire_db.database, use_pure=True,
                                # MariaDB has no such plugin: it asks the client to switch
                                # (AuthSwitchRequest), inside COM_CHANGE_USER's answer too
                                auth_plugin="caching_sha2_password")  # fmt: skip
        try:
            prepared = cnx.cmd_stmt_prepare(b"SELECT id FROM orders WHERE id > ?")
            opened = cnx.cmd_stmt_execute(prepared["statement_id"], data=(0,),
                                          parameters=prepared["parameters"], flags=1)  # fmt: skip
            assert opened[2]["status_flag"] & 64  # SERVER_STATUS_CURSOR_EXISTS: no rows yet
            cnx.cmd_stmt_fetch(prepared["statement_id"], 10)
            rows, _end = cnx.get_rows(binary=True, columns=opened[1])
            assert [tuple(row) for row in rows] == [(7,)]
            cnx.cmd_stmt_close(prepared["statement_id"])  # the transaction still open
            cnx.cmd_change_user(username=native, password=password, database=wire_db.database)
            cursor = cnx.cursor()
            cursor.execute("SELECT CONNECTION_ID(), CURRENT_USER(), count(*) FROM orders")
            session, user, orders = cursor.fetchone()
            cursor.close()
        finally:
            cnx.close()
    finally:
        proxy.close()
    assert user.startswith(native)
    assert orders == 1
    assert [link.session_id for link in proxy.links] == [session]  # the same session
    assert (("SELECT id FROM orders WHERE id > ?",), (), True) in answered  # cursor opened
    fetched = answered.index(((), ("SELECT 1",), True))  # its fetch: one row, as the server said
    # the change of user: its answer ends at the server's OK after the switch, which says
    # the transaction is gone (an answer ended at the switch would not know)
    assert answered[fetched + 1] == ((), (), False)
    last = ("SELECT CONNECTION_ID(), CURRENT_USER(), count(*) FROM orders",)
    assert answered[-1] == (last, ("SELECT 1",), True)  # after the new login, in step
