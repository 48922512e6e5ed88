"""Spec files: the lab's output is PostgreSQL isolationtester's, byte for byte.

The expected files in tests/specs/expected were printed by PostgreSQL 15's own
isolationtester (``NAME.out``) against a database set up as the lab sets up its
spec database; ``NAME.mariadb.out`` were printed by the lab on MariaDB 10.11 and read
line by line against what InnoDB does (the deadlock is the requester's at once, an
empty query is an error there). When the real isolationtester is installed, the
PostgreSQL files are checked against it again, so they cannot drift from it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import psycopg
import pytest

from redpacket.cli import main
from redpacket.database.backends import Server
from redpacket.database.lab import Lab
from redpacket.engines import pq_ctypes
from redpacket.engines.postgresql import libpq
from redpacket.errors import LabError
from redpacket.specs import output
from redpacket.specs.events import Failure, Table
from redpacket.specs.model import BlockerKind
from redpacket.specs.parser import SpecError, load, parse, parse_permutation, tokens
from redpacket.specs.run import run_spec
from redpacket.specs.runner import all_permutations

SPECS = Path(__file__).parent / "specs"
EXPECTED = SPECS / "expected"
ISOLATIONTESTER = Path("/usr/lib/postgresql/15/lib/pgxs/src/test/isolation/isolationtester")
PG_SPECS = ["basics", "waits", "notices", "interleavings", "stuck", "terminated"]
ABORTED = {  # how isolationtester stops these (exit status 1)
    "stuck": "failed to complete permutation due to mutually-blocking steps",
    "terminated": "failed to send query for step s1_after",
}
STEP_TIMEOUT = {"stuck": 1}  # seconds; PGISOLATIONTIMEOUT for the real tester
PORTABLE_SPECS = ["basics", "waits", "interleavings"]


# -- the format ---------------------------------------------------------------------------


def test_an_sql_block_keeps_its_text_less_the_blanks_next_to_the_braces() -> None:
    found = tokens('step "a""b"   {  SELECT 1 ;   \n\n  }  # a comment\n', "t.spec")
    assert [(t.kind, t.text) for t in found] == [
        ("keyword", "step"), ("ident", 'a"b'), ("sql", "SELECT 1 ;   \n\n"),
    ]  # fmt: skip


def test_a_spec_parses_into_sessions_steps_and_blockers() -> None:
    spec = parse(
        "setup { A } setup { B } teardown { C }\n"
        "session s1 setup { S } step a { 1 } step b { 2 } teardown { T }\n"
        "session s2 step c { 3 }\n"
        "permutation a c(a, *, b notices 2) b\n",
        "x.spec",
    )
    assert spec.setup == ("A", "B")
    assert spec.teardown == "C"
    assert [s.name for s in spec.sessions] == ["s1", "s2"]
    assert (spec.sessions[0].setup, spec.sessions[0].teardown) == ("S", "T")
    blockers = spec.permutations[0].steps[1].blockers
    assert [b.kind for b in blockers] == [
        BlockerKind.OTHER_STEP, BlockerKind.ONCE, BlockerKind.NOTICES,
    ]  # fmt: skip
    assert (blockers[2].step, blockers[2].notices) == ("b", 2)
    assert str(spec.permutations[0]) == "a c b"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("session s1 step a { x", "x.spec:1: unterminated sql block"),
        ("session s1 step a { 1 } step a { 2 }", "duplicate step name: a"),
        ("session s1 step a { 1 } permutation a b", 'undefined step "b" specified in permutation'),
        ("session s1 step a { 1 } step b { 2 } permutation a(b) b",
         'permutation step "a" cannot block on its own session'),
        ("session s1 step a { 1 } session s2 step b { 2 } permutation a(c) b",
         'undefined blocking step "c" referenced in permutation step "a"'),
        ("session s1\nstep a { 1 }\nstep { 2 }", "x.spec:3: syntax error: expected a step name"),
        ("setup { 1 }", "expected a session, found the end of the file"),
        ('session "s1\n', "x.spec:1: unexpected newline in quoted identifier"),
        ("session s1 step a { 1 } ; ", "x.spec:1: syntax error: unexpected character ';'"),
    ],
)  # fmt: skip
def test_a_wrong_spec_is_refused_saying_where_and_why(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(text, "x.spec")


def test_the_engines_a_spec_is_for_are_read_from_its_comment() -> None:
    assert parse("# redpacket: engines postgresql, mysql\nsession s step a {1}").engines == (
        "postgresql", "mysql",
    )  # fmt: skip
    assert load(SPECS / "notices.spec").engines == ("postgresql",)


def test_without_permutations_every_interleaving_runs_in_isolationtesters_order() -> None:
    spec = parse("session a step a1 {1} step a2 {2} session b step b1 {3} step b2 {4}")
    orders = [str(p) for p in all_permutations(spec)]
    assert orders == [
        "a1 a2 b1 b2", "a1 b1 a2 b2", "a1 b1 b2 a2", "b1 a1 a2 b2", "b1 a1 b2 a2", "b1 b2 a1 a2",
    ]  # fmt: skip


def test_a_permutation_from_the_command_line_is_checked_against_the_spec() -> None:
    spec = load(SPECS / "waits.spec")
    assert str(parse_permutation("s1u1 s2u1 s1c(s2u1) s2c", spec)) == "s1u1 s2u1 s1c s2c"
    with pytest.raises(SpecError, match='undefined step "nope"'):
        parse_permutation("s1u1 nope", spec)


def test_a_table_is_laid_out_as_libpq_prints_it() -> None:
    shown = output.table(
        Table(("id", "word", "x"), (("1", "a", "1e5"), ("10", None, "-2"), ("7", "zoë", "")))
    )
    assert shown == ("id|word|  x\n--+----+---\n 1|a   |1e5\n10|    | -2\n 7|zoë|   \n(3 rows)\n\n")
    assert output.table(Table((), ())) == ""  # a result without columns prints nothing
    assert output.table(Table(("e",), (("E1",),))).startswith("e \n")  # E first: text
    assert output.failure(Failure("ERROR", "boom")) == "ERROR:  boom\n"


# -- against the server ---------------------------------------------------------------------


def expected(name: str, suffix: str = "") -> str:
    return (EXPECTED / f"{name}{suffix}.out").read_text(encoding="utf-8")


@pytest.mark.parametrize("binding", ["ctypes", "psycopg"])
@pytest.mark.parametrize("name", PG_SPECS)
def test_a_spec_prints_what_postgresqls_isolationtester_prints(
    lab: Lab, name: str, binding: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On either libpq binding the sessions may use (pq_ctypes, psycopg.pq): the same bytes."""
    if binding == "ctypes" and not pq_ctypes.AVAILABLE:
        pytest.skip("the machine's libpq (libpq.so.5) does not load: psycopg.pq serves")
    monkeypatch.setenv("REDPACKET_SPEC_LIBPQ", binding)
    run = run_spec(lab, load(SPECS / f"{name}.spec"), max_wait=STEP_TIMEOUT.get(name, 60))
    assert run.text() == expected(name)
    assert run.aborted == ABORTED.get(name)


