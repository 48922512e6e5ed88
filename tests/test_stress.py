"""Concurrent stress against the real server: the bug shows, the fixes hold."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

import psycopg
import pytest

from redpacket.database.lab import Lab, Schema
from redpacket.engines.postgresql import conninfo
from redpacket.errors import LabError
from redpacket.isolation import Isolation
from redpacket.strategies import STRATEGIES
from redpacket.stress.check import GrantCheck
from redpacket.stress.compare import compare_plans, run_comparison
from redpacket.stress.live import Live
from redpacket.stress.plan import Engine, StressPlan, Workload
from redpacket.stress.result import StressResult
from redpacket.stress.runner import run_stress

pytestmark = pytest.mark.stress

RC, RR, SER = Isolation.READ_COMMITTED, Isolation.REPEATABLE_READ, Isolation.SERIALIZABLE


def stress(lab: Lab, strategy: str, level: Isolation, **options: object) -> StressResult:
    plan = StressPlan(STRATEGIES[strategy], level, **{"workers": 16, "orders": 100, **options})  # type: ignore[arg-type]
    return run_stress(lab, plan)


def packets_per_order(lab: Lab, strategy: str) -> dict[int, int]:
    schema = Schema.for_revision(STRATEGIES[strategy].requires_revision)
    with psycopg.connect(conninfo(lab.url_of(schema))) as conn:
        rows = conn.execute(
            "SELECT o.id, count(r.id) FROM orders o"
            " LEFT JOIN red_packets r ON r.order_id = o.id GROUP BY o.id"
        ).fetchall()
    return {int(order): int(count) for order, count in rows}


def check_of(result: StressResult) -> GrantCheck:
    assert result.check is not None, result.error
    return result.check


@pytest.mark.parametrize(("strategy", "level"), [("seed", RR), ("naive", RC)])
def test_the_bug_duplicates_under_hot_load(lab: Lab, strategy: str, level: Isolation) -> None:
    result = stress(lab, strategy, level)
    assert check_of(result).duplicate_orders >= 90
    counts = packets_per_order(lab, strategy)
    assert sum(1 for n in counts.values() if n > 1) == check_of(result).duplicate_orders
    assert sum(n - 1 for n in counts.values() if n > 1) == check_of(result).extra_grants
    assert result.tally.attempts == 1600
    assert result.tally.granted == sum(counts.values())


FIXES = [("lock_first", RC)] + [
    (name, level)
    for name in ("on_conflict", "conditional_update", "optimistic")
    for level in Isolation
]


@pytest.mark.parametrize(("strategy", "level"), FIXES, ids=[f"{s}-{lv.value}" for s, lv in FIXES])
def test_fixes_grant_exactly_once_per_order(lab: Lab, strategy: str, level: Isolation) -> None:
    # 16 workers on one order at serializable can meet 40001 several times in a row
    # (SSI aborts on dangerous structures, not only on real anomalies): retry enough.
    result = stress(lab, strategy, level, retries=20)
    assert packets_per_order(lab, strategy) == dict.fromkeys(range(1, 101), 1)
    assert (check_of(result).duplicate_orders, check_of(result).missing_orders) == (0, 0)
    assert result.tally.granted == 100
    assert result.tally.already_granted == 1500
    assert not result.tally.failed


@pytest.mark.parametrize(
    ("strategy", "level", "duplicates"), [("seed", RR, True), ("on_conflict", RR, False)]
)
def test_two_processes_find_the_same(
    lab: Lab, strategy: str, level: Isolation, duplicates: bool
) -> None:
    result = stress(lab, strategy, level, processes=2, retries=20)
    assert result.tally.attempts == 1600
    if duplicates:
        assert check_of(result).duplicate_orders >= 90
    else:
        assert packets_per_order(lab, strategy) == dict.fromkeys(range(1, 101), 1)


@pytest.mark.parametrize(("strategy", "duplicates"), [("seed", True), ("on_conflict", False)])
def test_service_engine_agrees_with_the_loop_engine(
    lab: Lab, strategy: str, duplicates: bool
) -> None:
    result = stress(lab, strategy, RR, engine=Engine.SERVICE, orders=30, workers=8, retries=20)
    assert result.tally.attempts == 240
    # threads in one process share the GIL, which narrows the race under CPU load
    # (22 of 30 with three busy loops on the 2 cores): a third is still the bug
    found = check_of(result)
    if duplicates:
        assert found.duplicate_orders >= 10
    else:
        assert packets_per_order(lab, strategy) == dict.fromkeys(range(1, 31), 1)
    assert found.missing_orders == 0


def test_uniform_workload_counts_every_request(lab: Lab) -> None:
    result = stress(
        lab, "on_conflict", RC, workload=Workload.UNIFORM, orders=500, attempts=3000, processes=2
    )
    assert result.tally.attempts == 3000
    assert result.tally.granted + result.tally.already_granted == 3000
    counts = packets_per_order(lab, "on_conflict")
    assert sum(counts.values()) == result.tally.granted
    assert max(counts.values()) == 1
    assert result.tally.latency.total == 3000
    assert result.throughput_per_s > 0


def test_uniform_duration_stops(lab: Lab) -> None:
    result = stress(lab, "lock_first", RC, workload=Workload.UNIFORM, duration_s=0.5, workers=4)
    assert 0.5 <= result.elapsed_s < 3
    assert result.tally.attempts > 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"workers": 0}, "--workers must be at least 1"),
        ({"orders": 0}, "--orders must be at least 1"),
        ({"processes": 32}, "--processes (32) cannot exceed --workers (16)"),
        ({"duration_s": 0.0}, "--duration must be more than 0"),
        ({"retries": -1}, "--retries must be 0 or more"),
        ({"attempts": 0}, "--attempts must be at least 1"),
    ],
)
def test_bad_plans_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(LabError, match=message.replace("(", r"\(").replace(")", r"\)")):
        StressPlan(STRATEGIES["seed"], RC, **{"workers": 16, **options})  # type: ignore[arg-type]


def test_a_worker_process_killed_mid_run_ends_the_run_with_a_clear_error(lab: Lab) -> None:
    killed: list[int] = []

    def kill_one(live: Live) -> None:
        if live.attempts and not killed:
            child = next(c for c in multiprocessing.active_children() if c.name.endswith("-0"))
            assert child.pid is not None
            os.kill(child.pid, signal.SIGKILL)
            killed.append(child.pid)

    plan = StressPlan(
        STRATEGIES["on_conflict"], RC, workers=4, orders=100, workload=Workload.UNIFORM,
        processes=2, duration_s=30,
    )  # fmt: skip
    result = run_stress(lab, plan, kill_one)
    assert killed
    assert result.error == (
        "stress worker process 0 was killed by signal 9 before sending its figures;"
        " the figures are those the others sent"
    )
    assert result.elapsed_s < 30  # the other process stopped too, and did not wait it out
    assert result.tally.attempts > 0  # and its figures were kept


NO_MAIN_GUARD = """
from redpacket.database.backends import open_server
from redpacket.database.lab import Lab
from redpacket.errors import LabError
from redpacket.isolation import Isolation
from redpacket.strategies import STRATEGIES
from redpacket.stress.plan import StressPlan
from redpacket.stress.runner import run_stress

