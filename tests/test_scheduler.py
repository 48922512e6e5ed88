"""The facts the lab teaches, pinned against the real server, and their determinism."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from redpacket.database.lab import Lab, Schema
from redpacket.engines.postgresql import conninfo
from redpacket.errors import LabError
from redpacket.interleave.explain import explain
from redpacket.interleave.matrix import cells, run_matrix
from redpacket.interleave.schedule import SCHEDULE_NAMES, parse_schedule
from redpacket.interleave.scheduler import Scheduler
from redpacket.interleave.timeline import Kind, Run, Verdict
from redpacket.isolation import Isolation, Levels
from redpacket.retry import RetryPolicy
from redpacket.specs import output
from redpacket.specs.events import StepWaiting
from redpacket.strategies import STRATEGIES, Race

RC, RR, SER = Isolation.READ_COMMITTED, Isolation.REPEATABLE_READ, Isolation.SERIALIZABLE


@pytest.fixture(scope="module")
def scheduler(lab: Lab) -> Iterator[Scheduler]:
    with Scheduler(lab, timeout_s=5) as running:
        yield running


def run(
    scheduler: Scheduler,
    strategy: str,
    level: Isolation,
    schedule: str = "t2-first-read",
    retries: int = 0,
) -> Run:
    chosen = STRATEGIES[strategy]
    return scheduler.run(
        chosen, level, parse_schedule(schedule, len(chosen.steps)), RetryPolicy(retries)
    )


# -- the facts of the issue, schedule t2-first-read, no retries ---------------------


@pytest.mark.parametrize(
    ("strategy", "level", "verdict", "packets", "failed"),
    [
        ("seed", RC, Verdict.CORRECT, 1, ()),
        ("seed", RR, Verdict.DUPLICATE, 2, ()),
        ("seed", SER, Verdict.REFUSED, 1, ("40001",)),
        ("lock_first", RC, Verdict.CORRECT, 1, ()),
        ("lock_first", RR, Verdict.DUPLICATE, 2, ()),
        ("advisory", RC, Verdict.CORRECT, 1, ()),
        ("advisory", RR, Verdict.DUPLICATE, 2, ()),
        ("naive", RC, Verdict.DUPLICATE, 2, ()),
        ("naive", RR, Verdict.DUPLICATE, 2, ()),
    ],
)
def test_facts_without_retries(
    scheduler: Scheduler,
    strategy: str,
    level: Isolation,
    verdict: Verdict,
    packets: int,
    failed: tuple[str, ...],
) -> None:
    result = run(scheduler, strategy, level)
    assert (result.verdict, result.red_packets, result.failed_sqlstates) == (
        verdict,
        packets,
        failed,
    )


@pytest.mark.parametrize("strategy", ["on_conflict", "conditional_update"])
@pytest.mark.parametrize("level", list(Isolation))
def test_atomic_fixes_leave_exactly_one_red_packet(
    scheduler: Scheduler, strategy: str, level: Isolation
) -> None:
    result = run(scheduler, strategy, level)
    assert result.red_packets == 1
    assert set(result.failed_sqlstates) <= ({"40001"} if level is not RC else set())


WITH_RETRIES = {
    SER: set(STRATEGIES),
    RR: {"conditional_update", "optimistic", "on_conflict", "unique_catch"},
    RC: set(STRATEGIES) - {"naive", "lock_check"},
}


@pytest.mark.parametrize("level", list(Isolation))
@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_facts_with_retries(scheduler: Scheduler, strategy: str, level: Isolation) -> None:
    result = run(scheduler, strategy, level, retries=3)
    if strategy in WITH_RETRIES[level]:
        assert (result.verdict, result.red_packets, result.failed_sqlstates) == (
            Verdict.CORRECT,
            1,
            (),
        )
    else:
        assert (result.verdict, result.red_packets) == (Verdict.DUPLICATE, 2)


@pytest.mark.parametrize("schedule", ["t2-first-read", "t2-waits"])
@pytest.mark.parametrize("level", list(Isolation))
@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_each_strategy_does_what_it_declares(
    scheduler: Scheduler, strategy: str, level: Isolation, schedule: str
) -> None:
    """The verdicts ``redpacket strategies`` prints are held to the server here."""
    declared = STRATEGIES[strategy].verdicts[level].race
    once = run(scheduler, strategy, level, schedule)
    retried = run(scheduler, strategy, level, schedule, retries=3)
    if declared is Race.DUPLICATE:
        assert (retried.verdict, retried.red_packets) == (Verdict.DUPLICATE, 2)
        return
    assert once.red_packets == 1  # never a duplicate, retries or not
    assert (retried.verdict, retried.failed_sqlstates) == (Verdict.CORRECT, ())
    if declared is Race.CORRECT:
        assert (once.verdict, once.failed_sqlstates) == (Verdict.CORRECT, ())


NEEDS_RETRIES = [
    (name, level)
    for name, strategy in STRATEGIES.items()
    for level in Isolation
    if strategy.verdicts[level].race is Race.CORRECT_WITH_RETRIES
]


@pytest.mark.parametrize(("strategy", "level"), NEEDS_RETRIES)
def test_correct_with_retries_means_some_race_fails_the_loser(
    scheduler: Scheduler, strategy: str, level: Isolation
) -> None:
    failures = {run(scheduler, strategy, level, s).verdict for s in ("t2-first-read", "t2-waits")}
    assert failures & {Verdict.REFUSED, Verdict.LOST_RACE}


# -- the timeline -----------------------------------------------------------------------


def test_lock_first_wait_is_seen_from_the_server_and_resumes_after_commit(
    scheduler: Scheduler,
) -> None:
    result = run(scheduler, "lock_first", RR)
    shape = [(e.session, e.action, e.kind) for e in result.events]
    assert shape == [
        (1, "begin", Kind.DONE),
        (1, "lock_order", Kind.DONE),
        (2, "begin", Kind.DONE),
        (2, "lock_order", Kind.WAIT),
        (1, "find_grant", Kind.DONE),
        (1, "insert_grant", Kind.DONE),
        (1, "commit", Kind.DONE),
        (2, "lock_order", Kind.RESUME),
        (2, "find_grant", Kind.DONE),
        (2, "insert_grant", Kind.DONE),
        (2, "commit", Kind.DONE),
    ]
    wait = result.events[3]
    assert wait.waited_on == (1,)
    assert wait.takes_snapshot  # the blocked lock is where T2's snapshot comes from
    assert result.events[8].rows == ()  # T2's check, after T1's commit, sees nothing
    assert [e.takes_snapshot for e in result.events if e.session == 2].count(True) == 1
    why = str(explain(result))
    assert "That statement is the one that waited for T1 (#4)" in why


@pytest.mark.parametrize(
    ("strategy", "level", "verdict", "packets"),
    [
        ("seed", RR, Verdict.DUPLICATE, 2),
        ("seed", RC, Verdict.CORRECT, 1),
        ("lock_first", RR, Verdict.DUPLICATE, 2),
        ("advisory", RR, Verdict.DUPLICATE, 2),
        ("on_conflict", RC, Verdict.CORRECT, 1),
        ("unique_catch", RR, Verdict.CORRECT, 1),
    ],
)
def test_t2_waits_for_t1_and_only_the_level_decides_what_it_sees(
    scheduler: Scheduler, strategy: str, level: Isolation, verdict: Verdict, packets: int
) -> None:
    result = run(scheduler, strategy, level, "t2-waits")
    waits = [e for e in result.events if e.kind is Kind.WAIT]
    assert [(e.session, e.waited_on) for e in waits] == [(2, (1,))]
    kinds = [(e.session, e.action, e.kind) for e in result.events]
    released = kinds.index((1, "commit", Kind.DONE)) + 1
    assert kinds[released] == (2, waits[0].action, Kind.RESUME)
    assert (result.verdict, result.red_packets) == (verdict, packets)


def test_seed_waiting_for_the_lock_still_reads_its_old_snapshot(scheduler: Scheduler) -> None:
    result = run(scheduler, "seed", RR, "t2-waits")
    second = [(e.action, e.kind) for e in result.events if e.session == 2]
    assert second == [
        ("begin", Kind.DONE),
        ("select_order", Kind.DONE),
        ("lock_order", Kind.WAIT),
        ("lock_order", Kind.RESUME),
        ("find_grant", Kind.DONE),
        ("insert_grant", Kind.DONE),
        ("commit", Kind.DONE),
    ]
    check = next(e for e in result.events if e.session == 2 and e.action == "find_grant")
    assert check.rows == ()
    assert [s.outcome.label for s in result.sessions] == ["granted", "granted"]
    why = str(explain(result))
    assert "T2 waited at step 2 (lock_order, #6) until T1's COMMIT (#9) released it" in why
    assert "did not change what T2 could see" in why


def test_read_committed_takes_a_snapshot_per_statement(scheduler: Scheduler) -> None:
    result = run(scheduler, "seed", RC)
    steps = [e for e in result.events if e.session == 2 and e.step_number]
    assert all(e.takes_snapshot for e in steps)
    assert steps[-1].decision == "already_granted"


def test_unique_violation_handled_as_already_granted_stays_correct(scheduler: Scheduler) -> None:
    result = run(scheduler, "unique_catch", RC)
    assert result.errors == ("23505",)
    assert result.verdict is Verdict.CORRECT
    assert [s.outcome.label for s in result.sessions] == ["granted", "already_granted"]


def test_retry_is_recorded_as_a_new_attempt(scheduler: Scheduler) -> None:
    result = run(scheduler, "conditional_update", RR, retries=2)
    loser = result.sessions[1]
    assert (loser.outcome.label, loser.attempts, loser.errors) == ("already_granted", 2, ("40001",))
    assert {e.attempt for e in result.events if e.session == 2} == {1, 2}


def test_t2_begins_first_shows_begin_takes_no_snapshot(scheduler: Scheduler) -> None:
    result = run(scheduler, "lock_first", RR, "t2-begins-first")
    assert result.events[0].session == 2
    assert result.events[0].action == "begin"
    assert result.verdict is Verdict.CORRECT
    assert "not at BEGIN" in str(explain(result))


def test_a_schedule_blocked_from_outside_is_reported_stuck(lab: Lab) -> None:
    with (
        psycopg.connect(conninfo(lab.url_of(Schema.UNCONSTRAINED))) as outsider,
        Scheduler(lab, timeout_s=0.5) as scheduler,
    ):
        outsider.execute("LOCK TABLE red_packets IN EXCLUSIVE MODE")
        result = run(scheduler, "naive", RC)
        outsider.rollback()
    assert result.verdict is Verdict.STUCK
    assert result.stuck is not None
    assert "another backend" in result.stuck
    assert result.red_packets == 0


def test_a_strategy_run_is_the_spec_the_runner_launched(scheduler: Scheduler) -> None:
    """One engine underneath: the run's statements went out as spec steps, values written
    in, and the runner's own events say what the timeline says."""
    result = run(scheduler, "lock_first", RR, "t2-waits")
    waits = [e for e in result.spec_events if isinstance(e, StepWaiting)]
    assert [(w.session, w.step) for w in waits] == [("T2", "t2_2_lock_order")]
    assert f"WHERE id = {result.order_id} FOR UPDATE" in waits[0].sql
    text = output.text(result.spec_events)
    assert "step t2_2_lock_order: SELECT id FROM orders" in text
    assert text.index("step t1_5_commit: COMMIT\n") < text.index(
        "step t2_2_lock_order: <... completed>"
    )
    timeline = [e for e in result.events if e.session == 2 and e.action == "lock_order"]
    assert [e.kind for e in timeline] == [Kind.WAIT, Kind.RESUME]


