"""What the session that did not grant met: its waits, refusals, retries, and what it saw."""

from __future__ import annotations

from redpacket.interleave.timeline import Event, Kind
from redpacket.interleave.why.refusals import lost_race, refused
from redpacket.interleave.why.story import Sentence, Story
from redpacket.isolation import Isolation
from redpacket.strategies import Role


def loser(story: Story, winner: int, session: int) -> list[Sentence]:
    sentences: list[Sentence] = []
    attempts = story.attempts(session)
    for attempt in range(1, attempts + 1):
        if attempt > 1:
            begin = story.begin(session, attempt)
            where = f", {story.ref(begin)}" if begin else ""
            sentences.append(
                Sentence(
                    f"T{session} tried again in a new transaction (attempt {attempt}{where}).",
                    (story.at(begin),) if begin else (),
                )
            )
        for wait in story.waits(session, attempt):
            released = story.released_by(wait)
            if released is None:
                continue
            sentences.append(
                Sentence(
                    f"T{session}'s {story.cite(wait)} waited for T{released.session} until"
                    f" T{released.session}'s {story.cite(released)}.",
                    (story.at(wait), story.at(released)),
                )
            )
        sentences += _attempt(story, winner, session, attempt, final=attempt == attempts)
    return sentences


def _attempt(story: Story, winner: int, session: int, attempt: int, final: bool) -> list[Sentence]:
    events = story.done(session, attempt)
    failure = next((e for e in events if e.sqlstate), None)
    if failure is not None:
        return refused(story, winner, session, attempt, failure)
    decided = next((e for e in events if e.decision), None)
    if decided is None:
        return []
    if decided.decision == "lost_race":
        return [lost_race(story, winner, session, attempt, decided)]
    if not final or decided.decision != "already_granted" or not winner:
        return []
    return saw_the_grant(story, winner, session, attempt, decided)


def saw_the_grant(
    story: Story, winner: int, session: int, attempt: int, decided: Event
) -> list[Sentence]:
    commit = story.commit(winner)
    if commit is None:
        return []
    refs = (story.at(decided), story.at(commit))
    claims = [e for e in story.with_role(session, attempt, Role.CLAIM) if not e.rows]
    empty_inserts = [e for e in story.with_role(session, attempt, Role.INSERT) if not e.rows]
    if decided.role == Role.CHECK.value:
        sentences = _check_saw(story, winner, session, attempt, decided, commit)
    elif claims:
        sentences = [_claim_found(story, winner, session, claims[0], decided, commit)]
    elif decided.role == Role.INSERT.value:
        sentences = [_insert_found(story, winner, session, decided, commit)]
    elif empty_inserts and story.before(commit, empty_inserts[-1]):
        # the insert decided (INSERT IGNORE: nothing inserted, after the winner's commit);
        # the step that ended the attempt only told "granted already" from "no such order".
        # A write is a current read: the snapshot was not the reason, and is not offered.
        insert = empty_inserts[-1]
        return [
            _insert_found(story, winner, session, insert, commit),
            Sentence(
                f"Its {story.cite(decided)} then told an order granted already from an"
                " unknown one.",
                (story.at(decided),),
            ),
        ]
    else:
        sentences = [
            Sentence(
                f"T{session}'s {story.cite(decided)} ended its grant as already granted.",
                (story.at(decided),),
            )
        ]
    if decided.read == "current read" or any(c.read == "current read" for c in claims):
        # a current read decided (InnoDB's claim): the snapshot's timing was not the reason
        return sentences
    return sentences + _begin_is_not_the_snapshot(story, session, attempt, commit, refs)


