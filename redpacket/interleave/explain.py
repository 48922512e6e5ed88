"""Why a scheduled run ended the way it did, composed only from the run's own events.

Every sentence rests on events of the run — which statement fixed a session's
snapshot, whom it waited for and what released it, what its check returned, what
the server said — and cites them by position (``#n``), so each can be held to the
timeline (the tests do, for every strategy, level and schedule). Steps are read
by their role (read, lock, check, claim, insert, bump); their names are only
quoted, never interpreted, so a user's strategy is explained as precisely as a
built-in one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from redpacket.interleave.timeline import Event, Kind, Run, Verdict
from redpacket.isolation import Isolation
from redpacket.retry import LOST_RACE, is_retryable
from redpacket.strategies import Outcome, Role
from redpacket.vocabulary import refusal

_ROW_LOCK = re.compile(r"\bfor\s+(update|share|no\s+key\s+update|key\s+share)\b", re.I)


@dataclass(frozen=True)
class Sentence:
    text: str
    refs: tuple[int, ...] = ()  # the positions (1-based) of the events it rests on


@dataclass(frozen=True)
class Explanation:
    sentences: tuple[Sentence, ...]
    cause: str = ""  # the heart of it in a few words, for summaries (takeaways)

    def __str__(self) -> str:
        return " ".join(sentence.text for sentence in self.sentences)


class Story:
    """A run's events, indexed the ways an explanation asks about them."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.events = run.events
        self.causes: list[str] = []
        self._position = {id(event): index + 1 for index, event in enumerate(run.events)}

    def at(self, event: Event) -> int:
        return self._position[id(event)]

    def ref(self, event: Event) -> str:
        return f"#{self.at(event)}"

    def attempts(self, session: int) -> int:
        return self.run.sessions[session - 1].attempts

    def of(self, session: int, attempt: int | None = None) -> list[Event]:
        return [
            e
            for e in self.events
            if e.session == session and (attempt is None or e.attempt == attempt)
        ]

    def done(self, session: int, attempt: int) -> list[Event]:
        """Statements of the attempt that completed (a wait is recorded again as it resumes)."""
        return [e for e in self.of(session, attempt) if e.kind is not Kind.WAIT]

    def commit(self, session: int) -> Event | None:
        attempt = self.attempts(session)
        return next(
            (e for e in self.of(session, attempt) if e.action == "commit" and not e.sqlstate),
            None,
        )

    def snapshot(self, session: int, attempt: int) -> Event | None:
        """The statement whose start fixed the snapshot the attempt's reads use."""
        if not self.run.level_of(session).takes_snapshot_per_transaction:
            return None
        return next((e for e in self.of(session, attempt) if e.takes_snapshot), None)

    def begin(self, session: int, attempt: int) -> Event | None:
        return next((e for e in self.of(session, attempt) if e.action == "begin"), None)

    def waits(self, session: int, attempt: int) -> list[Event]:
        return [e for e in self.of(session, attempt) if e.kind is Kind.WAIT]

    def resume_of(self, wait: Event) -> Event | None:
        later = self.events[self.at(wait) :]
        return next((e for e in later if e.session == wait.session and e.kind is Kind.RESUME), None)

    def released_by(self, wait: Event) -> Event | None:
        """What ended the wait: the other session's action recorded just before the resume."""
        resume = self.resume_of(wait)
        if resume is None or self.at(resume) < 2:
            return None
        before = self.events[self.at(resume) - 2]
        return before if before.session != wait.session else None

    def with_role(self, session: int, attempt: int, *roles: Role) -> list[Event]:
        return [e for e in self.done(session, attempt) if e.role in {r.value for r in roles}]

    def granted_insert(self, session: int) -> Event | None:
        """The insert that wrote the session's red packet (a row came back)."""
        final = self.attempts(session)
        return next((e for e in self.with_role(session, final, Role.INSERT) if e.rows), None)

    def takes_a_lock(self) -> bool:
        return any(e.role == Role.LOCK.value for e in self.events)


