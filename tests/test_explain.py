"""Every "why" is held to the events of its run, and the cases a teacher met are pinned.

A lab that teaches must never tell a student something false. Each sentence of an
explanation cites the events it rests on (``#n``); the checks below hold every
citation and every claim the sentence makes (a wait, a lock, a snapshot, a
re-check, the server's own words) to the timeline, for every built-in strategy at
every level, at t2-first-read and t2-waits, with and without retries.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from redpacket.database.lab import Lab
from redpacket.interleave.explain import Explanation, Sentence, explain
from redpacket.interleave.schedule import parse_schedule
from redpacket.interleave.scheduler import Scheduler
from redpacket.interleave.timeline import Kind, Run, Verdict
from redpacket.isolation import Isolation
from redpacket.retry import RetryPolicy
from redpacket.strategies import STRATEGIES, Role, get_strategy, infer_role
from redpacket.strategies.optimistic import STRATEGY as OPTIMISTIC

RC, RR, SER = Isolation.READ_COMMITTED, Isolation.REPEATABLE_READ, Isolation.SERIALIZABLE
CASES = [
    (name, level, schedule, retries)
    for name in STRATEGIES
    for level in Isolation
    for schedule in ("t2-first-read", "t2-waits")
    for retries in (0, 3)
]


@pytest.fixture(scope="module")
def scheduler(lab: Lab) -> Iterator[Scheduler]:
    with Scheduler(lab, timeout_s=5) as running:
        yield running


def scheduled(
    scheduler: Scheduler, name: str, level: Isolation, schedule: str, retries: int = 0
) -> Run:
    strategy = STRATEGIES[name] if name in STRATEGIES else get_strategy(name)
    plan = parse_schedule(schedule, len(strategy.steps))
    return scheduler.run(strategy, level, plan, RetryPolicy(retries))


def held_to_the_events(run: Run, sentence: Sentence) -> None:
    """Every claim a sentence makes, checked against the run's timeline."""
    text, events = sentence.text, run.events
    cited = {int(n) for n in re.findall(r"#(\d+)", text)}
    assert cited <= set(sentence.refs), (text, sentence.refs)
    assert all(1 <= n <= len(events) for n in sentence.refs), text
    refs = [events[n - 1] for n in sentence.refs]
    for session in {int(n) for n in re.findall(r"\bT(\d+)\b", text)}:
        assert session <= len(run.sessions), text
    if "neither insert waited" in text:  # the negative claim: no wait at all in the run
        assert not any(e.kind is Kind.WAIT for e in events), text
    elif "waited" in text:
        assert any(e.kind in (Kind.WAIT, Kind.RESUME) for e in refs) or "It had waited" in text
        assert any(e.kind is Kind.WAIT for e in events), text
    if re.search(r"\block(ed|ing)?\b", text):
        # a lock the strategy takes, or the row lock a write takes that another waited on
        writes = {Role.CLAIM.value, Role.BUMP.value, Role.INSERT.value}
        waited_on_a_write = any(e.kind is Kind.RESUME and e.role in writes for e in refs)
        locking_read = re.compile(r"\bfor\s+(update|share)\b", re.I)
        taken = any(e.role == Role.LOCK.value or locking_read.search(e.sql) for e in events)
        assert taken or waited_on_a_write, f"no lock was taken: {text}"
    if "The lock ordered" in text:
        assert any(e.kind is Kind.WAIT and e.role == Role.LOCK.value for e in events), text
    if "re-check" in text:  # read committed's re-check of the newest row version, nothing else
        resumed = [e for e in refs if e.kind is Kind.RESUME or e.action == "commit"]
        assert resumed, text
        assert any(run.level_of(e.session) is RC for e in events if e.kind is Kind.RESUME), text
    # why there was no 40001: the sentence denies it, and the run must not have one
    for code in re.findall(r"(?:to refuse with|could never refuse \w+ with|not) (40001)", text):
        assert not any(e.sqlstate == code for e in events), text
    claimed = re.sub(r"(?:to refuse with|could never refuse \w+ with|not) 40001", "", text)
    for code in re.findall(r"\b(40001|40P01|23505)\b", claimed):
        assert any(e.sqlstate == code for e in events), text
    for quoted in re.findall(r"“([^”]*)”", text):
        assert any(e.message == quoted for e in events), f"not the server's words: {quoted}"
    if re.search(r"snapshot was taken|its first (statement|plain read)", text):
        assert any(e.takes_snapshot for e in refs), text
    if "not at BEGIN" in text:
        assert any(e.action == "begin" for e in refs), text


