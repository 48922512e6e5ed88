"""Why two red packets: whose check missed whose grant, and why nothing stopped it."""

from __future__ import annotations

import re

from redpacket.interleave.timeline import Event
from redpacket.interleave.why.story import Sentence, Story, level_words
from redpacket.strategies import Role

_ROW_LOCK = re.compile(
    r"\bfor\s+(update|share|no\s+key\s+update|key\s+share)\b|\block\s+in\s+share\s+mode\b", re.I
)


def duplicate(story: Story, granted: list[int]) -> list[Sentence]:
    first, second = granted[0], granted[1]
    check = {s: story.check_of(s) for s in (first, second)}
    insert = {s: story.granted_insert(s) for s in (first, second)}
    a, b = check[first], check[second]
    ia, ib = insert[first], insert[second]
    if a is None or b is None or ia is None or ib is None:
        return [Sentence(f"T{first} and T{second} both inserted a red packet.")]
    if story.at(b) > story.at(ia):
        return missed(story, second, first, b, ia)
    if story.at(a) > story.at(ib):
        return missed(story, first, second, a, ib)
    story.causes.append("both checked before either inserted")
    return [
        Sentence(
            f"Both checks ran before either session inserted: T{first}'s {story.cite(a)} and"
            f" T{second}'s {story.cite(b)} each found no red packet, so both inserted.",
            (story.at(a), story.at(b)),
        ),
        *_locked_nothing(story, (first, a), (second, b)),
        *below_serializable(story, a, b),
    ]


def _locked_nothing(story: Story, *checks: tuple[int, Event]) -> list[Sentence]:
    """Two locking checks that found nothing and held nothing back: the engine's rule for
    what such a read locks, said only when neither insert waited (the events say so)."""
    if not all(_ROW_LOCK.search(check.sql) for _, check in checks):
        return []
    inserts = [e for s, _ in checks for e in story.with_role(s, story.attempts(s), Role.INSERT)]
    if any(story.waits(s, story.attempts(s)) for s, _ in checks) or not inserts:
        return []
    levels = {story.level(s) for s, _ in checks}
    if len(levels) != 1:
        return []
    rule = story.engine.empty_locking_read_rule(levels.pop())
    return [
        Sentence(
            f"Both checks were locking reads that found no row; {rule}: neither insert waited"
            " for the other.",
            tuple(story.at(check) for _, check in checks),
        )
    ]


def below_serializable(story: Story, *checks: Event | None) -> list[Sentence]:
    """The engine's rule for plain reads; nothing for a locking (current) read, whose rules
    (locks on the index records and gaps it read) this sentence does not speak for."""
    if any(check is None or check.read == "current read" for check in checks):
        return []
    return [Sentence(story.engine.committed_only_rule)]


def _checked(story: Story, session: int, check: Event) -> str:
    if check.role == Role.CHECK.value:
        return f"T{session}'s check, {story.cite(check)},"
    return f"T{session}'s {story.cite(check)}, which checks and inserts in one statement,"


