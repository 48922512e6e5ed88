"""Which failures are worth another attempt, how many attempts, and how long to wait.

Only failures that mean "a concurrent transaction got in the way" are retried:
serialization failure (40001), deadlock (40P01), a strategy's own lost race (the
optimistic version check), and a connection lost before COMMIT was sent. Anything
else — a foreign-key violation for an unknown order, a syntax error — would fail
the same way again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from redpacket.errors import LabError

SERIALIZATION_FAILURE = "40001"
DEADLOCK_DETECTED = "40P01"
# A connection lost before COMMIT was sent: the transaction certainly rolled back,
# so a new attempt on a new connection is safe (one lost during COMMIT is not: its
# outcome is unknown, and it is never retried).
CONNECTION_LOST = "08006"
# MySQL's numbers for the same two: 1213 deadlock (SQLSTATE 40001), and 1020 "record has
# changed since last read" (InnoDB with innodb_snapshot_isolation: the first writer wins).
MYSQL_DEADLOCK, MYSQL_RECORD_CHANGED = "1213", "1020"
RETRYABLE_SQLSTATES = frozenset(
    {
        SERIALIZATION_FAILURE,
        DEADLOCK_DETECTED,
        CONNECTION_LOST,
        MYSQL_DEADLOCK,
        MYSQL_RECORD_CHANGED,
    }
)
LOST_RACE = "lost_race"
RETRIED = (
    f"a serialization failure or deadlock ({SERIALIZATION_FAILURE}, {DEADLOCK_DETECTED};"
    f" MySQL {MYSQL_DEADLOCK}, {MYSQL_RECORD_CHANGED}), a lost optimistic race, or a"
    " connection lost before COMMIT was sent"
)  # what the --retries help says: the set above, in words


def means_connection_lost(sqlstate: str | None) -> bool:
    """57P01-57P03 (terminated, shutting down) and class 08: the session is gone."""
    return sqlstate is not None and sqlstate.startswith(("57P0", "08"))


def is_retryable(reason: str | None) -> bool:
    return reason in RETRYABLE_SQLSTATES or reason == LOST_RACE


@dataclass(frozen=True)
class RetryPolicy:
    """Up to ``retries`` more attempts, with full-jitter exponential backoff between them.

    Jitter keeps two losers of the same race from colliding again in lockstep.
    """

    retries: int = 0
    base_delay_s: float = 0.001
    max_delay_s: float = 0.05

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise LabError(f"--retries must be 0 or more, got {self.retries}")

    @property
    def max_attempts(self) -> int:
        return self.retries + 1

    def should_retry(self, reason: str | None, attempt: int) -> bool:
        """After failed attempt number ``attempt`` (1-based) for ``reason``, try again?"""
        return is_retryable(reason) and attempt < self.max_attempts

    def delay_s(self, attempt: int, rng: random.Random | None = None) -> float:
        cap = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return (rng or random).uniform(0, cap)


NO_RETRIES = RetryPolicy(0)