def test_a_session_gone_before_its_next_statement_is_retried_on_a_new_one(lab: Lab) -> None:
    with Scheduler(lab, sessions=1) as one:
        one.runner_for(Schema.UNCONSTRAINED).conns[0].session.close()  # gone while idle
        chosen = STRATEGIES["seed"]
        result = one.run(chosen, RC, parse_schedule("T1:end", len(chosen.steps)), RetryPolicy(1))
    (session,) = result.sessions
    assert (session.outcome.label, session.attempts, session.errors) == ("granted", 2, ("08006",))
    assert (result.verdict, result.red_packets, result.stuck) == (Verdict.CORRECT, 1, None)


# -- determinism --------------------------------------------------------------------------


def _shape(runs: list[Run]) -> list[tuple[object, ...]]:
    return [
        (
            r.strategy,
            r.isolation,
            r.schedule,
            r.verdict,
            r.red_packets,
            r.errors,
            tuple((e.session, e.attempt, e.action, e.kind, e.sqlstate) for e in r.events),
        )
        for r in runs
    ]


@pytest.mark.slow
def test_every_cell_is_the_same_on_20_consecutive_runs(lab: Lab) -> None:
    todo = cells(list(STRATEGIES.values()), list(Isolation), list(SCHEDULE_NAMES))
    first = _shape(run_matrix(lab, todo, RetryPolicy(0)))
    assert len(first) == len(STRATEGIES) * len(Isolation) * len(SCHEDULE_NAMES) == 135
    for _ in range(19):
        assert _shape(run_matrix(lab, todo, RetryPolicy(0))) == first
    retried = cells(list(STRATEGIES.values()), list(Isolation), ["t2-first-read"])
    first_retried = _shape(run_matrix(lab, retried, RetryPolicy(3)))
    for _ in range(19):
        assert _shape(run_matrix(lab, retried, RetryPolicy(3))) == first_retried


