"""lock_first — ``SELECT ... FOR UPDATE`` of the order as the first statement; check; insert.

The obvious repair of the seed: take the lock before reading anything, so the
check runs only after the competitor committed.

- read-committed: correct. The check after the wait takes a fresh snapshot.
- repeatable-read: still DUPLICATE on PostgreSQL. The snapshot is taken when the
  first statement *starts* — the blocked ``FOR UPDATE`` itself — so after the wait
  the check still reads a snapshot from before the competitor's commit. (The
  order row was only locked, not updated, so there is no 40001 either.)
- serializable: correct with retries; SSI aborts one side with 40001.

On MySQL/InnoDB it is a fix at every level: a locking read is a *current* read and
fixes no snapshot, so the check after the wait is the transaction's first
consistent read, and its snapshot comes after the winner's commit.
"""

from redpacket.isolation import Isolation
from redpacket.strategies.common import FIND_GRANT, INSERT_GRANT, LOCK_ORDER
from redpacket.strategies.steps import Expected, Race, Strategy

STRATEGY = Strategy(
    name="lock_first",
    summary="lock the order first, then check and insert",
    steps=(LOCK_ORDER, FIND_GRANT, INSERT_GRANT),
    requires_revision="0001",
    verdicts={
        Isolation.READ_COMMITTED: Expected(Race.CORRECT),
        Isolation.REPEATABLE_READ: Expected(
            Race.DUPLICATE, "snapshot taken as the blocked lock starts"
        ),
        Isolation.SERIALIZABLE: Expected(Race.CORRECT_WITH_RETRIES, "40001 for the loser"),
    },
    engine_verdicts={
        "mysql": {
            level: Expected(Race.CORRECT, "a locking read fixes no snapshot") for level in Isolation
        }
    },
    doc=__doc__ or "",
)
