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
"""

from redpacket.isolation import Isolation
from redpacket.strategies.steps import End, Expected, Race, Role, Step, Strategy

INSERT_OR_NOTHING = Step(
    "insert_on_conflict",
    "INSERT INTO red_packets (order_id, campaign_id, amount)"
    " VALUES (:order_id, :campaign_id, :amount)"
    " ON CONFLICT (order_id, campaign_id) DO NOTHING RETURNING id",
    capture="red_packet_id",
    on_row=End.GRANTED,
    on_no_row=End.ALREADY_GRANTED,
    role=Role.INSERT,
)

STRATEGY = Strategy(
    name="on_conflict",
    summary="unique constraint + INSERT ... ON CONFLICT DO NOTHING",
    steps=(INSERT_OR_NOTHING,),
    requires_revision="0002",
    verdicts={
        Isolation.READ_COMMITTED: Expected(Race.CORRECT),
        Isolation.REPEATABLE_READ: Expected(Race.CORRECT_WITH_RETRIES, "40001 for the loser"),
        Isolation.SERIALIZABLE: Expected(Race.CORRECT_WITH_RETRIES, "40001 for the loser"),
    },
    doc=__doc__ or "",
)