@pytest.mark.skipif(not ISOLATIONTESTER.exists(), reason="PostgreSQL's isolationtester is absent")
@pytest.mark.parametrize("name", PG_SPECS)
def test_the_expected_files_are_still_what_the_real_isolationtester_prints(
    lab: Lab, name: str
) -> None:
    conninfo = libpq(lab.spec_url())  # a URI: the real tester takes it, socket or host
    with (SPECS / f"{name}.spec").open("rb") as spec:
        real = subprocess.run(
            [str(ISOLATIONTESTER), conninfo], stdin=spec, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, check=False,
            env=dict(os.environ, PGISOLATIONTIMEOUT=str(STEP_TIMEOUT.get(name, 60))),
        )  # fmt: skip
    teardown = load(SPECS / f"{name}.spec").teardown
    if real.returncode != 0 and teardown:  # the real tester leaves its tables when it stops
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(teardown)
    assert real.stdout.decode() == expected(name)
    assert real.returncode == (1 if name in ABORTED else 0)


@pytest.mark.parametrize("name", PORTABLE_SPECS)
def test_a_portable_spec_runs_on_mariadb_as_innodb_behaves(mysql_lab: Lab, name: str) -> None:
    run = run_spec(mysql_lab, load(SPECS / f"{name}.spec"), max_wait=60)
    if not run.server.startswith("MariaDB"):
        pytest.skip(f"the expected files are MariaDB's; this is {run.server}")
    assert run.aborted is None
    assert run.text() == expected(name, ".mariadb")