def test_three_sessions_cost_nothing_extra(lab: Lab) -> None:
    strategy = STRATEGIES["seed"]
    schedule = parse_schedule("T1:1,T2:1,T3:1,T1:end,T2:end,T3:end", len(strategy.steps))
    with Scheduler(lab, sessions=3) as three:
        duplicated = three.run(strategy, RR, schedule)
        correct = three.run(strategy, RC, schedule)
    assert (duplicated.verdict, duplicated.red_packets) == (Verdict.DUPLICATE, 3)
    assert (correct.verdict, correct.red_packets) == (Verdict.CORRECT, 1)
    assert [s.outcome.label for s in correct.sessions] == [
        "granted",
        "already_granted",
        "already_granted",
    ]


# -- one session at another level: a service instance still running the old setting -----


def test_levels_are_parsed_per_session() -> None:
    assert Levels.parse("repeatable-read") == Levels(RR)
    mixed = Levels.parse("T1=repeatable-read, t2=read committed")
    assert mixed.for_sessions(2) == (RR, RC)
    assert mixed.label == "T1=repeatable-read,T2=read-committed"
    assert Levels.parse("T1=serializable,T2=serializable").for_sessions(2) == (SER, SER)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("T2=read-committed", "names no level for T1"),
        ("T1=read-committed,T1=serializable", "T1 is given twice"),
        ("T1=read-committed,x", "bad isolation entry 'x'"),
        ("T1=sometimes", "unknown isolation level 'sometimes'"),
    ],
)
def test_bad_per_session_levels_are_refused(text: str, problem: str) -> None:
    with pytest.raises(LabError, match=problem):
        Levels.parse(text)


