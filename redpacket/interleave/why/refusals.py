"""Why the server refused a statement: which kind of refusal, in its own words, and when."""

from __future__ import annotations

from redpacket.interleave.timeline import Event, Kind
from redpacket.interleave.why.story import Sentence, Story, level_words, quote
from redpacket.strategies import Role

FIRST_UPDATER = "concurrent update"  # PostgreSQL: a row changed after the snapshot
SSI = "read/write dependencies"  # PostgreSQL: serializable snapshot isolation
RECORD_CHANGED = "1020"  # InnoDB with innodb_snapshot_isolation: a row changed after it
DEADLOCKS = ("40P01", "1213")
UNIQUE = ("23505", "1062")


def refused(story: Story, winner: int, loser: int, attempt: int, failure: Event) -> list[Sentence]:
    code = failure.sqlstate or ""
    said = quote(failure.message)
    subject = f"T{loser}'s {story.cite(failure)}"
    if failure.decision:  # the strategy reads this refusal as an answer
        story.causes.append(f"{code} read as {failure.decision.replace('_', ' ')}")
        sentences = [
            Sentence(
                f"The server refused {subject} with {code} {said}; this strategy reads that as"
                f" {failure.decision.replace('_', ' ')}.",
                (story.at(failure),),
            )
        ]
        snapshot = story.snapshot(loser, attempt)
        commit = story.commit(winner) if winner else None
        if code in UNIQUE and snapshot is not None and story.before(snapshot, commit):
            sentences.append(
                Sentence(
                    "A unique index is checked against every committed and in-progress row"
                    f" whatever the snapshot, so T{loser}'s older snapshot ({story.ref(snapshot)})"
                    f" made no difference: {code}, not 40001.",
                    (story.at(snapshot),),
                )
            )
        return sentences
    commit = story.commit(winner) if winner else None
    found = "only at COMMIT" if failure.action == "commit" else "at that statement"
    if failure.kind is Kind.RESUME:
        found = "as its wait ended"
    message = failure.message or ""
    if (code == "40001" and FIRST_UPDATER in message) or code == RECORD_CHANGED:
        first_writer = _first_writer(story, winner, loser, attempt, failure, commit, found)
        if first_writer is not None:
            return [first_writer]
    if code == "40001" and SSI in message:
        return [_ssi(story, winner, loser, attempt, failure, commit, found)]
    if code in DEADLOCKS:
        story.causes.append(f"{code}, a deadlock")
        return [
            Sentence(
                f"{story.server} found a deadlock and broke it by refusing {subject} with"
                f" {failure_shown(failure)} {said}.",
                (story.at(failure),),
            ),
            *_the_cycle(story, loser, failure),
            *_the_locks(story, failure),
        ]
    after = ""
    refs = [story.at(failure)]
    if commit is not None and story.before(commit, failure):
        after = f", after T{winner} had committed ({story.ref(commit)})"
        refs.append(story.at(commit))
    return [Sentence(f"The server refused {subject} with {code} {said}{after}.", tuple(refs))]


def _the_cycle(story: Story, loser: int, failure: Event) -> list[Sentence]:
    """Who waited for whom when the deadlock was found, as the server reported the waits:
    the other half of the cycle is the refused statement's own wait, which the server ended
    at once with the error, so it is said as the error says it."""
    for wait in reversed(story.events[: story.at(failure)]):
        resume = story.resume_of(wait) if wait.kind is Kind.WAIT else None
        if (
            resume is None
            or wait.session == loser
            or loser not in wait.waited_on
            or not story.before(failure, resume)
        ):
            continue
        return [
            Sentence(
                f"The cycle: T{wait.session}'s {story.cite(wait)} was waiting for a lock"
                f" T{loser} held, and T{loser}'s {story.cite(failure)} needed one"
                f" T{wait.session} held; refusing T{loser}'s let T{wait.session}'s go on"
                f" ({story.ref(resume)}).",
                (story.at(wait), story.at(failure), story.at(resume)),
            )
        ]
    return []


