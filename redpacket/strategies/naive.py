"""naive — check whether a red packet exists for (order, campaign); if not, insert it.

Why it fails: nothing orders two grants of the same order. Both transactions can
run the check before either inserts, both see "none", both insert.

- read-committed: DUPLICATE. Each statement sees what was committed when it began,
  and neither grant is committed when the other checks.
- repeatable-read: DUPLICATE, for the same reason (and the snapshot is even older).
- serializable: correct. SSI sees each transaction read what the other wrote
  (a read-write dependency cycle) and aborts one with 40001; with a retry, the
  retry sees the committed grant.

On MySQL/InnoDB the same, except that at SERIALIZABLE the checks become
shared-locking reads and the two inserts deadlock (1213) instead.
"""

from redpacket.isolation import Isolation
from redpacket.strategies.common import FIND_GRANT, INSERT_GRANT
from redpacket.strategies.steps import Expected, Race, Strategy

STRATEGY = Strategy(
    name="naive",
    summary="check, then insert; no lock at all",
    steps=(FIND_GRANT, INSERT_GRANT),
    requires_revision="0001",
    verdicts={
        Isolation.READ_COMMITTED: Expected(Race.DUPLICATE),
        Isolation.REPEATABLE_READ: Expected(Race.DUPLICATE),
        Isolation.SERIALIZABLE: Expected(Race.CORRECT_WITH_RETRIES, "40001 for the loser"),
    },
    engine_verdicts={
        "mysql": {
            Isolation.READ_COMMITTED: Expected(Race.DUPLICATE),
            Isolation.REPEATABLE_READ: Expected(Race.DUPLICATE),
            Isolation.SERIALIZABLE: Expected(Race.CORRECT_WITH_RETRIES, "1213 for the loser"),
        }
    },
    doc=__doc__ or "",
)
