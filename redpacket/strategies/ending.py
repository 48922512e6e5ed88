"""How one transaction of a strategy ends, decided once for every executor.

The service, the scheduler and the loop engine run a strategy's steps each in its
own way (blocking, one statement at a time, pipelined), but the end of an attempt
asks the same three questions everywhere: COMMIT or ROLLBACK, what the caller is
told, and whether another attempt could help. They are answered here and nowhere
else, so the executors cannot disagree (they once did, about a lost connection).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from redpacket.retry import CONNECTION_LOST, RetryPolicy
from redpacket.strategies.steps import End

NO_SQLSTATE = "XX000"  # an attempt that ended with neither a decision nor an error


class Outcome(enum.IntEnum):
    """What the caller of one grant request is told (small integers: a history keeps millions)."""

    GRANTED = 0
    ALREADY_GRANTED = 1
    FAILED = 2
    UNKNOWN = 3  # the connection died with COMMIT in flight: it may or may not have committed
    INTERRUPTED = 4  # the run stopped (Ctrl-C, a stuck schedule) first; it did not commit

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def of_label(cls, label: str) -> Outcome:
        return cls[label.upper()]


@dataclass(frozen=True, slots=True)
class Ending:
    """How one attempt ended, as every executor reports it.

    ``end`` is the strategy's decision, kept only when the transaction carried it
    out (a COMMIT that failed voids it); ``sqlstate`` is the error that ended the
    attempt undecided; ``commit_in_flight`` says the connection died after COMMIT
    was sent and before its answer came. ``outcome`` and ``reason`` follow from
    those three, worked out once: a stress run asks them of every request.
    """

    end: End | None = None
    sqlstate: str | None = None
    commit_in_flight: bool = False
    outcome: Outcome = field(init=False, repr=False, compare=False)
    # Why the caller got no decision: a SQLSTATE or the strategy's own end (lost_race, ...)
    reason: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        end = self.end
        if self.commit_in_flight:
            outcome = Outcome.UNKNOWN
        elif self.sqlstate is None and end is not None and end.commits:
            outcome = Outcome.GRANTED if end is End.GRANTED else Outcome.ALREADY_GRANTED
        else:
            outcome = Outcome.FAILED
        reason = None
        if outcome is Outcome.FAILED:
            reason = self.sqlstate or (end.value if end is not None else NO_SQLSTATE)
        object.__setattr__(self, "outcome", outcome)
        object.__setattr__(self, "reason", reason)

    @classmethod
    def of(cls, end: End | None) -> Ending:
        """The ending of a transaction that carried out ``end``: one shared object per end."""
        return _DECIDED[end]

    @classmethod
    def after_error(cls, handled: End | None, sqlstate: str) -> Ending:
        """A statement failed: the strategy's reading of it (``Walk.error``), else the failure."""
        return cls(end=handled) if handled is not None else cls(sqlstate=sqlstate)

    @classmethod
    def connection_lost(cls, commit_in_flight: bool) -> Ending:
        """Before COMMIT was sent the transaction certainly rolled back; during it, nobody knows."""
        return cls(sqlstate=CONNECTION_LOST, commit_in_flight=commit_in_flight)

    def worth_retrying(self, policy: RetryPolicy, attempt: int) -> bool:
        """After attempt number ``attempt`` (1-based): may a new transaction change the answer?"""
        return self.outcome is Outcome.FAILED and policy.should_retry(self.reason, attempt)


_DECIDED: dict[End | None, Ending] = {end: Ending(end) for end in (*End, None)}
