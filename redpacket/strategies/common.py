"""Steps several strategies share, so each statement is written (and reviewed) once."""

from redpacket.strategies.steps import End, Role, Step

SELECT_ORDER = Step(
    "select_order",
    "SELECT id FROM orders WHERE id = :order_id",
    on_no_row=End.UNKNOWN_ORDER,
    role=Role.READ,
)
LOCK_ORDER = Step(
    "lock_order",
    "SELECT id FROM orders WHERE id = :order_id FOR UPDATE",
    on_no_row=End.UNKNOWN_ORDER,
    role=Role.LOCK,
)
FIND_GRANT = Step(
    "find_grant",
    "SELECT id FROM red_packets WHERE order_id = :order_id AND campaign_id = :campaign_id LIMIT 1",
    on_row=End.ALREADY_GRANTED,
    role=Role.CHECK,
)
INSERT_GRANT = Step(
    "insert_grant",
    "INSERT INTO red_packets (order_id, campaign_id, amount)"
    " VALUES (:order_id, :campaign_id, :amount) RETURNING id",
    capture="red_packet_id",
    on_row=End.GRANTED,
    role=Role.INSERT,
    # MySQL has no RETURNING: the inserted row's id comes back as the insert's answer
    dialects={
        "mysql": "INSERT INTO red_packets (order_id, campaign_id, amount)"
        " VALUES (:order_id, :campaign_id, :amount)"
    },
)
