"""seed — the original service as written: read the order, lock it, check, insert.

1. plain ``SELECT`` of the order; 2. ``SELECT ... FOR UPDATE`` of the order;
3. ``SELECT`` whether a red packet exists; 4. ``INSERT`` if not.

Why it fails: the lock looks like it serialises grants, but the first statement
is a plain read, and under REPEATABLE READ that statement fixes the snapshot. The
second transaction waits for the lock, gets it once the first commits, then checks
for a red packet in its old snapshot, sees none and inserts a duplicate.

- read-committed: correct. After waiting for the lock, the existence check takes
  a fresh snapshot and sees the committed grant.
- repeatable-read: DUPLICATE. The order row was only locked, not updated, so the
  ``FOR UPDATE`` succeeds after the wait; the check reads the stale snapshot.
  (MySQL/InnoDB behaves the same at its default REPEATABLE READ: plain reads use
  the snapshot of the first read.)
- serializable: correct with retries; SSI aborts one side with 40001.

On MySQL/InnoDB: duplicate at REPEATABLE READ (the first plain read fixed the
snapshot before the lock), correct at READ COMMITTED; at SERIALIZABLE plain reads
take shared locks, the two transactions deadlock (1213), and a retry is correct.
"""

from redpacket.isolation import Isolation
from redpacket.strategies.common import FIND_GRANT, INSERT_GRANT, LOCK_ORDER, SELECT_ORDER
from redpacket.strategies.steps import Expected, Race, Strategy

STRATEGY = Strategy(
    name="seed",
    summary="the bug as shipped: read order, lock order, check, insert",
    steps=(SELECT_ORDER, LOCK_ORDER, FIND_GRANT, INSERT_GRANT),
    requires_revision="0001",
    verdicts={
        Isolation.READ_COMMITTED: Expected(Race.CORRECT),
        Isolation.REPEATABLE_READ: Expected(Race.DUPLICATE),
        Isolation.SERIALIZABLE: Expected(Race.CORRECT_WITH_RETRIES, "40001 for the loser"),
    },
    engine_verdicts={
        "mysql": {
            Isolation.READ_COMMITTED: Expected(Race.CORRECT),
            Isolation.REPEATABLE_READ: Expected(Race.DUPLICATE),
            Isolation.SERIALIZABLE: Expected(Race.CORRECT_WITH_RETRIES, "1213 for the loser"),
        }
    },
    doc=__doc__ or "",
)