def _the_locks(story: Story, failure: Event) -> list[Sentence]:
    """The locks of the cycle, as the server's own deadlock report names them: once for
    all when every session held and wanted the same kinds of lock on one place (two
    inserts into a gap both had locked), else one clause per waiting session."""
    conflicts = [c for c in failure.locks if c.waiting and any(h.holder for h in c.held)]
    if not conflicts:
        return []
    head = f"The locks, as {story.server} reported this deadlock: "
    shapes = {
        (c.wanted.what, c.wanted.place, tuple((h.what, h.place) for h in c.held if h.holder))
        for c in conflicts
    }
    if len(conflicts) > 1 and len(shapes) == 1:
        wanted, place, held = shapes.pop()
        if len(held) == 1 and held[0][1] == place:
            who = " and ".join(f"T{c.waiting}" for c in sorted(conflicts, key=lambda c: c.waiting))
            text = f"{who} each held {held[0][0]} on {place} and each then wanted {wanted} there"
            if wanted == "an insert-intention lock":  # InnoDB's rule, whatever the gap's lock
                text += (
                    ", and an insert-intention lock waits for a gap lock another transaction holds"
                )
            return [Sentence(head + text + ".", (story.at(failure),))]
    said = []
    for conflict in conflicts:
        held_by = " and ".join(
            f"T{lock.holder}'s {lock.words.split(' ', 1)[1]}"
            for lock in conflict.held
            if lock.holder
        )
        said.append(f"T{conflict.waiting} wanted {conflict.wanted.words}, against {held_by}")
    return [Sentence(head + "; ".join(said) + ".", (story.at(failure),))]


def failure_shown(failure: Event) -> str:
    return failure.sqlstate or ""


def _first_writer(
    story: Story, winner: int, loser: int, attempt: int, failure: Event, commit: Event | None,
    found: str,
) -> Sentence | None:  # fmt: skip
    snapshot = story.snapshot(loser, attempt)
    updated = story.wrote(winner, Role.CLAIM, Role.BUMP) if winner else []
    inserted = story.wrote(winner, Role.INSERT) if winner else []
    if commit is None or snapshot is None or not (updated or inserted):
        return None
    story.causes.append(f"{failure.sqlstate}, the first writer wins")
    if failure.role == Role.INSERT.value and inserted:
        changed, what = inserted[0], "red packet"
        rule = (
            f"at {level_words(story.level(loser))} an insert may not quietly skip a conflicting"
            " row it cannot see"
        )
    else:
        changed, what = (updated or inserted)[0], "update of the order row"
        rule = f"at {level_words(story.level(loser))} the first updater wins"
    if failure.sqlstate == RECORD_CHANGED:  # InnoDB with innodb_snapshot_isolation=ON
        rule = (
            "with innodb_snapshot_isolation InnoDB refuses to lock or write where a row version"
            " committed after the snapshot stands"
        )
    when = "was still uncommitted when" if story.before(changed, snapshot) else "came after"
    return Sentence(
        f"{story.server} refused T{loser}'s {story.cite(failure)} with {failure.sqlstate}"
        f" {quote(failure.message)}: T{winner}'s {what} ({story.ref(changed)}) {when} T{loser}'s"
        f" snapshot was taken ({story.ref(snapshot)}) and was committed at {story.ref(commit)}:"
        f" the newest version is invisible to T{loser}'s snapshot, and {rule}. T{loser} was"
        f" doomed from that commit on and found out {found}.",
        (story.at(failure), story.at(changed), story.at(snapshot), story.at(commit)),
    )