def _attempts(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"


def _level_words(level: Isolation) -> str:
    return level.sql.lower()


def _quote(message: str | None) -> str:
    return f"“{message}”" if message else "(no message)"


def explain(run: Run) -> Explanation:
    if run.verdict is Verdict.STUCK:
        return Explanation((Sentence(f"The schedule could make no progress: {run.stuck}."),))
    story = Story(run)
    granted = [s.session for s in run.sessions if s.outcome is Outcome.GRANTED]
    sentences: list[Sentence] = []
    if run.verdict is Verdict.DUPLICATE:
        sentences += _duplicate(story, granted)
    elif len(granted) == 1:
        for summary in run.sessions:
            if summary.session != granted[0]:
                sentences += _loser(story, granted[0], summary.session)
    else:
        for summary in run.sessions:
            sentences += _loser(story, 0, summary.session)
    for summary in run.sessions:
        if summary.outcome is Outcome.FAILED and summary.reason:
            hint = " Run with --retries to retry it." if (
                not run.retries and is_retryable(summary.reason)
            ) else ""  # fmt: skip
            what = (
                "lost the race"
                if summary.reason == LOST_RACE
                else f"was refused ({refusal(summary.reason)})"
            )
            sentences.append(
                Sentence(
                    f"T{summary.session}'s grant {what} after {_attempts(summary.attempts)};"
                    f" nothing was written for it.{hint}"
                )
            )
    return Explanation(tuple(sentences), "; ".join(dict.fromkeys(story.causes)))


# -- two red packets ------------------------------------------------------------------------


def _check_of(story: Story, session: int) -> Event | None:
    """The statement whose answer let the session insert: its check, else its insert."""
    final = story.attempts(session)
    checks = story.with_role(session, final, Role.CHECK)
    return checks[-1] if checks else story.granted_insert(session)


def _duplicate(story: Story, granted: list[int]) -> list[Sentence]:
    first, second = granted[0], granted[1]
    check = {s: _check_of(story, s) for s in (first, second)}
    insert = {s: story.granted_insert(s) for s in (first, second)}
    if any(check[s] is None or insert[s] is None for s in (first, second)):
        return [Sentence(f"T{first} and T{second} both inserted a red packet.")]
    late = next(
        (
            s
            for s, other in ((first, second), (second, first))
            if story.at(check[s]) > story.at(insert[other])  # type: ignore[arg-type]
        ),
        None,
    )
    if late is None:
        return _both_checked_first(story, first, second, check)  # type: ignore[arg-type]
    other = second if late == first else first
    return _missed(story, late, other, check[late], insert[other])  # type: ignore[arg-type]


def _check_words(story: Story, session: int, check: Event) -> str:
    if check.role == Role.CHECK.value:
        return f"T{session}'s check ({check.label}, {story.ref(check)})"
    return f"T{session}'s {check.label} ({story.ref(check)}), which checks and inserts at once,"


def _both_checked_first(
    story: Story, first: int, second: int, check: dict[int, Event]
) -> list[Sentence]:
    a, b = check[first], check[second]
    story.causes.append("both checked before either inserted")
    return [
        Sentence(
            f"Both checks ran before either session inserted: T{first}'s ({story.ref(a)}) and"
            f" T{second}'s ({story.ref(b)}) each found no red packet, so both inserted.",
            (story.at(a), story.at(b)),
        ),
        Sentence(
            "Isolation makes no difference here: no level shows a row that does not exist"
            " yet, and nothing made either check wait for the other's grant."
        ),
    ]


def _missed(story: Story, late: int, other: int, check: Event, insert: Event) -> list[Sentence]:
    commit = story.commit(other)
    checked = _check_words(story, late, check)
    if commit is None or story.at(check) < story.at(commit):
        story.causes.append("a check ran before the other grant was committed")
        refs = (story.at(check), story.at(insert)) + ((story.at(commit),) if commit else ())
        until = f" but not committed until {story.ref(commit)}" if commit else " but not committed"
        sentences = [
            Sentence(
                f"{checked} found no red packet: T{other}'s had been inserted"
                f" ({story.ref(insert)}){until}, and no isolation level shows one transaction"
                " another's uncommitted rows.",
                refs,
            )
        ]
        other_check = _check_of(story, other)
        late_commit = story.commit(late)
        if other_check is not None and late_commit is not None and commit is not None:
            before_both = story.at(other_check) < story.at(late_commit)
            if before_both and story.at(check) < story.at(commit):
                sentences.append(
                    Sentence(
                        "Both checks ran before either commit, so isolation makes no"
                        " difference here."
                    )
                )
        if not story.waits(late, story.attempts(late)):
            sentences.append(Sentence(f"Nothing made T{late} wait for T{other}, so both inserted."))
        return sentences
    attempt = story.attempts(late)
    snapshot = story.snapshot(late, attempt)
    if snapshot is None:
        return [Sentence(f"{checked} found no red packet, and it inserted a second one.")]
    level = _level_words(story.run.level_of(late))
    story.causes.append("the check read a snapshot from before the other's commit")
    sentences = [
        Sentence(
            f"{checked} ran after T{other} committed its red packet ({story.ref(commit)}), but at"
            f" {level} T{late} reads with the snapshot its first statement"
            f" ({snapshot.label}, {story.ref(snapshot)}) took, before that commit; so the"
            f" check found nothing and T{late} inserted a second red packet.",
            (story.at(check), story.at(commit), story.at(snapshot)),
        )
    ]
    waits = [w for w in story.waits(late, attempt) if story.released_by(w) is not None]
    if waits:
        wait = waits[0]
        released = story.released_by(wait)
        assert released is not None
        if story.at(wait) == story.at(snapshot):
            sentences.append(
                Sentence(
                    f"That first statement is the one that waited for T{other}"
                    f" ({story.ref(wait)}): PostgreSQL fixed its snapshot as it started, before"
                    " it blocked, so waiting could not make the snapshot newer.",
                    (story.at(wait),),
                )
            )
        else:
            sentences.append(
                Sentence(
                    f"T{late} waited at {wait.label} ({story.ref(wait)}) until T{other}'s"
                    f" {released.action.upper()} ({story.ref(released)}) released it, but its"
                    f" snapshot had been fixed already ({story.ref(snapshot)}).",
                    (story.at(wait), story.at(released), story.at(snapshot)),
                )
            )
        if wait.role == Role.LOCK.value:
            sentences.append(
                Sentence(
                    "The lock ordered the two transactions; it did not change what"
                    f" T{late} could see."
                )
            )
    locks = story.with_role(late, attempt, Role.LOCK)
    if locks and story.at(locks[-1]) > story.at(commit):
        sentences.append(_no_refusal(story, late, other, locks[-1]))
    return sentences


def _no_refusal(story: Story, late: int, other: int, lock: Event) -> Sentence:
    """Why a stale snapshot went unpunished: nothing it locked had been changed."""
    updated = story.with_role(other, story.attempts(other), Role.CLAIM, Role.BUMP)
    if _ROW_LOCK.search(lock.sql) and not updated:
        return Sentence(
            f"T{other} had only locked the order row, never updated it, so T{late}'s locking"
            f" read ({story.ref(lock)}) found no newer row version to refuse with 40001.",
            (story.at(lock),),
        )
    return Sentence(
        f"The lock T{late} took ({story.ref(lock)}) guards no row T{other} changed, so nothing"
        f" refused T{late} with 40001.",
        (story.at(lock),),
    )


# -- one red packet: what the others met -----------------------------------------------------


def _loser(story: Story, winner: int, loser: int) -> list[Sentence]:
    sentences: list[Sentence] = []
    attempts = story.attempts(loser)
    for attempt in range(1, attempts + 1):
        if attempt > 1:
            begin = story.begin(loser, attempt)
            where = f", {story.ref(begin)}" if begin else ""
            sentences.append(
                Sentence(
                    f"T{loser} tried again in a new transaction (attempt {attempt}{where}).",
                    (story.at(begin),) if begin else (),
                )
            )
        for wait in story.waits(loser, attempt):
            released = story.released_by(wait)
            if released is None:
                continue
            sentences.append(
                Sentence(
                    f"T{loser}'s {wait.label} ({story.ref(wait)}) waited for T{released.session}"
                    f" until T{released.session}'s {released.action.upper()}"
                    f" ({story.ref(released)}).",
                    (story.at(wait), story.at(released)),
                )
            )
        sentences += _attempt(story, winner, loser, attempt, final=attempt == attempts)
    return sentences


def _attempt(story: Story, winner: int, loser: int, attempt: int, final: bool) -> list[Sentence]:
    events = story.done(loser, attempt)
    failure = next((e for e in events if e.sqlstate), None)
    if failure is not None:
        return [_refused(story, winner, loser, attempt, failure)]
    decided = next((e for e in events if e.decision), None)
    if decided is None:
        return []
    if decided.decision == "lost_race":
        return [_lost_race(story, winner, loser, attempt, decided)]
    if not final or decided.decision != "already_granted":
        return []
    return _saw_the_grant(story, winner, loser, attempt, decided)


def _refused(story: Story, winner: int, loser: int, attempt: int, failure: Event) -> Sentence:
    code = failure.sqlstate or ""
    where = f"T{loser}'s " + ("COMMIT" if failure.action == "commit" else failure.label)
    said = _quote(failure.message)
    refs = [story.at(failure)]
    if failure.decision:  # the strategy reads this refusal as an answer
        story.causes.append(f"{code} read as {failure.decision.replace('_', ' ')}")
        text = (
            f"The server refused T{loser}'s {failure.label} ({story.ref(failure)}) with {code}"
            f" {said}; this strategy reads that as {failure.decision.replace('_', ' ')}."
        )
        return Sentence(text, tuple(refs))
    commit = story.commit(winner) if winner else None
    after = ""
    if commit is not None and story.at(commit) < story.at(failure):
        after = f", after T{winner} had committed ({story.ref(commit)})"
        refs.append(story.at(commit))
    found = "only at COMMIT" if failure.action == "commit" else "at that statement"
    if failure.kind is Kind.RESUME:
        found = "as its wait ended"
    if code == "40001" and failure.message and "concurrent update" in failure.message:
        snapshot = story.snapshot(loser, attempt)
        final = story.attempts(winner) if winner else 0
        updated = [e for e in story.with_role(winner, final, Role.CLAIM, Role.BUMP) if e.rows]
        inserted = [e for e in story.with_role(winner, final, Role.INSERT) if e.rows]
        if commit is not None and snapshot is not None and (updated or inserted):
            story.causes.append("40001, the first writer wins")
            if failure.role == Role.INSERT.value and inserted:
                changed = inserted[0]
                what = f"inserted the red packet T{loser}'s insert collides with"
                rule = "the insert may neither see that row nor ignore it"
            else:
                changed, what = (updated or inserted)[0], "updated the order row"
                rule = "the first updater wins"
            refs += [story.at(changed), story.at(snapshot)]
            return Sentence(
                f"PostgreSQL refused {where} ({story.ref(failure)}) with 40001 {said}: T{winner}"
                f" {what} ({story.ref(changed)}) and committed ({story.ref(commit)}) after"
                f" T{loser}'s snapshot was taken ({story.ref(snapshot)}), and at"
                f" {_level_words(story.run.level_of(loser))} {rule}. T{loser} was doomed from"
                f" that commit on and found out {found}.",
                tuple(refs),
            )
    if code == "40001" and failure.message and "read/write dependencies" in failure.message:
        story.causes.append("40001 from serializable's read/write check")
        crossed = winner and all(
            story.with_role(s, story.attempts(s) if s == winner else attempt, Role.CHECK)
            and story.with_role(s, story.attempts(s) if s == winner else attempt, Role.INSERT)
            for s in (winner, loser)
        )
        how = (
            f"T{loser} and T{winner} each checked for the red packet the other then inserted,"
            " and no serial order of the two could give both of them that answer"
            if crossed
            else "it found a read/write dependency between the transactions that no serial"
            " order could explain"
        )
        return Sentence(
            f"PostgreSQL's serializable checking refused {where} ({story.ref(failure)}) with"
            f" 40001 {said}{after}: {how}. T{loser} found out {found}.",
            tuple(refs),
        )
    if code == "40P01":
        return Sentence(
            f"PostgreSQL broke a deadlock by refusing {where} ({story.ref(failure)}) with 40P01"
            f" {said}.",
            tuple(refs),
        )
    return Sentence(
        f"The server refused T{loser}'s {failure.label} ({story.ref(failure)}) with {code}"
        f" {said}{after}.",
        tuple(refs),
    )


def _lost_race(story: Story, winner: int, loser: int, attempt: int, decided: Event) -> Sentence:
    story.causes.append("the version check lost the race")
    refs = [story.at(decided)]
    bumped = [e for e in story.with_role(winner, story.attempts(winner), Role.BUMP) if e.rows]
    read = story.with_role(loser, attempt, Role.READ)
    text = f"T{loser}'s {decided.label} ({story.ref(decided)}) updated no row"
    if bumped and read:
        refs += [story.at(bumped[0]), story.at(read[0])]
        text += (
            f": T{winner} had changed the version ({story.ref(bumped[0])}) after T{loser} read"
            f" it ({story.ref(read[0])})"
        )
    if decided.kind is Kind.RESUME and not story.run.level_of(loser).takes_snapshot_per_transaction:
        text += (
            f"; it had waited for T{winner}'s row lock, and read committed re-checked its"
            " condition against the newest row version"
        )
    return Sentence(
        text + f". T{loser} lost the race and rolled back, its insert with it.", tuple(refs)
    )


def _saw_the_grant(
    story: Story, winner: int, loser: int, attempt: int, decided: Event
) -> list[Sentence]:
    commit = story.commit(winner)
    level = story.run.level_of(loser)
    if commit is None:
        return []
    refs = (story.at(decided), story.at(commit))
    if decided.role == Role.CHECK.value:
        if not level.takes_snapshot_per_transaction:
            waited = [
                w
                for w in story.waits(loser, attempt)
                if w.role == Role.LOCK.value and story.released_by(w) is commit
            ]
            check = f"T{loser}'s check ({decided.label}, {story.ref(decided)})"
            when = f"after T{winner}'s commit ({story.ref(commit)})"
            ran = f"Waiting for the lock put {check} {when}" if waited else f"{check} ran {when}"
            return [
                Sentence(
                    f"{ran}; at read committed each statement takes a fresh snapshot, so it saw"
                    " the red packet and granted nothing.",
                    refs,
                )
            ]
        snapshot = story.snapshot(loser, attempt)
        if snapshot is None or story.at(snapshot) < story.at(commit):
            return []
        sentences = [
            Sentence(
                f"T{loser}'s snapshot was taken at {story.ref(snapshot)} ({snapshot.label}),"
                f" after T{winner}'s commit ({story.ref(commit)}), so its check"
                f" ({story.ref(decided)}) saw the red packet and granted nothing.",
                (*refs, story.at(snapshot)),
            )
        ]
        begin = story.begin(loser, attempt)
        if begin is not None and story.at(begin) < story.at(commit):
            sentences.append(
                Sentence(
                    f"T{loser} had sent BEGIN ({story.ref(begin)}) before that commit, but"
                    " PostgreSQL takes a transaction's snapshot at its first statement, not at"
                    " BEGIN.",
                    (story.at(begin),),
                )
            )
        return sentences
    claims = [e for e in story.with_role(loser, attempt, Role.CLAIM) if not e.rows]
    if claims:
        claim = claims[0]
        if claim.kind is Kind.RESUME and not level.takes_snapshot_per_transaction:
            how = (
                f"waited for T{winner}'s row lock; when T{winner} committed"
                f" ({story.ref(commit)}), read committed re-checked the claim's condition"
                " against the newest row version, already claimed, and updated nothing"
            )
        else:
            how = f"ran after T{winner}'s commit ({story.ref(commit)}) and found the order claimed"
        return [
            Sentence(
                f"T{loser}'s claim ({claim.label}, {story.ref(claim)}) {how}; its"
                f" {decided.label} ({story.ref(decided)}) found the order, so the grant ended as"
                " already granted.",
                (story.at(claim), *refs),
            )
        ]
    if decided.role == Role.INSERT.value:
        if decided.kind is Kind.RESUME:
            text = (
                f"It had waited for T{winner}'s uncommitted red packet; resumed"
                f" ({story.ref(decided)}) after T{winner}'s commit ({story.ref(commit)}), it"
                " found the conflicting row and inserted nothing."
            )
        else:
            text = (
                f"T{loser}'s {decided.label} ({story.ref(decided)}) found T{winner}'s red"
                f" packet, committed at {story.ref(commit)}, and inserted nothing."
            )
        return [Sentence(text, refs)]
    return [
        Sentence(
            f"T{loser}'s {decided.label} ({story.ref(decided)}) ended its grant as already"
            " granted.",
            (story.at(decided),),
        )
    ]
