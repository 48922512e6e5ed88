"""lock_check — check with a locking read (``SELECT ... FOR UPDATE`` on red_packets); insert.

The fix MySQL users reach for: lock what the check found, so the second check waits.
But there is nothing to lock when no red packet exists yet.

- PostgreSQL locks rows, never gaps: FOR UPDATE of no row locks nothing. Read
  committed and repeatable read: DUPLICATE. Serializable: correct with retries
  (SSI, 40001).
- MySQL/InnoDB at REPEATABLE READ and SERIALIZABLE locks the *gap* where the row
  would go (a next-key lock). Gap locks do not conflict with each other, so both
  checks pass; then each insert waits for the other's gap lock: a deadlock (1213),
  and one side is refused. Correct with retries — deadlock-prone by design.
  At READ COMMITTED InnoDB takes no gap locks for a search: DUPLICATE.
"""

from dataclasses import replace

from redpacket.isolation import Isolation
from redpacket.strategies.common import FIND_GRANT, INSERT_GRANT
from redpacket.strategies.steps import Expected, Race, Strategy

LOCKING_CHECK = replace(
    FIND_GRANT,
    name="lock_check",
    sql="SELECT id FROM red_packets WHERE order_id = :order_id AND campaign_id = :campaign_id"
    " LIMIT 1 FOR UPDATE",
)

STRATEGY = Strategy(
    name="lock_check",
    summary="check with SELECT ... FOR UPDATE on red_packets, then insert",
    steps=(LOCKING_CHECK, INSERT_GRANT),
    requires_revision="0001",
    verdicts={
        Isolation.READ_COMMITTED: Expected(Race.DUPLICATE, "no row, nothing locked"),
        Isolation.REPEATABLE_READ: Expected(Race.DUPLICATE, "no row, nothing locked"),
        Isolation.SERIALIZABLE: Expected(Race.CORRECT_WITH_RETRIES, "40001 for the loser"),
    },
    engine_verdicts={
        "mysql": {
            Isolation.READ_COMMITTED: Expected(Race.DUPLICATE, "no gap locks at read committed"),
            Isolation.REPEATABLE_READ: Expected(
                Race.CORRECT_WITH_RETRIES, "gap locks deadlock: 1213"
            ),
            Isolation.SERIALIZABLE: Expected(Race.CORRECT_WITH_RETRIES, "gap locks deadlock: 1213"),
        }
    },
    doc=__doc__ or "",
)
