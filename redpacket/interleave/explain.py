"""Why a scheduled run ended the way it did, in plain language, from its own timeline.

The paragraph is built from what the timeline recorded — which statement fixed a
session's snapshot, whom it waited for, what its check returned, which SQLSTATE
ended it — so it explains this run, not the textbook case.
"""

from __future__ import annotations

import psycopg.errors

from redpacket.interleave.timeline import Event, Kind, Run, Verdict
from redpacket.strategies import Outcome


def sqlstate_name(sqlstate: str) -> str:
    try:
        return f"{sqlstate} {psycopg.errors.lookup(sqlstate).__name__}"
    except KeyError:
        return sqlstate


def _position(run: Run, event: Event) -> int:
    return run.events.index(event) + 1


def _commit(run: Run, session: int) -> Event | None:
    for event in run.events:
        if event.session == session and event.action == "commit" and event.sqlstate is None:
            return event
    return None


def explain(run: Run) -> str:
    if run.verdict is Verdict.STUCK:
        return f"The schedule could make no progress: {run.stuck}."
    granted = [s.session for s in run.sessions if s.outcome is Outcome.GRANTED]
    others = [s for s in run.sessions if s.outcome is not Outcome.GRANTED]
    parts = []
    if run.verdict is Verdict.DUPLICATE:
        parts.append(_explain_duplicate(run, granted))
    elif len(granted) == 1:
        winner = granted[0]
        for other in others:
            parts.append(_explain_loser(run, winner, other.session))
    elif not granted:
        parts.append("No session granted the red packet.")
    for summary in run.sessions:
        if summary.outcome is Outcome.FAILED and summary.reason:
            retry_hint = "" if run.retries else " Run with --retries to retry it."
            parts.append(
                f"T{summary.session}'s grant failed with {sqlstate_name(summary.reason)}"
                f" after {summary.attempts} attempt(s).{retry_hint}"
            )
    return " ".join(p for p in parts if p)


def _explain_duplicate(run: Run, granted: list[int]) -> str:
    first_commit = min(
        (c for s in granted if (c := _commit(run, s)) is not None), key=run.events.index
    )
    winner = first_commit.session
    late = next(s for s in granted if s != winner)
    commit_at = _position(run, first_commit)
    check = next(
        (
            e
            for e in run.events
            if e.session == late and e.action == "find_grant" and e.kind is not Kind.WAIT
        ),
        None,
    )
    waited = [e for e in run.events if e.session == late and e.kind is Kind.WAIT]
    level = run.level_of(late)
    if level.takes_snapshot_per_transaction:
        snapshot = next(
            e
            for e in run.events
            if e.session == late and e.takes_snapshot and e.kind is not Kind.RESUME
        )
        text = (
            f"T{late} took its snapshot when its first statement ({snapshot.label}) started,"
            f" at #{_position(run, snapshot)}, before T{winner} committed its red packet"
            f" at #{commit_at}."
        )
        if waited:
            text += (
                f" T{late} then waited for T{winner}'s lock ({waited[0].label}) and got it only"
                f" after that commit, but"
            )
        else:
            text += f" Although T{winner}'s commit came first,"
        text += (
            f" at {level.value} every later read of T{late} still uses that snapshot, so its"
            f" existence check{f' at #{_position(run, check)}' if check else ''} found no red"
            f" packet and it inserted a second one. The lock ordered the two transactions;"
            f" it did not change what T{late} could see."
        )
        return text
    where = f" at #{_position(run, check)}" if check else ""
    return (
        f"T{late}'s existence check{where} ran before T{winner} committed its red packet"
        f" (#{commit_at}), so it found none; nothing made T{late} wait for T{winner}, so both"
        f" inserted. Read committed takes a fresh snapshot per statement, but no snapshot can"
        f" show a grant that is not committed yet."
    )


def _explain_loser(run: Run, winner: int, loser: int) -> str:
    summary = run.sessions[loser - 1]
    commit = _commit(run, winner)
    commit_at = f"#{_position(run, commit)}" if commit else "its commit"
    mine = [e for e in run.events if e.session == loser]
    parts = []
    waits = [e for e in mine if e.kind is Kind.WAIT]
    if waits:
        wait = waits[0]
        parts.append(
            f"T{loser} waited at {wait.label} (#{_position(run, wait)}) until T{winner}"
            f" committed ({commit_at})."
        )
    for attempt in range(1, summary.attempts + 1):
        events = [e for e in mine if e.attempt == attempt and e.kind is not Kind.WAIT]
        final = attempt == summary.attempts
        if attempt > 1 and final:
            parts.append(f"T{loser} retried (attempt {attempt}) in a new transaction.")
        parts.append(_attempt_story(run, winner, loser, events, final, bool(waits), commit))
    return " ".join(p for p in parts if p)


def _attempt_story(
    run: Run,
    winner: int,
    loser: int,
    events: list[Event],
    final: bool,
    waited: bool,
    commit: Event | None,
) -> str:
    failure = next((e for e in events if e.sqlstate), None)
    decided = next((e for e in events if e.decision), None)
    if failure is not None and failure.decision == "already_granted":
        return (
            f"The unique constraint rejected T{loser}'s insert with"
            f" {sqlstate_name(failure.sqlstate or '')}, which this strategy reads as"
            ' "already granted".'
        )
    if failure is not None:
        return (
            f"PostgreSQL aborted T{loser} with {sqlstate_name(failure.sqlstate or '')} at"
            f" {failure.label} (#{_position(run, failure)}) rather than let it act on a snapshot"
            f" that misses T{winner}'s committed change."
        )
    if decided is None:
        return ""
    if decided.decision == "lost_race":
        return (
            f"T{loser}'s version check ({decided.label}, #{_position(run, decided)}) updated no"
            f" row: T{winner} had bumped the version after T{loser} read it, so T{loser} lost the"
            " race and rolled back its insert."
        )
    if not final or decided.decision != "already_granted":
        return ""
    if decided.action == "find_grant":
        return _saw_the_grant(run, winner, loser, events, decided, commit, waited)
    if decided.action == "insert_on_conflict":
        return f"Its INSERT ... ON CONFLICT then found T{winner}'s red packet and did nothing."
    if decided.action == "select_order":
        return (
            f"Its conditional UPDATE re-checked NOT red_packet_granted on T{winner}'s committed"
            " row, matched nothing, and granted nothing."
        )
    return ""


def _saw_the_grant(
    run: Run,
    winner: int,
    loser: int,
    events: list[Event],
    check: Event,
    commit: Event | None,
    waited: bool,
) -> str:
    level = run.level_of(loser)
    if waited:
        return (
            "Its existence check then ran with a snapshot taken after that commit, saw the"
            " red packet and granted nothing."
        )
    fresh = (
        ""
        if level.takes_snapshot_per_transaction
        else " (read committed takes a fresh snapshot for every statement)"
    )
    text = (
        f"T{loser}'s existence check (#{_position(run, check)}) ran with a snapshot taken after"
        f" T{winner}'s commit{f' (#{_position(run, commit)})' if commit else ''}{fresh}, so it"
        " saw the red packet and granted nothing."
    )
    begin = next((e for e in events if e.action == "begin"), None)
    if (
        commit is not None
        and begin is not None
        and run.events.index(begin) < run.events.index(commit)
        and level.takes_snapshot_per_transaction
    ):
        text += (
            f" T{loser} had sent BEGIN before that commit, but PostgreSQL takes a transaction's"
            " snapshot at its first statement, not at BEGIN."
        )
    return text
