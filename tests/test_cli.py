from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from redpacket.cli import main
from redpacket.database.backends import Server
from redpacket.database.lab import Lab, Schema
from redpacket.engines.postgresql import conninfo
from redpacket.strategies import STRATEGIES
from redpacket.stress.pipes import _c_pipe


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_doctor_migrate_reset_drop(cli_lab: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, *cli_lab, "doctor", "--json")
    assert status == 0
    report = json.loads(out)
    assert report["backend"] == "url"
    assert report["lab_database_exists"] is False
    assert report["migrated"] is False
    assert report["default_isolation"] == "read committed"
    assert report["stress_loop"] == "pure Python"  # an editable install never compiles
    # ... but builds the C wire in place wherever it can (tests/test_pipes.py says where)
    assert report["stress_wire"] == ("libpq C wire" if _c_pipe() else "psycopg wire")

    assert run(capsys, *cli_lab, "migrate")[0] == 0
    status, out, _ = run(capsys, *cli_lab, "doctor", "--json")
    report = json.loads(out)
    assert report["migrated"] is True
    assert {s["schema"]: s["current"] for s in report["schemas"]} == {
        "unconstrained": "0001",
        "constrained": "0002",
    }

    status, out, _ = run(capsys, *cli_lab, "reset", "--orders", "12")
    assert status == 0
    assert "12 orders loaded" in out

    status, out, _ = run(capsys, *cli_lab, "doctor")
    assert status == 0
    assert "PostgreSQL" in out
    assert "yes" in out

    status, out, _ = run(capsys, *cli_lab, "drop")
    assert (status, out.strip().endswith("dropped")) == (0, True)
    status, out, _ = run(capsys, *cli_lab, "drop")
    assert "nothing to drop" in out


