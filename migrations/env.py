"""Alembic environment: a passed-in connection first (tests, the CLI), then a URL.

The lab keeps one schema per revision it needs; the connection it passes already
lands in that schema (PostgreSQL: its ``search_path``; MySQL: the schema is the
connection's database), so the tables and the version table go there.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import NullPool

from redpacket.model import metadata

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def run_migrations(connection: Connection) -> None:
    # Alembic owns each migration's transaction: revision 0002 steps out of it for
    # CREATE INDEX CONCURRENTLY (PostgreSQL) and online ALTER TABLE (MySQL).
    context.configure(
        connection=connection,
        target_metadata=metadata,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or os.environ["REDPACKET_DATABASE_URL"]
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as conn:
        run_migrations(conn)
        conn.commit()


if context.is_offline_mode():
    raise SystemExit("redpacket migrations run online only (they move data and build indexes)")
run_migrations_online()
