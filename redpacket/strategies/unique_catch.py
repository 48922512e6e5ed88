"""unique_catch — plain insert on the constrained schema; 23505 means "already granted".

What a Java service does with Spring's ``DuplicateKeyException``: let the unique
constraint of revision 0002 reject the second grant and treat 23505 as success of
the other request. The failed insert aborts the transaction, so it rolls back.

- read-committed: correct. The second insert waits for the first's uncommitted
  index entry, then fails with 23505: already granted.
- repeatable-read: correct. A plain insert checks uniqueness against committed
  rows whatever its snapshot: 23505 again.
- serializable: correct (23505 again). PostgreSQL turns the unique violation into
  40001 only when the transaction had itself read the conflicting key and missed
  it; a blind insert never read it.
An unknown order fails on the foreign key (23503).

On MySQL/InnoDB the duplicate key is error 1062 (SQLSTATE 23000): correct at every
level, the same way.
"""

from dataclasses import replace

from redpacket.isolation import Isolation
from redpacket.strategies.common import INSERT_GRANT
from redpacket.strategies.steps import End, Expected, Race, Strategy

UNIQUE_VIOLATION = "23505"
DUPLICATE_KEY = "1062"  # MySQL's number for it

STRATEGY = Strategy(
    name="unique_catch",
    summary=(
        "unique constraint + plain insert; a unique violation (23505; MySQL: 1062) means"
        " already granted"
    ),
    steps=(
        replace(
            INSERT_GRANT,
            on_error={UNIQUE_VIOLATION: End.ALREADY_GRANTED, DUPLICATE_KEY: End.ALREADY_GRANTED},
        ),
    ),
    requires_revision="0002",
    verdicts={
        Isolation.READ_COMMITTED: Expected(Race.CORRECT, "23505 for the loser"),
        Isolation.REPEATABLE_READ: Expected(Race.CORRECT, "23505 for the loser"),
        Isolation.SERIALIZABLE: Expected(Race.CORRECT, "23505 for the loser"),
    },
    engine_verdicts={
        "mysql": {level: Expected(Race.CORRECT, "1062 for the loser") for level in Isolation}
    },
    doc=__doc__ or "",
)