@pytest.mark.parametrize(("name", "level", "schedule", "retries"), CASES)
def test_every_why_is_held_to_its_events(
    scheduler: Scheduler, name: str, level: Isolation, schedule: str, retries: int
) -> None:
    run = scheduled(scheduler, name, level, schedule, retries)
    explanation = explain(run)
    assert explanation.sentences, run.verdict
    for sentence in explanation.sentences:
        held_to_the_events(run, sentence)
    text = str(explanation)
    assert "every later read" not in text
    if run.verdict is Verdict.DUPLICATE:
        assert "second red packet" in text or "both inserted" in text
    for summary in run.sessions:
        if summary.reason and summary.reason != "lost_race":
            assert f"T{summary.session}'s grant was refused ({summary.reason}" in text


def why(scheduler: Scheduler, name: str, level: Isolation, schedule: str, retries: int = 0) -> str:
    return str(explain(scheduled(scheduler, name, level, schedule, retries)))


# -- the cases a teacher met, pinned -------------------------------------------------------


def test_naive_at_repeatable_read_t2_first_read_needs_no_snapshot_and_no_lock(
    scheduler: Scheduler,
) -> None:
    text = why(scheduler, "naive", RR, "t2-first-read")
    assert text.startswith(
        "Both checks ran before either session inserted: T1's step 1 (find_grant, #2) and T2's"
    )
    assert "Below serializable the isolation level makes no difference here" in text
    assert "lock" not in text
    assert "snapshot its first statement" not in text


def test_naive_at_repeatable_read_t2_waits_blames_the_late_check_not_t1(
    scheduler: Scheduler,
) -> None:
    text = why(scheduler, "naive", RR, "t2-waits")
    assert text.startswith("T2's check, step 1 (find_grant, #5), found no red packet: T1's had")
    assert "inserted (#3) but not committed until #8" in text
    assert "Both checks ran before either commit." in text
    assert "Below serializable the isolation level makes no difference" in text
    assert "T1's check" not in text


def test_naive_at_read_committed_t2_waits_says_the_grant_was_uncommitted(
    scheduler: Scheduler,
) -> None:
    text = why(scheduler, "naive", RC, "t2-waits")
    assert "no isolation level of PostgreSQL shows one transaction another's uncommitted" in text
    assert "Nothing made T2 wait for T1, so both inserted." in text


def test_seed_at_repeatable_read_t2_first_read_never_says_the_lock_ordered_them(
    scheduler: Scheduler,
) -> None:
    text = why(scheduler, "seed", RR, "t2-first-read")
    assert "The lock ordered" not in text
    assert "waited" not in text
    assert "the snapshot its first statement, step 1 (select_order, #4), took" in text
    assert "T1 had only locked the order row, never updated it" in text


def test_lock_first_at_repeatable_read_the_waiting_statement_fixed_the_snapshot(
    scheduler: Scheduler,
) -> None:
    text = why(scheduler, "lock_first", RR, "t2-waits")
    assert "That statement is the one that waited for T1 (#5)" in text
    assert "before it blocked" in text
    assert "The lock ordered the two transactions; it did not change what T2 could see." in text
    assert "never updated it, so T2's locking read (#8) found no newer row version" in text


def test_a_first_updater_wins_40001_is_named_with_the_servers_words(
    scheduler: Scheduler,
) -> None:
    text = why(scheduler, "conditional_update", RR, "t2-waits")
    assert "“could not serialize access due to concurrent update”" in text
    assert "T1's update of the order row (#2) was still uncommitted when T2's snapshot" in text
    assert "the first updater wins" in text
    assert "T2 was doomed from that commit on and found out as its wait ended" in text


