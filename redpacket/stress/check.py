"""Hold the database to account after a run: duplicates, and orders left without a grant."""

from __future__ import annotations

from dataclasses import dataclass

from redpacket.database.lab import Lab, Schema


@dataclass(frozen=True)
class GrantCheck:
    duplicate_orders: int  # orders with more than one red packet for the campaign
    extra_grants: int  # red packets beyond the first, summed over those orders
    missing_orders: int  # attempted orders that ended with no red packet

    @property
    def correct(self) -> bool:
        return self.duplicate_orders == 0 and self.missing_orders == 0


def check_grants(lab: Lab, schema: Schema, attempted: bytearray, campaign_id: str) -> GrantCheck:
    """Count from the table itself; ``attempted[i]`` is 1 when order i was asked for."""
    with lab.connect(schema) as conn:
        cursor = conn.cursor()
        cursor.execute(
            "SELECT order_id, count(*) FROM red_packets WHERE campaign_id = %s GROUP BY order_id",
            (campaign_id,),
        )
        per_order = {int(order_id): int(count) for order_id, count in cursor.fetchall()}
        cursor.close()
    duplicates = [count for count in per_order.values() if count > 1]
    missing = sum(
        1 for order_id, flag in enumerate(attempted) if flag and order_id not in per_order
    )
    return GrantCheck(len(duplicates), sum(count - 1 for count in duplicates), missing)
