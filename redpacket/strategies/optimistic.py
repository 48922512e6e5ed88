"""optimistic — read the order's version, check, insert, then bump the version if unchanged.

No lock is held while deciding; the final ``UPDATE orders SET version = version + 1
WHERE id = :id AND version = :seen`` proves nobody granted in between. Zero rows
updated means a concurrent grant won: roll back (the insert goes with it) and
report a lost race, which the retry policy retries.

- read-committed: correct with retries. A loser that checks after the winner's
  commit sees its red packet; one that checked before it loses at the bump: it
  waits for the winner's row lock, re-reads the row, finds a new version and
  updates nothing (lost race, retried).
- repeatable-read: correct with retries. The losing bump finds the row updated
  after its snapshot: 40001.
- serializable: correct with retries, but not the way repeatable-read is: the
  loser is refused earlier, at its insert, by serializable's read/write check
  (40001, "read/write dependencies among transactions"): each transaction checked
  for the red packet the other then inserted. It never reaches the version bump.

On MySQL/InnoDB the bump is a current read at every level: the loser's bump finds
the new version and updates nothing — a lost race, retried — at READ COMMITTED
and REPEATABLE READ alike; at SERIALIZABLE the shared-locking reads deadlock (1213).
"""

from dataclasses import replace

from redpacket.isolation import Isolation
from redpacket.strategies.common import FIND_GRANT, INSERT_GRANT
from redpacket.strategies.steps import NEXT, End, Expected, Race, Role, Step, Strategy

READ_VERSION = Step(
    "read_version",
    "SELECT version FROM orders WHERE id = :order_id",
    capture="seen_version",
    on_no_row=End.UNKNOWN_ORDER,
    role=Role.READ,
)
BUMP_VERSION = Step(
    "bump_version",
    "UPDATE orders SET version = version + 1"
    " WHERE id = :order_id AND version = :seen_version RETURNING version",
    on_row=End.GRANTED,
    on_no_row=End.LOST_RACE,
    role=Role.BUMP,
    dialects={
        "mysql": "UPDATE orders SET version = version + 1"
        " WHERE id = :order_id AND version = :seen_version"
    },
)

STRATEGY = Strategy(
    name="optimistic",
    summary="version check: read version, check, insert, bump version if unchanged",
    steps=(
        READ_VERSION,
        FIND_GRANT,
        replace(INSERT_GRANT, on_row=NEXT),
        BUMP_VERSION,
    ),
    requires_revision="0001",
    verdicts={
        Isolation.READ_COMMITTED: Expected(Race.CORRECT_WITH_RETRIES, "lost race for the loser"),
        Isolation.REPEATABLE_READ: Expected(Race.CORRECT_WITH_RETRIES, "40001 for the loser"),
        Isolation.SERIALIZABLE: Expected(Race.CORRECT_WITH_RETRIES, "40001 for the loser"),
    },
    engine_verdicts={
        "mysql": {
            Isolation.READ_COMMITTED: Expected(Race.CORRECT_WITH_RETRIES, "lost race"),
            Isolation.REPEATABLE_READ: Expected(Race.CORRECT_WITH_RETRIES, "lost race"),
            Isolation.SERIALIZABLE: Expected(Race.CORRECT_WITH_RETRIES, "1213 for the loser"),
        }
    },
    doc=__doc__ or "",
)