with open_server("url", {url!r}) as server:
    plan = StressPlan(STRATEGIES["on_conflict"], Isolation.READ_COMMITTED, workers=2, processes=2)
    try:
        result = run_stress(Lab(server, {lab!r}), plan)
    except LabError as exc:
        print("refused:", exc)
    else:
        print("ran:", result.throughput_per_s)
"""


def test_a_run_whose_processes_never_start_says_why(lab: Lab, tmp_path: Path) -> None:
    script = tmp_path / "no_guard.py"
    url = lab.server.url.set(drivername="postgresql").render_as_string(hide_password=False)
    script.write_text(NO_MAIN_GUARD.format(url=url, lab=lab.name))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith(("refused", "ran"))]
    assert lines, done.stderr
    assert lines[-1].startswith("refused: stress worker process"), lines
    assert "before it could start" in lines[-1]
    assert 'if __name__ == "__main__":' in lines[-1]


def test_a_comparison_is_planned_and_run_by_the_core(lab: Lab) -> None:
    chosen = [STRATEGIES["seed"], STRATEGIES["on_conflict"]]
    plans = compare_plans(chosen, [RR], [4], [Workload.HOT, Workload.UNIFORM], orders=10, retries=5)
    assert [(p.strategy.name, p.workload, p.attempts) for p in plans] == [
        ("seed", Workload.HOT, None),
        ("on_conflict", Workload.HOT, None),
        ("seed", Workload.UNIFORM, 100),
        ("on_conflict", Workload.UNIFORM, 100),
    ]
    seen: list[str] = []

    def started(plan: StressPlan) -> None:
        seen.append(plan.label)

    results = run_comparison(
        lab, plans[:2], started, finished=lambda result: seen.append(f"done {result.correct}")
    )
    assert seen == [
        "seed/repeatable-read/hot/4w",
        "done False",
        "on_conflict/repeatable-read/hot/4w",
        "done True",
    ]
    assert [r.tally.attempts for r in results] == [40, 40]


def test_ctrl_c_while_a_request_is_being_counted_counts_it_once(
    lab: Lab,
) -> None:
    """Ctrl-C lands between a request's count and its place in the history (CI saw it once:
    14 requests in the history for 13 attempts + 2 interrupted). A trace function sends the
    signal on the 20th entry into ``History.record``, the worst moment there is; the run
    must still end interrupted with every request counted exactly once."""
    from redpacket.stress import history

    if not str(history.__file__).endswith(".py"):
        pytest.skip("the stress loop is compiled here: no Python frame to send the signal from")
    record = history.History.record.__code__
    calls = 0

    def send_ctrl_c_inside_record(frame: FrameType, event: str, _arg: object) -> None:
        nonlocal calls
        if event == "call" and frame.f_code is record:
            calls += 1
            if calls == 20:
                os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # xdist may ignore it
    plan = StressPlan(
        STRATEGIES["lock_first"], RC, workers=4, orders=1000, workload=Workload.UNIFORM,
        duration_s=60,
    )  # fmt: skip
    sys.settrace(send_ctrl_c_inside_record)
    try:
        result = run_stress(lab, plan)
    finally:
        sys.settrace(None)
        signal.signal(signal.SIGINT, previous)
    assert calls >= 20
    assert result.interrupted
    assert result.history_check is not None
    assert result.tally.attempts >= 19
    assert result.history_check.requests == result.tally.attempts + result.tally.interrupted