def test_python_dash_m_and_no_traceback_on_bad_input() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDPACKET_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "redpacket",
            "--database-url",
            "postgresql://x:topsecret@127.0.0.1:1/db",
            "doctor",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(
        "redpacket: error: cannot connect to postgresql://x:***@127.0.0.1:1/db"
    )
    assert "topsecret" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_grant_command(cli_lab: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    argv = [*cli_lab, "grant", "2", "--strategy", "on_conflict", "--isolation", "serializable"]
    status, out, _ = run(capsys, *argv, "--json")
    assert status == 0
    first = json.loads(out)
    assert (first["outcome"], first["attempts"], first["strategy"]) == ("granted", 1, "on_conflict")
    status, out, _ = run(capsys, *argv)
    assert status == 0
    assert "already granted" in out
    status, out, _ = run(capsys, *cli_lab, "grant", "5000", "-s", "seed")
    assert status == 1
    assert "FAILED (unknown_order)" in out


def test_explain_json_and_text(cli_lab: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    argv = [*cli_lab, "explain", "seed", "--isolation", "repeatable-read"]
    status, out, _ = run(capsys, *argv, "--json")
    assert status == 0
    data = json.loads(out)
    assert (data["verdict"], data["red_packets"], data["schedule"]) == (
        "duplicate",
        2,
        "t2-first-read",
    )
    assert "snapshot" in data["explanation"]
    assert {"session", "action", "kind", "rows", "waited_on", "takes_snapshot"} <= set(
        data["events"][0]
    )
    status, out, _ = run(capsys, *argv)
    assert status == 0
    assert "verdict: duplicate" in out
    assert "T1" in out
    assert "T2" in out


def test_explain_and_matrix_take_a_level_per_session(
    cli_lab: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    mixed = "T1=read-committed,T2=repeatable-read"
    argv = [*cli_lab, "explain", "seed", "-i", mixed, "--schedule", "t2-waits", "--json"]
    status, out, _ = run(capsys, *argv)
    data = json.loads(out)
    assert (status, data["verdict"], data["isolation"]) == (0, "duplicate", mixed)
    assert data["levels"] == ["read-committed", "repeatable-read"]
    status, out, _ = run(
        capsys, *cli_lab, "matrix", "--strategies", "seed", "--schedules", "t2-waits",
        "--isolation", "T1=repeatable-read,T2=read-committed", "--isolation", "repeatable-read",
        "--json",
    )  # fmt: skip
    verdicts = {row["isolation"]: row["verdict"] for row in json.loads(out)}
    assert verdicts == {
        "T1=repeatable-read,T2=read-committed": "correct",
        "repeatable-read": "duplicate",
    }
    status, out, _ = run(capsys, *cli_lab, "matrix", "--strategies", "seed", "--schedules",
                         "t2-waits", "--isolation", mixed)  # fmt: skip
    assert status == 0
    assert mixed in out  # the column is the per-session setting


def test_matrix_json(cli_lab: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(
        capsys,
        *cli_lab,
        "matrix",
        "--strategies",
        "seed,on_conflict",
        "--isolation",
        "repeatable-read",
        "--schedules",
        "t2-first-read,serial",
        "--json",
    )
    assert status == 0
    rows = json.loads(out)
    assert len(rows) == 4
    assert {"strategy", "isolation", "schedule", "red_packets", "errors", "verdict"} <= set(rows[0])
    by_cell = {(r["strategy"], r["schedule"]): (r["verdict"], r["red_packets"]) for r in rows}
    assert by_cell[("seed", "t2-first-read")] == ("duplicate", 2)
    assert by_cell[("on_conflict", "serial")] == ("correct", 1)
    status, out, _ = run(
        capsys,
        *cli_lab,
        "matrix",
        "--strategies",
        "lock_first",
        "--isolation",
        "read-committed",
        "--schedules",
        "serial",
        "--schedules",
        "T1:1,T2:1,T1:end,T2:end",
        "--json",
    )
    assert [r["schedule"] for r in json.loads(out)] == ["serial", "T1:1,T2:1,T1:end,T2:end"]


@pytest.mark.stress
def test_demo_reproduces_and_explains_the_seed_bug(
    cli_lab: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    status, printed, _ = run(capsys, *cli_lab, "demo")
    assert status == 0
    out = " ".join(printed.replace("│", " ").split())  # the text, whatever the panels' wrapping
    assert "verdict: duplicate" in out
    assert "the snapshot its first statement, step 1 (select_order" in out
    assert "waits for T1" in out  # the timeline shows T2 blocked on T1's lock
    assert "T2 waited at step 2 (lock_order" in out
    assert "verdict: correct" in out  # the same code at read-committed
    assert "That statement is the one that waited for T1" in out  # lock_first at RR
    assert "how to read a timeline" in out
    assert "with 3 retries" in out
    assert "stress comparison" in out
    assert "Under load on PostgreSQL: 16 workers" in out  # the stress table names its server
    assert "takeaways: which fixes hold at which level, and why" in out
    assert out.index("how to read a timeline") < out.index("redpacket doctor")


@pytest.mark.stress
def test_stress_expect_correct_and_csv(
    cli_lab: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    csv_file = tmp_path / "runs.csv"
    base = [*cli_lab, "stress", "--workers", "8", "--orders", "20", "--csv", str(csv_file)]
    status, out, _ = run(
        capsys, *base, "-s", "seed", "-i", "repeatable-read", "--expect", "correct"
    )
    assert status == 1
    # the broken run's findings, summarised: a count per rule and three examples at most
    found = re.search(r"history check: (\d+) violation\(s\)[^\n]*duplicate (\d+)", out)
    assert found, out
    violations = int(found.group(1))
    assert violations >= int(found.group(2)) > 0
    assert out.count("duplicate: order ") == min(3, violations)
    if violations > 3:
        assert f"... and {violations - 3} more (--json lists every one kept)" in out
    assert len(out.splitlines()) < 60
    status, out, _ = run(
        capsys,
        *base,
        "-s",
        "on_conflict",
        "-i",
        "repeatable-read",
        "--retries",
        "5",
        "--expect",
        "correct",
        "--json",
    )
    assert status == 0
    data = json.loads(out)
    for key in (
        "attempts",
        "granted",
        "already_granted",
        "failed",
        "retries",
        "duplicate_orders",
        "extra_grants",
        "missing_orders",
        "throughput_per_s",
        "latency_ms",
    ):
        assert key in data
    assert set(data["latency_ms"]) == {"p50", "p95", "p99", "max"}
    assert (data["attempts"], data["granted"], data["duplicate_orders"]) == (160, 20, 0)
    # throughput counts the requests; grants/s only those that granted (20 of 160 here)
    elapsed = data["elapsed_s"]  # rounded to the ms: so much may the ratios be off
    off = 0.001 + 0.0005 / elapsed
    assert data["throughput_per_s"] == pytest.approx(160 / elapsed, rel=off)
    assert data["grants_per_s"] == pytest.approx(20 / elapsed, rel=off)
    lines = csv_file.read_text().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("strategy,isolation")


@pytest.mark.stress
@pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None, reason="the plots extra is not installed"
)
def test_compare_writes_charts(
    cli_lab: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_dir = tmp_path / "charts"
    status, out, _ = run(
        capsys,
        *cli_lab,
        "compare",
        "--strategies",
        "seed,on_conflict",
        "--isolation",
        "read-committed,repeatable-read",
        "--workers",
        "4",
        "--orders",
        "10",
        "--out",
        str(out_dir),
        "--json",
    )
    assert status == 0
    data = json.loads(out)
    assert len(data["results"]) == 4
    seed_rr = next(
        r for r in data["results"] if (r["strategy"], r["isolation"]) == ("seed", "repeatable-read")
    )
    assert seed_rr["duplicate_orders"] > 0
    charts = sorted(p.name for p in out_dir.iterdir())
    assert charts == ["duplicates_hot_4w.png", "throughput_p99_hot_4w.png"]
    assert all((out_dir / name).read_bytes()[:4] == b"\x89PNG" for name in charts)


def test_strategies_lists_every_strategy_with_its_declared_verdicts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, _ = run(capsys, "strategies", "--json")
    assert status == 0
    listed = {entry["name"]: entry for entry in json.loads(out)}
    assert set(listed) == set(STRATEGIES)
    seed = listed["seed"]
    assert seed["schema"] == "unconstrained"
    assert [step["name"] for step in seed["steps"]] == [
        "select_order", "lock_order", "find_grant", "insert_grant"
    ]  # fmt: skip
    assert "FOR UPDATE" in seed["steps"][1]["sql"]
    assert {level: v["race"] for level, v in seed["verdicts"].items()} == {
        "read-committed": "correct",
        "repeatable-read": "duplicate",
        "serializable": "correct with retries",
    }
    assert listed["on_conflict"]["schema"] == "constrained"
    status, out, _ = run(capsys, "strategies")
    assert status == 0
    assert all(name in out for name in STRATEGIES)
    assert "grant strategies on PostgreSQL and MariaDB / MySQL" in out


def test_strategies_gives_the_verdicts_of_the_engine_at_hand(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Declared per engine, as the interleaving tests hold them: lock first duplicates at
    REPEATABLE READ on PostgreSQL and is a fix on InnoDB. Nothing connects."""
    rr = "repeatable-read"
    for url, engine, race in [
        ("postgresql://nobody@127.0.0.1:1/x", "postgresql", "duplicate"),
        ("mysql://nobody@127.0.0.1:1/", "mysql", "correct"),
    ]:
        status, out, _ = run(capsys, "--database-url", url, "strategies", "lock_first", "--json")
        assert status == 0
        data = json.loads(out)
        assert (data["engine"], data["verdicts"][rr]["race"]) == (engine, race)
        assert set(data["engines"]) == {engine}
    status, out, _ = run(capsys, "strategies", "--json")
    both = {entry["name"]: entry["engines"] for entry in json.loads(out)}
    assert both["lock_first"]["postgresql"][rr]["race"] == "duplicate"
    assert both["lock_first"]["mysql"][rr]["race"] == "correct"
    mysql_steps = STRATEGIES["lock_first"].for_engine("mysql").steps
    status, out, _ = run(capsys, "--database-url", "mysql://x@h/", "strategies", "lock_first")
    assert "lock_first on MariaDB / MySQL: one transaction, step by step" in out
    assert "grant strategies on MariaDB / MySQL" in out
    assert all(step.name in out for step in mysql_steps)


def test_strategies_name_shows_its_why_and_its_sql(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "strategies", "lock-first")
    assert status == 0
    assert "snapshot" in out  # the docstring: why it still duplicates at repeatable-read
    assert "SELECT id FROM orders WHERE id = :order_id FOR UPDATE" in out


def test_explain_saves_the_timeline_as_an_html_page(
    cli_lab: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    page = tmp_path / "seed.html"
    argv = ["explain", "seed", "-i", "repeatable-read", "--schedule", "t2-waits"]
    status, out, err = run(capsys, *cli_lab, *argv, "--html", str(page))
    assert status == 0
    assert f"saved {page}" in err
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>")
    for shown in ("waits for T1", 'data-verdict="duplicate"', "T2 waited at step 2 (lock_order"):
        assert shown in html, shown
    assert "waits for T1" in out  # the terminal gets the same timeline


@pytest.mark.stress
def test_stress_history_file_holds_every_request_and_matches_the_table(
    cli_lab: list[str], server: Server, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    history = tmp_path / "requests.jsonl"
    argv = ["stress", "-s", "seed", "-i", "repeatable-read", "-w", "6", "-n", "20", "-p", "2"]
    status, out, err = run(capsys, *cli_lab, *argv, "--history", str(history), "--json")
    assert status == 0
    assert f"history: 120 requests in {history}" in err
    requests = [json.loads(line) for line in history.read_text().splitlines()]
    assert len(requests) == json.loads(out)["attempts"] == 120
    assert {r["worker"] for r in requests} == set(range(6))
    assert all(r["start_ns"] <= r["end_ns"] for r in requests)
    reported = sorted(r["red_packet_id"] for r in requests if r["outcome"] == "granted")
    lab = Lab(server, cli_lab[cli_lab.index("--lab-database") + 1])
    with psycopg.connect(conninfo(lab.url_of(Schema.UNCONSTRAINED))) as conn:
        rows = [row[0] for row in conn.execute("SELECT id FROM red_packets ORDER BY id")]
    assert reported == rows  # every grant the callers were told of, and nothing else
    assert len(rows) > 20  # seed at repeatable-read: the duplicates are in the history too


def test_doctors_hint_names_the_lab_and_the_server_it_is_about(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    url = server.url.render_as_string(hide_password=False)
    if server.backend != "url":
        pytest.skip("the hint names the URL's server; this test server is the lab's own")
    assert main(["--database-url", url, "--lab-database", "redpacket_never_made", "doctor"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "redpacket --lab-database redpacket_never_made migrate" in out
    assert "with the same --database-url" in out