def missed(story: Story, late: int, other: int, check: Event, insert: Event) -> list[Sentence]:
    """``late``'s check missed ``other``'s red packet: uncommitted, or newer than its snapshot."""
    commit = story.commit(other)
    checked = _checked(story, late, check)
    if commit is None or story.before(check, commit):
        story.causes.append("a check ran before the other grant was committed")
        until = f" but not committed until {story.ref(commit)}" if commit else " but not committed"
        refs = (story.at(check), story.at(insert)) + ((story.at(commit),) if commit else ())
        if check.read == "current read":
            said = (
                f"{checked} a locking (current) read, found no red packet: T{other}'s had been"
                f" inserted ({story.ref(insert)}){until}."
            )
        else:
            said = (
                f"{checked} found no red packet: T{other}'s had been inserted"
                f" ({story.ref(insert)}){until}, and {story.engine.uncommitted_rule}."
            )
        sentences = [Sentence(said, refs)]
        other_check = story.check_of(other)
        if story.before(other_check, story.commit(late)):
            sentences.append(Sentence("Both checks ran before either commit."))
            sentences += below_serializable(story, check, other_check)
        if not story.waits(late, story.attempts(late)):
            said = f"Nothing made T{late} wait for T{other}, so both inserted."
            if _ROW_LOCK.search(check.sql) and not check.rows:  # a locking check, no row
                rule = story.engine.empty_locking_read_rule(story.level(late))
                said = f"T{late}'s check was a locking read that found no row; {rule}. " + said
            sentences.append(Sentence(said, (story.at(check),)))
        return sentences
    attempt = story.attempts(late)
    snapshot = story.snapshot(late, attempt)
    if snapshot is None:
        return [Sentence(f"{checked} found no red packet, and T{late} inserted a second one.")]
    story.causes.append("the check read a snapshot from before the other's commit")
    first = (
        "its first statement"
        if snapshot.step_number == 1
        else f"its first {story.engine.snapshot_taker}"
    )
    sentences = [
        Sentence(
            f"{checked} ran after T{other} committed its red packet ({story.ref(commit)}), but at"
            f" {level_words(story.level(late))} T{late} reads with the snapshot {first},"
            f" {story.cite(snapshot)}, took before that commit; so the check found nothing and"
            f" T{late} inserted a second red packet.",
            (story.at(check), story.at(commit), story.at(snapshot)),
        )
    ]
    waits = [w for w in story.waits(late, attempt) if story.released_by(w) is not None]
    if waits:
        sentences += _the_wait(story, late, other, waits[0], snapshot)
    locks = story.with_role(late, attempt, Role.LOCK)
    if locks and story.at(locks[-1]) > story.at(commit):
        sentences.append(_no_refusal(story, late, other, locks[-1]))
    return sentences


def _the_wait(story: Story, late: int, other: int, wait: Event, snapshot: Event) -> list[Sentence]:
    released = story.released_by(wait)
    assert released is not None
    if story.at(wait) == story.at(snapshot):
        said = Sentence(
            f"That statement is the one that waited for T{other} ({story.ref(wait)}):"
            f" {story.server} fixed its snapshot as it started, before it blocked, so waiting"
            " could not make the snapshot newer.",
            (story.at(wait),),
        )
    else:
        said = Sentence(
            f"T{late} waited at {story.cite(wait)} until T{other}'s {story.cite(released)}"
            f" released it, but its snapshot had been fixed already ({story.ref(snapshot)}).",
            (story.at(wait), story.at(released), story.at(snapshot)),
        )
    sentences = [said]
    if wait.role == Role.LOCK.value:
        sentences.append(
            Sentence(
                f"The lock ordered the two transactions; it did not change what T{late} could see."
            )
        )
    return sentences


def _no_refusal(story: Story, late: int, other: int, lock: Event) -> Sentence:
    """Why a stale snapshot went unpunished: nothing it locked had been changed."""
    if lock.read == "current read":
        return Sentence(
            f"T{late}'s {story.cite(lock)} was a current read: {story.server} locks and reads the"
            " newest committed row version whatever the snapshot, and only the plain reads used"
            " the old one.",
            (story.at(lock),),
        )
    if not _ROW_LOCK.search(lock.sql):
        return Sentence(
            f"T{late}'s {story.cite(lock)} takes a lock on a key, not on a row: it checks no row"
            f" version, so it could never refuse T{late} with 40001, whatever T{other} wrote.",
            (story.at(lock),),
        )
    updated = story.wrote(other, Role.CLAIM, Role.BUMP)
    if not updated:
        return Sentence(
            f"T{other} had only locked the order row, never updated it, so T{late}'s locking"
            f" read ({story.ref(lock)}) found no newer row version to refuse with 40001.",
            (story.at(lock),),
        )
    return Sentence(
        f"T{late}'s locking read ({story.ref(lock)}) locked the newest row version.",
        (story.at(lock),),
    )