def _check_saw(
    story: Story, winner: int, session: int, attempt: int, decided: Event, commit: Event
) -> list[Sentence]:
    refs = (story.at(decided), story.at(commit))
    check = f"T{session}'s check, {story.cite(decided)},"
    current = decided.read == "current read"  # InnoDB's locking reads, at every level
    if current or not story.level(session).takes_snapshot_per_transaction:
        # held back: a wait that began before the winner's commit and ended after it, whatever
        # ended it (a COMMIT, RELEASE_LOCK, a session's end)
        held = [
            w
            for w in story.waits(session, attempt)
            if story.before(w, commit) and story.before(commit, story.resume_of(w))
        ]
        ran = (  # it saw the committed grant: it completed after the commit
            f"Waiting for T{winner} ({story.ref(held[0])}) put {check} after"
            if held
            else f"{check} ran after"
        )
        if current:
            serializable = story.level(session) is Isolation.SERIALIZABLE
            seen = story.engine.current_read_rule + (
                f"; {story.engine.serializable_read_rule}" if serializable else ""
            )
        else:
            seen = story.engine.fresh_snapshot_rule
        return [
            Sentence(
                f"{ran} T{winner}'s commit ({story.ref(commit)}); {seen}, so it saw the red"
                " packet and granted nothing.",
                (*refs, story.at(held[0])) if held else refs,
            )
        ]
    snapshot = story.snapshot(session, attempt)
    if snapshot is None or story.before(snapshot, commit):
        return []
    if story.at(snapshot) == story.at(decided):
        said = (
            f"{check} was its first {story.engine.snapshot_taker}, so its snapshot was taken"
            f" then, after"
            f" T{winner}'s commit ({story.ref(commit)}): it saw the red packet and granted nothing."
        )
        if snapshot.step_number and snapshot.step_number > 1 and not story.rule_said:
            said += f" ({story.engine.snapshot_rule}.)"
            story.rule_said = True
        return [Sentence(said, refs)]
    return [
        Sentence(
            f"T{session}'s snapshot was taken by {story.cite(snapshot)}, after T{winner}'s commit"
            f" ({story.ref(commit)}), so its check ({story.ref(decided)}) saw the red packet and"
            " granted nothing.",
            (*refs, story.at(snapshot)),
        )
    ]


def _claim_found(
    story: Story, winner: int, session: int, claim: Event, decided: Event, commit: Event
) -> Sentence:
    if claim.kind is Kind.RESUME and not story.level(session).takes_snapshot_per_transaction:
        how = (
            f"waited for T{winner}'s row lock; when T{winner} committed ({story.ref(commit)}),"
            " read committed re-checked the claim's condition against the newest row version,"
            " which was already claimed, so it updated nothing"
        )
    elif claim.read == "current read":
        how = (
            f"read the newest committed row, as {story.server}'s writes do, and found it"
            f" already claimed by T{winner} (committed at {story.ref(commit)}), so it updated"
            " nothing"
        )
    else:
        how = (
            f"ran after T{winner}'s commit ({story.ref(commit)}) and found the order already"
            " claimed"
        )
    return Sentence(
        f"T{session}'s claim, {story.cite(claim)}, {how}; its {story.cite(decided)} found the"
        " order, so the grant ended as already granted.",
        (story.at(claim), story.at(decided), story.at(commit)),
    )


def _insert_found(
    story: Story, winner: int, session: int, decided: Event, commit: Event
) -> Sentence:
    if decided.kind is Kind.RESUME:
        text = (
            f"T{session}'s insert waited for T{winner}'s uncommitted red packet; when T{winner}"
            f" committed ({story.ref(commit)}), it resumed ({story.ref(decided)}), found the"
            " conflicting row and inserted nothing."
        )
    else:
        text = (
            f"T{session}'s {story.cite(decided)} found T{winner}'s red packet, committed at"
            f" {story.ref(commit)}, and inserted nothing."
        )
    return Sentence(text, (story.at(decided), story.at(commit)))


def _begin_is_not_the_snapshot(
    story: Story, session: int, attempt: int, commit: Event, refs: tuple[int, ...]
) -> list[Sentence]:
    """BEGIN before the other's commit, snapshot after it: the point t2-begins-first makes."""
    if not story.level(session).takes_snapshot_per_transaction:
        return []
    begin = story.begin(session, attempt)
    snapshot = story.snapshot(session, attempt)
    if begin is None or not (story.before(begin, commit) and story.before(commit, snapshot)):
        return []
    if story.rule_said:
        return [
            Sentence(
                f"T{session} had sent BEGIN ({story.ref(begin)}) before that commit: BEGIN fixes"
                " nothing.",
                (story.at(begin),),
            )
        ]
    story.rule_said = True
    return [
        Sentence(
            f"T{session} had sent BEGIN ({story.ref(begin)}) before that commit, but"
            f" {story.engine.snapshot_rule}.",
            (story.at(begin),),
        )
    ]