def test_a_schedule_with_more_sessions_than_levels_is_refused() -> None:
    with pytest.raises(LabError, match="the schedule runs T3, but --isolation"):
        Levels.parse("T1=read-committed,T2=serializable").for_sessions(3)


@pytest.mark.parametrize(
    ("levels", "verdict"),
    [((RC, RR), Verdict.DUPLICATE), ((RR, RC), Verdict.CORRECT)],
)
def test_only_the_waiting_sessions_level_decides(
    scheduler: Scheduler, levels: tuple[Isolation, Isolation], verdict: Verdict
) -> None:
    """seed at t2-waits: T2 blocks on T1's lock; what T2 sees after the wait is T2's level."""
    strategy = STRATEGIES["seed"]
    mixed = Levels(levels[0], levels)
    result = scheduler.run(strategy, mixed, parse_schedule("t2-waits", len(strategy.steps)))
    assert (result.verdict, result.levels, result.level_of(2)) == (verdict, levels, levels[1])
    assert result.isolation == f"T1={levels[0].value},T2={levels[1].value}"
    assert any(e.session == 2 and e.kind is Kind.WAIT for e in result.events)


def test_three_sessions_at_three_levels(lab: Lab) -> None:
    strategy = STRATEGIES["seed"]
    schedule = parse_schedule("T1:1,T2:1,T3:1,T1:end,T2:end,T3:end", len(strategy.steps))
    levels = Levels.parse("T1=repeatable-read,T2=read-committed,T3=repeatable-read")
    with Scheduler(lab, sessions=3) as three:
        result = three.run(strategy, levels, schedule)
    # T2 re-reads after T1's commit and sees its grant; T3 checks in its old snapshot.
    assert [s.outcome.label for s in result.sessions] == [
        "granted",
        "already_granted",
        "granted",
    ]
    assert (result.verdict, result.red_packets) == (Verdict.DUPLICATE, 2)
