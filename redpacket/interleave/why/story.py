"""A run's events, indexed the ways an explanation asks about them, and how it cites them."""

from __future__ import annotations

from dataclasses import dataclass

from redpacket.engines import engine_named
from redpacket.interleave.timeline import Event, Kind, Run
from redpacket.isolation import Isolation
from redpacket.strategies import Role


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
    def __init__(self, run: Run) -> None:
        self.run = run
        self.events = run.events
        self.engine = engine_named(run.engine)
        self.server = self.engine.server_word  # "PostgreSQL", "InnoDB": who did what
        self.causes: list[str] = []
        self.rule_said = False  # the engine's snapshot rule, said once per explanation
        self._position = {id(event): index + 1 for index, event in enumerate(run.events)}

    # -- citing --------------------------------------------------------------------------

    def at(self, event: Event) -> int:
        return self._position[id(event)]

    def ref(self, event: Event) -> str:
        return f"#{self.at(event)}"

    def cite(self, event: Event) -> str:
        """``step 2 (lock_order, #6)`` or ``COMMIT (#9)``: a step number never ends a sentence."""
        if event.step_number:
            return f"step {event.step_number} ({event.action}, {self.ref(event)})"
        return f"{event.action.upper()} ({self.ref(event)})"

    # -- asking ---------------------------------------------------------------------------

    def level(self, session: int) -> Isolation:
        return self.run.level_of(session)

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
        final = self.attempts(session)
        return next(
            (e for e in self.of(session, final) if e.action == "commit" and not e.sqlstate), None
        )

    def snapshot(self, session: int, attempt: int) -> Event | None:
        """The statement whose start fixed the snapshot the attempt's plain reads use."""
        if not self.level(session).takes_snapshot_per_transaction:
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

    def wrote(self, session: int, *roles: Role) -> list[Event]:
        """The session's writes in its final attempt that changed a row."""
        return [e for e in self.with_role(session, self.attempts(session), *roles) if e.rows]

    def granted_insert(self, session: int) -> Event | None:
        found = self.wrote(session, Role.INSERT)
        return found[0] if found else None

    def check_of(self, session: int, attempt: int | None = None) -> Event | None:
        """The statement whose answer let the session insert: its check, else its insert."""
        attempt = attempt or self.attempts(session)
        checks = self.with_role(session, attempt, Role.CHECK)
        if checks:
            return checks[-1]
        inserts = self.with_role(session, attempt, Role.INSERT)
        return inserts[0] if inserts else None

    def before(self, first: Event | None, second: Event | None) -> bool:
        return first is not None and second is not None and self.at(first) < self.at(second)


def attempts_words(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"


def level_words(level: Isolation) -> str:
    return level.sql.lower()


def quote(message: str | None) -> str:
    return f"“{message}”" if message else "(no message)"