def _ssi(
    story: Story, winner: int, loser: int, attempt: int, failure: Event, commit: Event | None,
    found: str,
) -> Sentence:  # fmt: skip
    story.causes.append("40001 from serializable's read/write check")
    refs = [story.at(failure)]
    theirs = story.check_of(winner) if winner else None
    mine = story.check_of(loser, attempt)
    their_insert = story.granted_insert(winner) if winner else None
    head = (
        f"{story.server}'s serializable checking refused T{loser}'s {story.cite(failure)} with"
        f" 40001 {quote(failure.message)}"
    )
    if theirs is None or mine is None or their_insert is None or commit is None:
        return Sentence(
            head + f": it found a read/write dependency between T{loser} and T{winner} that no"
            f" serial order could explain. T{loser} found out {found}.",
            tuple(refs),
        )
    mine_insert = next(iter(story.with_role(loser, attempt, Role.INSERT)), None)
    if mine_insert is None and failure.role == Role.INSERT.value:
        mine_insert = failure
    first = _missed(story, winner, theirs, loser, mine_insert, None, None, refs)
    snapshot = story.snapshot(loser, attempt)
    second = _missed(story, loser, mine, winner, their_insert, commit, snapshot, refs)
    return Sentence(
        head + f": {first}, and {second}. Each transaction missed what the other wrote, a cycle"
        f" of read/write dependencies that no serial order of the two explains. T{loser} found"
        f" out {found}.",
        tuple(dict.fromkeys(refs)),
    )


def _missed(
    story: Story, reader: int, check: Event, writer: int, write: Event | None,
    commit: Event | None, snapshot: Event | None, refs: list[int],
) -> str:  # fmt: skip
    """How ``reader``'s check missed ``writer``'s red packet, in the order the run shows:
    written after it, written but uncommitted, or committed after its snapshot."""
    refs.append(story.at(check))
    said = f"T{reader}'s check ({story.ref(check)})"
    if write is None:
        return f"{said} had found no red packet"
    refs.append(story.at(write))
    tried = "inserted" if write.rows else "tried to insert"
    if story.before(check, write):
        return (
            f"{said} had found no red packet where T{writer} then {tried} one ({story.ref(write)})"
        )
    if commit is None or story.before(check, commit):
        return (
            f"{said} had not seen the red packet T{writer} had inserted ({story.ref(write)}) and"
            " not yet committed"
        )
    refs.append(story.at(commit))
    if snapshot is None:
        return (
            f"{said} had missed T{writer}'s ({story.ref(write)}), committed at {story.ref(commit)}"
        )
    refs.append(story.at(snapshot))
    return (
        f"{said} had missed T{writer}'s ({story.ref(write)}): it read T{reader}'s snapshot from"
        f" {story.ref(snapshot)}, taken before T{writer}'s commit ({story.ref(commit)})"
    )


def lost_race(story: Story, winner: int, loser: int, attempt: int, decided: Event) -> Sentence:
    story.causes.append("the version check lost the race")
    refs = [story.at(decided)]
    bumped = story.wrote(winner, Role.BUMP)
    read = story.with_role(loser, attempt, Role.READ)
    text = f"T{loser}'s version check, {story.cite(decided)}, updated no row"
    if bumped and read:
        refs += [story.at(bumped[0]), story.at(read[0])]
        text += (
            f": T{winner} had changed the version ({story.ref(bumped[0])}) after T{loser} read"
            f" it ({story.ref(read[0])})"
        )
    if decided.kind is Kind.RESUME and not story.level(loser).takes_snapshot_per_transaction:
        text += (
            f"; it had waited for T{winner}'s row lock, and read committed re-checked its"
            " condition against the newest row version"
        )
    elif decided.read == "current read":  # InnoDB: the UPDATE saw the new version anyway
        text += (
            f"; an UPDATE is a current read on {story.server}: it compared the newest committed"
            " version, whatever T" + str(loser) + "'s snapshot showed"
        )
    text += f". T{loser} lost the race and rolled back, its insert with it."
    check = story.check_of(loser, attempt)
    snapshot = story.snapshot(loser, attempt)
    commit = story.commit(winner) if winner else None
    if (
        check is not None
        and commit is not None
        and not check.rows
        and check.read != "current read"
        and snapshot is not None
        and story.before(snapshot, commit)
        and story.before(commit, check)
    ):  # why it got as far as the version check: its check read an old snapshot
        refs += [story.at(check), story.at(snapshot), story.at(commit)]
        text += (
            f" It got that far because its check, {story.cite(check)}, ran after T{winner}'s"
            f" commit ({story.ref(commit)}) and still found no red packet: it read T{loser}'s"
            f" snapshot from {story.ref(snapshot)}, taken before that commit."
        )
    return Sentence(text, tuple(refs))
