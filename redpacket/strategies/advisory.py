"""advisory — ``pg_advisory_xact_lock(order_id)`` first; check; insert.

Serialises grants per order without touching the order row (useful when the row
is hot for other reasons, or does not exist yet). The lock is released at the end
of the transaction. The lab owns its database, so the bare order id as the key
cannot collide with another application's advisory locks.

- read-committed: correct. The check after the wait takes a fresh snapshot.
- repeatable-read: DUPLICATE. Like ``lock_first``: the locking ``SELECT`` is the
  first statement, its snapshot is taken before it waits.
- serializable: correct with retries; SSI aborts one side with 40001.
An unknown order fails on the foreign key (23503) at the insert.

On MySQL/InnoDB: ``GET_LOCK('redpacket:<order>')`` instead, a session-level lock
(it outlives the transaction), so it is released after the transaction ends,
however it ends (``afterwards``); a killed session releases it too. GET_LOCK reads
no table, so it fixes no snapshot: the check after the wait is the transaction's
first consistent read, and sees the winner's commit. Correct at every level.
"""

from redpacket.isolation import Isolation
from redpacket.strategies.common import FIND_GRANT, INSERT_GRANT
from redpacket.strategies.steps import End, Expected, Race, Role, Step, Strategy

ADVISORY_LOCK = Step(
    "advisory_lock",
    "SELECT pg_advisory_xact_lock(:order_id)",
    role=Role.LOCK,
    dialects={
        "mysql": Step(
            "advisory_lock",
            # a row only when the lock was obtained; 60 s is far past any schedule's wait
            "SELECT 1 FROM DUAL WHERE GET_LOCK(CONCAT('redpacket:', :order_id), 60) = 1",
            on_no_row=End.NOT_LOCKED,
            afterwards="SELECT RELEASE_LOCK(CONCAT('redpacket:', :order_id))",
        )
    },
)

STRATEGY = Strategy(
    name="advisory",
    summary="advisory lock keyed on the order, then check and insert",
    steps=(ADVISORY_LOCK, FIND_GRANT, INSERT_GRANT),
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
            level: Expected(Race.CORRECT, "GET_LOCK fixes no snapshot") for level in Isolation
        }
    },
    doc=__doc__ or "",
)