def test_an_ssi_40001_is_named_with_the_servers_words(scheduler: Scheduler) -> None:
    text = why(scheduler, "naive", SER, "t2-first-read")
    assert "“could not serialize access due to read/write dependencies among transactions”" in text
    assert "serializable checking" in text
    assert "T1's check (#2) had found no red packet where T2 then tried to insert one" in text
    assert "T2's check (#4) had found no red packet where T1 then inserted one (#5)" in text
    assert "Each transaction missed what the other wrote" in text
    waits = why(scheduler, "naive", SER, "t2-waits")
    assert "refused T1's COMMIT (#8)" in waits
    assert "T1 found out only at COMMIT" in waits


def test_a_retry_takes_a_new_snapshot_and_is_never_called_a_re_check(
    scheduler: Scheduler,
) -> None:
    text = why(scheduler, "conditional_update", SER, "t2-first-read", retries=3)
    assert "T2 tried again in a new transaction (attempt 2, #9)" in text
    assert "re-check" not in text
    at_read_committed = why(scheduler, "conditional_update", RC, "t2-waits")
    assert "read committed re-checked the claim's condition" in at_read_committed


def test_begin_takes_no_snapshot(scheduler: Scheduler) -> None:
    text = why(scheduler, "seed", RR, "t2-begins-first")
    assert "T2 had sent BEGIN (#1) before that commit" in text
    assert "not at BEGIN" in text
    for name in ("conditional_update", "on_conflict"):  # no 40001 here: the snapshot came late
        assert "not at BEGIN" in why(scheduler, name, RR, "t2-begins-first")


def test_optimistic_docstring_says_where_serializable_fails() -> None:
    doc = OPTIMISTIC.doc
    assert "serializable: as repeatable-read" not in doc
    assert "serializable" in doc
    assert "insert" in doc.split("serializable")[1].split("\n\n")[0]


# -- roles, not names -----------------------------------------------------------------------

RENAMED = '''
"""lock_first under other names, written before steps had roles."""
from redpacket.isolation import Isolation
from redpacket.strategies import End, Expected, Race, Step, Strategy

STRATEGY = Strategy(
    name="grab_then_look",
    summary="lock_first with the team's own names",
    steps=(
        Step("grab_order", "SELECT id FROM orders WHERE id = :order_id FOR UPDATE",
             on_no_row=End.UNKNOWN_ORDER),
        Step("look_for_coupon", "SELECT id FROM red_packets WHERE order_id = :order_id"
             " AND campaign_id = :campaign_id LIMIT 1", on_row=End.ALREADY_GRANTED),
        Step("write_coupon", "INSERT INTO red_packets (order_id, campaign_id, amount)"
             " VALUES (:order_id, :campaign_id, :amount) RETURNING id",
             capture="red_packet_id", on_row=End.GRANTED),
    ),
    requires_revision="0001",
    verdicts={level: Expected(Race.CORRECT) for level in Isolation},
)
'''
NAMES = {
    "lock_order": "grab_order",
    "find_grant": "look_for_coupon",
    "insert_grant": "write_coupon",
}


def test_roles_are_read_off_the_statement_when_a_step_does_not_say() -> None:
    for strategy in STRATEGIES.values():
        captured: set[str] = set()
        for step, role in zip(strategy.steps, strategy.roles, strict=True):
            assert infer_role(step.sql, frozenset(captured)) is role, (strategy.name, step.name)
            if step.capture:
                captured.add(step.capture)


@pytest.mark.parametrize("level", list(Isolation))
@pytest.mark.parametrize("schedule", ["t2-first-read", "t2-waits"])
def test_a_renamed_strategy_is_explained_by_its_own_names_as_precisely(
    scheduler: Scheduler, tmp_path: Path, level: Isolation, schedule: str
) -> None:
    path = tmp_path / "grab_then_look.py"
    path.write_text(RENAMED)
    theirs = why(scheduler, str(path), level, schedule, retries=3)
    ours = why(scheduler, "lock_first", level, schedule, retries=3)
    for old, new in NAMES.items():
        assert old not in theirs
        ours = ours.replace(old, new)
    assert theirs == ours