def test_a_spec_for_postgresql_only_is_refused_on_mariadb(
    mysql_lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    url = mysql_lab.server.url.render_as_string(hide_password=False)
    status = main(["--database-url", url, "--lab-database", mysql_lab.name,
                   "spec", str(SPECS / "notices.spec")])  # fmt: skip
    assert status == 2
    assert "written for postgresql, not MariaDB / MySQL" in capsys.readouterr().err


# -- the command ------------------------------------------------------------------------------


def cli(lab: Lab, *args: str) -> list[str]:
    url = lab.server.url.render_as_string(hide_password=False)
    return ["--database-url", url, "--lab-database", lab.name, "spec", *args]


def test_the_command_prints_the_output_and_the_warnings_apart(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(cli(lab, str(SPECS / "waits.spec"))) == 0
    printed = capsys.readouterr()
    assert printed.out == expected("waits").replace("unused step name: s1r\n", "")
    assert printed.err == "unused step name: s1r\n"


def test_one_permutation_can_be_picked(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    spec = str(SPECS / "waits.spec")
    assert main(cli(lab, spec, "--permutation", "s1u1 s2u1 s1c s2r s2c")) == 0
    out = capsys.readouterr().out
    assert out.count("starting permutation") == 1
    first = expected("waits").split("\nstarting permutation: s1u1 s2u2 s1u2")[0]
    assert out == first.replace("unused step name: s1r\n", "")


def test_json_lists_the_events_with_waits_and_errors(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(cli(lab, str(SPECS / "waits.spec"), "--json")) == 0
    data = json.loads(capsys.readouterr().out)
    kinds = [event["event"] for event in data["events"]]
    assert data["permutations"] == 4
    assert data["aborted"] is None
    assert kinds.count("waiting") == 6
    deadlock = [e for e in data["events"] if e["event"] == "result" and "error" in e]
    assert [e["error"]["sqlstate"] for e in deadlock] == ["40P01"]


def test_expected_files_are_compared_as_pg_isolation_regress_does(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(cli(lab, str(SPECS / "interleavings.spec"), "--expected", str(EXPECTED))) == 0
    assert "interleavings" in capsys.readouterr().out
    wrong = tmp_path / "interleavings.out"
    wrong.write_text(expected("interleavings").replace("n\n-\n1\n", "n\n-\n7\n", 1))
    assert main(cli(lab, str(SPECS / "interleavings.spec"), "--expected", str(tmp_path))) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out
    assert "-7\n+1\n" in out


def test_output_files_are_written_per_spec(lab: Lab, tmp_path: Path) -> None:
    specs = [str(SPECS / f"{name}.spec") for name in ("basics", "interleavings")]
    assert main(cli(lab, *specs, "--output-dir", str(tmp_path))) == 0
    assert (tmp_path / "basics.out").read_text() == expected("basics")
    assert (tmp_path / "interleavings.out").read_text() == expected("interleavings")


def test_a_step_past_the_timeout_is_cancelled_and_mutual_blockers_stop_the_run(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    stuck = str(SPECS / "stuck.spec")
    assert main(cli(lab, stuck, "--step-timeout", "1")) == 1
    printed = capsys.readouterr()
    stopped = "failed to complete permutation due to mutually-blocking steps\n"
    assert printed.out + printed.err == expected("stuck")
    assert printed.err == stopped
    # the lab ran the teardown after the stop: the next run starts clean, and stops alike
    assert main(cli(lab, stuck, "--step-timeout", "1")) == 1
    assert capsys.readouterr() == printed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.spec"], "cannot read spec file 'missing.spec'"),
        ([str(SPECS / "waits.spec"), "--permutation", "s1u1 zz"], 'undefined step "zz"'),
        ([str(SPECS / "waits.spec"), "--step-timeout", "0"], "--step-timeout must be more"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(
    lab: Lab, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(cli(lab, *args)) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_the_spec_database_is_the_labs_own_and_goes_with_drop(
    server: Server, worker_id_suffix: str, svcconn: psycopg.Connection[tuple[object, ...]]
) -> None:
    own = Lab(server, f"redpacket_test_specdb_{worker_id_suffix}")
    own.drop()
    run_spec(own, load(SPECS / "interleavings.spec"))
    assert own.spec_database in databases(svcconn)
    assert own.drop() is True
    assert own.spec_database not in databases(svcconn)
    # a database of that name the lab did not create is never used, nor dropped
    svcconn.execute(f'CREATE DATABASE "{own.spec_database}"')
    try:
        with pytest.raises(LabError, match="was not created by redpacket"):
            run_spec(own, load(SPECS / "interleavings.spec"))
        with pytest.raises(LabError, match="was not created by redpacket"):
            own.drop()
    finally:
        svcconn.execute(f'DROP DATABASE "{own.spec_database}"')


def databases(conn: psycopg.Connection[tuple[object, ...]]) -> set[str]:
    return {str(row[0]) for row in conn.execute("SELECT datname FROM pg_database").fetchall()}


@pytest.mark.parametrize(
    ("strategy", "level", "grants"),
    [
        ("seed", "repeatable-read", 2),
        ("seed", "read-committed", 1),
        ("lock_first", "repeatable-read", 2),
    ],
)
def test_an_explained_run_replays_as_a_spec(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str], strategy: str, level: str,
    grants: int,
) -> None:  # fmt: skip
    spec = tmp_path / "race.spec"
    url = lab.server.url.render_as_string(hide_password=False)
    base = ["--database-url", url, "--lab-database", lab.name]
    assert main([*base, "explain", strategy, "-i", level, "--schedule", "t2-waits",
                 "--spec", str(spec), "--json"]) == 0  # fmt: skip
    explained = json.loads(capsys.readouterr().out)
    assert explained["red_packets"] == grants
    assert main([*base, "spec", str(spec)]) == 0
    out = capsys.readouterr().out
    assert out.endswith(f"red_packets\n-----------\n{grants:>11}\n(1 row)\n\n")
    # T2's lock waited, as it did in the explained run
    assert re.search(r"^step t2_\d_lock_order: SELECT .* FOR UPDATE; <waiting \.\.\.>$", out, re.M)
    if ISOLATIONTESTER.exists():
        with spec.open("rb") as stdin:
            real = subprocess.run([str(ISOLATIONTESTER), libpq(lab.spec_url())], stdin=stdin,
                                  capture_output=True, check=True)  # fmt: skip
        assert real.stdout.decode() == out


# advisory: GET_LOCK outlives the transaction, so the run's release step is in the spec too,
# its order id written in as the runner sent it
@pytest.mark.parametrize(("strategy", "grants"), [("seed", 2), ("lock_first", 1), ("advisory", 1)])
def test_an_explained_mariadb_run_replays_as_a_spec_there(
    mysql_lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str], strategy: str,
    grants: int,
) -> None:  # fmt: skip
    spec = tmp_path / "race.spec"
    url = mysql_lab.server.url.render_as_string(hide_password=False)
    base = ["--database-url", url, "--lab-database", mysql_lab.name]
    assert main([*base, "explain", strategy, "-i", "repeatable-read", "--schedule", "t2-waits",
                 "--spec", str(spec)]) == 0  # fmt: skip
    capsys.readouterr()
    assert "# redpacket: engines mysql" in spec.read_text()
    assert main([*base, "spec", str(spec)]) == 0
    out = capsys.readouterr().out
    assert out.endswith(f"red_packets\n-----------\n{grants:>11}\n(1 row)\n\n")
    assert "<waiting ...>" in out


def test_an_empty_setup_block_fails_as_isolationtester_fails_it(lab: Lab, tmp_path: Path) -> None:
    spec = tmp_path / "empty.spec"
    spec.write_text("setup { }\nsession s step a { SELECT 1 AS one; }\n")
    run = run_spec(lab, load(spec))
    assert run.aborted == "setup failed: "
    assert run.text().endswith("starting permutation: a\nsetup failed: ")  # no newline: none came
    if ISOLATIONTESTER.exists():
        with spec.open("rb") as stdin:
            real = subprocess.run(
                [str(ISOLATIONTESTER), libpq(lab.spec_url())], stdin=stdin,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False,
            )  # fmt: skip
        assert real.stdout.decode() == run.text()


@pytest.mark.parametrize(("value", "seconds"), [("7", 7.0), ("1.5", 1.0), ("300s", 300.0),
                                                 ("junk", 0.0)])  # fmt: skip
def test_the_step_timeout_is_read_as_isolationtester_reads_it(
    monkeypatch: pytest.MonkeyPatch, value: str, seconds: float
) -> None:
    from redpacket.specs.runner import step_timeout

    monkeypatch.setenv("PGISOLATIONTIMEOUT", value)
    assert step_timeout() == seconds


def test_an_identifier_is_isolationtesters_letters_digits_underscore_dollar_and_any_non_ascii() -> (
    None
):
    """specscanner.l: [A-Za-z\\200-\\377_][A-Za-z\\200-\\377_0-9$]*, over UTF-8 bytes."""
    from redpacket.specs import parser

    samples = [chr(i) for i in range(0x100)] + [
        chr(i) for i in (0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFD, 0xFFFF, 0x10000, 0x10FFFF)
    ]
    for ch in samples:
        starts = (ch.isascii() and (ch.isalpha() or ch == "_")) or not ch.isascii()
        goes_on = starts or (ch.isdigit() and ch.isascii()) or ch == "$"
        assert bool(parser._IDENT_START.fullmatch(ch)) is starts, hex(ord(ch))
        assert bool(parser._IDENT.fullmatch("a" + ch)) is goes_on, hex(ord(ch))
        assert bool(parser._IDENT.fullmatch(ch)) is starts, hex(ord(ch))


def test_the_readmes_example_passes_in_seconds_with_pg_isolation_regress_exit_status(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every file of tests/specs against its expected file: stuck.spec stops (mutually
    blocking steps) as its expected output says, so it is ok, and the status is 0."""
    files = sorted(str(path) for path in SPECS.glob("*.spec"))
    args = ["--expected", str(EXPECTED), "--step-timeout", "1"]
    assert main(cli(lab, *files, *args)) == 0
    out = capsys.readouterr().out
    assert [line.split()[:2] for line in out.splitlines()] == [[Path(f).stem, "ok"] for f in files]
