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
"""

from redpacket.isolation import Isolation
from redpacket.strategies.common import FIND_GRANT, INSERT_GRANT
from redpacket.strategies.steps import Expected, Race, Role, Step, Strategy

ADVISORY_LOCK = Step("advisory_lock", "SELECT pg_advisory_xact_lock(:order_id)", role=Role.LOCK)

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
    doc=__doc__ or "",
)