def test_an_explanation_is_data_with_citations(scheduler: Scheduler) -> None:
    explanation = explain(scheduled(scheduler, "seed", RR, "t2-waits"))
    assert isinstance(explanation, Explanation)
    assert explanation.cause == "the check read a snapshot from before the other's commit"
    first = explanation.sentences[0]
    assert set(first.refs) >= {5, 9, 11}


def test_no_explained_run_on_postgresql_has_an_empty_why(lab: Lab) -> None:
    from redpacket.interleave.matrix import cells, run_matrix
    from redpacket.interleave.schedule import SCHEDULE_NAMES
    from redpacket.retry import RetryPolicy

    todo = cells(list(STRATEGIES.values()), list(Isolation), list(SCHEDULE_NAMES))
    runs = run_matrix(lab, todo, RetryPolicy(0))
    assert len(runs) == 135
    assert [(r.strategy, r.schedule) for r in runs if not str(explain(r)).strip()] == []


@pytest.mark.parametrize("level", [RC, RR])
def test_locking_checks_that_found_nothing_locked_nothing(
    scheduler: Scheduler, level: Isolation
) -> None:
    """lock_check on PostgreSQL: FOR UPDATE locks only rows it finds, and there is none; no
    insert waited (the run's events), and the why says why nothing held them back."""
    run = scheduled(scheduler, "lock_check", level, "t2-first-read")
    assert run.red_packets == 2
    assert not [e for e in run.events if e.kind is Kind.WAIT]
    why = str(explain(run))
    assert scheduler.lab.engine.empty_locking_read_rule(level) in why
    assert "neither insert waited for the other" in why


def test_a_locking_check_that_fixed_the_snapshot_is_called_a_statement(
    scheduler: Scheduler,
) -> None:
    """On PostgreSQL the first statement of any kind takes the snapshot; a FOR UPDATE check is
    no "plain read", and the why must not call it one."""
    run = scheduled(scheduler, "lock_check", RR, "serial")
    check = next(e for e in run.events if e.session == 2 and e.role == "check")
    assert check.takes_snapshot
    why = str(explain(run))
    assert "was its first statement, so its snapshot was taken then" in why
    assert "plain read" not in why


def test_an_ssi_refusal_tells_the_reads_and_writes_in_the_order_they_ran(
    scheduler: Scheduler,
) -> None:
    """naive at serializable, t2-waits: T1 inserted before T2 checked (uncommitted, so T2 did
    not see it), and T2 inserted after T1 checked. The why says each in its order."""
    run = scheduled(scheduler, "naive", SER, "t2-waits")
    events = run.events
    position = {(e.session, e.role): i + 1 for i, e in enumerate(events) if e.role}
    assert position[(1, "insert")] < position[(2, "check")]
    assert position[(1, "check")] < position[(2, "insert")]
    why = str(explain(run))
    assert (
        f"T2's check (#{position[(2, 'check')]}) had not seen the red packet T1 had inserted"
        f" (#{position[(1, 'insert')]}) and not yet committed"
    ) in why
    assert (
        f"T1's check (#{position[(1, 'check')]}) had found no red packet where T2 then inserted"
        f" one (#{position[(2, 'insert')]})"
    ) in why
    assert "then tried to insert one" not in why


@pytest.mark.parametrize("level", [RC, RR])
def test_a_locking_check_that_missed_an_uncommitted_grant_says_why_it_did_not_wait(
    scheduler: Scheduler, level: Isolation
) -> None:
    """lock_check at t2-waits: T2's FOR UPDATE ran after T1's insert, found no row (it cannot
    see an uncommitted one) and so locked nothing: the why says the engine's rule."""
    run = scheduled(scheduler, "lock_check", level, "t2-waits")
    assert run.red_packets == 2
    assert not [e for e in run.events if e.kind is Kind.WAIT]
    why = str(explain(run))
    assert "was a locking read that found no row" in why
    assert scheduler.lab.engine.empty_locking_read_rule(level) in why
