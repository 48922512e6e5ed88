"""on_conflict — ``INSERT ... ON CONFLICT (order_id, campaign_id) DO NOTHING RETURNING id``.

The database enforces "one per (order, campaign)" with the unique constraint of
revision 0002; the insert is the check. One statement, no client decision before
the write.

- read-committed: correct. A second insert waits for the first's uncommitted
  index entry, then does nothing: no row comes back, already granted.
- repeatable-read: correct with retries. The conflicting row is not visible to
  the waiter's snapshot, so PostgreSQL raises 40001 instead of doing nothing.
- serializable: as repeatable-read.
An unknown order fails on the foreign key (23503).

On MySQL/InnoDB: ``INSERT IGNORE``, the changed-row count deciding (1 granted,
0 not). IGNORE also turns a foreign-key failure into a warning, so a second step
reads the order: found, already granted; missing, unknown order. The waiting
insert sees the winner's committed key whatever its snapshot: correct at every
level, no retry.
"""

from dataclasses import replace

from redpacket.isolation import Isolation
from redpacket.strategies.common import SELECT_ORDER
from redpacket.strategies.steps import End, Expected, Go, Race, Role, Step, Strategy

INSERT_OR_NOTHING = Step(
    "insert_on_conflict",
    "INSERT INTO red_packets (order_id, campaign_id, amount)"
    " VALUES (:order_id, :campaign_id, :amount)"
    " ON CONFLICT (order_id, campaign_id) DO NOTHING RETURNING id",
    capture="red_packet_id",
    on_row=End.GRANTED,
    on_no_row=End.ALREADY_GRANTED,
    role=Role.INSERT,
    dialects={
        "mysql": Step(
            "insert_on_conflict",
            "INSERT IGNORE INTO red_packets (order_id, campaign_id, amount)"
            " VALUES (:order_id, :campaign_id, :amount)",
            capture="red_packet_id",
            on_row=End.GRANTED,
            on_no_row=Go("order_exists"),
        )
    },
)
# Reached on MySQL only, where INSERT IGNORE also ignores a missing order.
ORDER_EXISTS = replace(
    SELECT_ORDER, name="order_exists", on_row=End.ALREADY_GRANTED, on_no_row=End.UNKNOWN_ORDER
)

STRATEGY = Strategy(
    name="on_conflict",
    summary=(
        "unique constraint + an insert that skips a duplicate"
        " (ON CONFLICT DO NOTHING; MySQL: INSERT IGNORE)"
    ),
    steps=(INSERT_OR_NOTHING, ORDER_EXISTS),
    requires_revision="0002",
    verdicts={
        Isolation.READ_COMMITTED: Expected(Race.CORRECT),
        Isolation.REPEATABLE_READ: Expected(Race.CORRECT_WITH_RETRIES, "40001 for the loser"),
        Isolation.SERIALIZABLE: Expected(Race.CORRECT_WITH_RETRIES, "40001 for the loser"),
    },
    engine_verdicts={"mysql": {level: Expected(Race.CORRECT) for level in Isolation}},
    doc=__doc__ or "",
)
