"""Hold the database to account after a run: duplicates, and orders left without a grant."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from redpacket.database.connect import CONNECT_TIMEOUT_S


@dataclass(frozen=True)
class GrantCheck:
    duplicate_orders: int  # orders with more than one red packet for the campaign
    extra_grants: int  # red packets beyond the first, summed over those orders
    missing_orders: int  # attempted orders that ended with no red packet

    @property
    def correct(self) -> bool:
        return self.duplicate_orders == 0 and self.missing_orders == 0


def check_grants(conninfo: str, attempted: bytearray, campaign_id: str) -> GrantCheck:
    """Count from the table itself; ``attempted[i]`` is 1 when order i was asked for."""
    order_ids = [i for i, flag in enumerate(attempted) if flag]
    with psycopg.connect(conninfo, connect_timeout=CONNECT_TIMEOUT_S) as conn:
        duplicates = conn.execute(
            "SELECT count(*), coalesce(sum(n - 1), 0) FROM ("
            "  SELECT count(*) AS n FROM red_packets WHERE campaign_id = %s"
            "  GROUP BY order_id HAVING count(*) > 1) AS d",
            (campaign_id,),
        ).fetchone()
        missing = conn.execute(
            "SELECT count(*) FROM unnest(%s::bigint[]) AS a(id) WHERE NOT EXISTS ("
            "  SELECT 1 FROM red_packets AS r WHERE r.order_id = a.id AND r.campaign_id = %s)",
            (order_ids, campaign_id),
        ).fetchone()
    assert duplicates is not None
    assert missing is not None
    return GrantCheck(int(duplicates[0]), int(duplicates[1]), int(missing[0]))
