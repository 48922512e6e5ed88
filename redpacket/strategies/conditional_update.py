"""conditional_update — claim the order with one atomic UPDATE, insert only if claimed.

``UPDATE orders SET red_packet_granted = true WHERE id = :id AND NOT
red_packet_granted RETURNING id``: the write itself is the check. A second claim
waits on the row lock, then re-checks the condition against the newest row version.

- read-committed: correct. The waiting UPDATE re-evaluates ``NOT
  red_packet_granted`` on the committed row, matches nothing, and the grant ends
  as already granted.
- repeatable-read: correct with retries. The waiting UPDATE finds the row updated
  after its snapshot and fails with 40001; the retry sees the flag set.
- serializable: as repeatable-read.
When the claim matches nothing, one more read tells "already granted" from
"no such order". The flag is per order: the model of the original schema, one red
packet per order; several campaigns per order would need a claim table instead.

On MySQL/InnoDB (no RETURNING: the changed-row count decides) it is correct at
every level without a retry: an UPDATE is a current read, so the waiting claim
sees the winner's committed flag and changes nothing; REPEATABLE READ raises no
error for it (unless innodb_snapshot_isolation is ON).
"""

from dataclasses import replace

from redpacket.isolation import Isolation
from redpacket.strategies.common import INSERT_GRANT, SELECT_ORDER
from redpacket.strategies.steps import End, Expected, Go, Race, Role, Step, Strategy

CLAIM = Step(
    "claim_order",
    "UPDATE orders SET red_packet_granted = true"
    " WHERE id = :order_id AND NOT red_packet_granted RETURNING id",
    on_no_row=Go("select_order"),
    role=Role.CLAIM,
    dialects={
        "mysql": "UPDATE orders SET red_packet_granted = true"
        " WHERE id = :order_id AND NOT red_packet_granted"
    },
)

STRATEGY = Strategy(
    name="conditional_update",
    summary="atomic UPDATE ... WHERE NOT granted claims the order; insert if claimed",
    steps=(
        CLAIM,
        INSERT_GRANT,
        replace(SELECT_ORDER, on_row=End.ALREADY_GRANTED, on_no_row=End.UNKNOWN_ORDER),
    ),
    requires_revision="0001",
    verdicts={
        Isolation.READ_COMMITTED: Expected(Race.CORRECT),
        Isolation.REPEATABLE_READ: Expected(Race.CORRECT_WITH_RETRIES, "40001 for the loser"),
        Isolation.SERIALIZABLE: Expected(Race.CORRECT_WITH_RETRIES, "40001 for the loser"),
    },
    engine_verdicts={
        "mysql": {
            level: Expected(Race.CORRECT, "the claim is a current read") for level in Isolation
        }
    },
    doc=__doc__ or "",
)
