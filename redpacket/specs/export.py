"""A red-packet run as a spec file: the race the lab showed, for any isolationtester.

``explain --spec FILE`` writes the run it just explained as the spec it was: the
steps the spec runner launched, values written in, in the order it launched them,
one session per request (``T1``, ``T2``; a retry goes on in its session), with the
tables of the strategy's schema and the run's order as setup, and a ``check``
session that counts the red packets at the end. Run with ``redpacket spec`` (either engine) or with
PostgreSQL's own isolationtester, it replays the same interleaving, with the
tester's marks where the server made a statement wait, and ends with the same count.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Identity,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateTable

from redpacket.database.lab import Schema
from redpacket.interleave.timeline import Run
from redpacket.model import UNIQUE_GRANT
from redpacket.specs.events import StepCompleted, StepWaiting
from redpacket.specs.literal import bound


def tables_sql(schema: Schema, dialect: Dialect) -> list[str]:
    """CREATE TABLE for the columns the strategies use, as the schema has them (the bug's
    schema has no unique key), in the dialect of the engine the run was on."""
    metadata = MetaData()
    orders = Table(
        "orders", metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=False),
        Column("user_id", BigInteger, nullable=False),
        Column("amount", Numeric(12, 2), nullable=False),
        Column("red_packet_granted", Boolean, nullable=False, server_default=false()),
        Column("version", Integer, nullable=False, server_default=text("0")),
    )  # fmt: skip
    packets = Table(
        "red_packets", metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("order_id", BigInteger, ForeignKey("orders.id"), nullable=False),
        Column("campaign_id", String(64), nullable=False),
        Column("amount", Numeric(12, 2), nullable=False),
    )  # fmt: skip
    if schema is Schema.CONSTRAINED:
        packets.append_constraint(UniqueConstraint("order_id", "campaign_id", name=UNIQUE_GRANT))
    created = [str(CreateTable(table).compile(dialect=dialect)) for table in (orders, packets)]
    return ["\n".join(line.rstrip().replace("\t", "    ") for line in ddl.strip().splitlines())
            for ddl in created]  # fmt: skip


def spec_of_run(run: Run, requires_revision: str, campaign_id: str, dialect: Dialect) -> str:
    """The steps the spec runner launched for ``run``, as a spec file of their own."""
    schema = Schema.for_revision(requires_revision)
    steps: dict[str, list[tuple[str, str]]] = {}
    order: list[str] = []
    for event in run.spec_events:  # launched: seen waiting, or completed without waiting
        if isinstance(event, StepWaiting | StepCompleted) and not (
            event.after_wait if isinstance(event, StepCompleted) else event.forced
        ):
            steps.setdefault(event.session, []).append((event.step, event.sql))
            order.append(event.step)
    setup = ";\n  ".join(
        [*tables_sql(schema, dialect),
         bound("INSERT INTO orders (id, user_id, amount) VALUES (:id, 0, 10)",
               {"id": run.order_id}, dialect)]
    )  # fmt: skip
    count = bound(
        "SELECT count(*) AS red_packets FROM red_packets"
        " WHERE order_id = :order_id AND campaign_id = :campaign_id",
        {"order_id": run.order_id, "campaign_id": campaign_id}, dialect,
    )  # fmt: skip
    lines = [
        f"# The red-packet race as redpacket ran it: strategy {run.strategy} at"
        f" {run.isolation}, schedule {run.schedule},",
        f"# on {run.server}; {run.red_packets} red packet(s), verdict {run.verdict.value}.",
        "# Each session's statements in the order the lab issued them, values bound.",
        f"# redpacket: engines {run.engine}",
        "",
        f"setup\n{{\n  {setup};\n}}",
        "teardown { DROP TABLE red_packets; DROP TABLE orders; }",
    ]
    for session, session_steps in sorted(steps.items()):
        lines += ["", f"session {session}"]
        lines += [f"step {name} {{ {sql}; }}" for name, sql in session_steps]
    lines += ["", "session check", f"step check {{ {count}; }}", "",
              "permutation " + " ".join([*order, "check"]), ""]  # fmt: skip
    return "\n".join(lines)
