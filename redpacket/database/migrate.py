"""Alembic, driven on the lab's own connection, once per schema of the lab database."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from redpacket.database.connect import translate_connect_errors
from redpacket.database.lab import Lab, Schema
from redpacket.database.names import migrate_command
from redpacket.errors import LabError


def migrations_dir() -> Path:
    return Path(str(resources.files("redpacket.migrations")))


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def resolve(revision: str) -> str:
    return head_revision() if revision == "head" else revision


def upgrade(lab: Lab, schema: Schema, revision: str | None = None) -> None:
    """Bring one schema to ``revision`` (default: the schema's own target)."""
    with translate_connect_errors(lab.url), lab.sqlalchemy(schema).connect() as conn:
        lab.engine.create_schema(conn, schema.value)
        conn.commit()
        command.upgrade(alembic_config(conn), revision or schema.target_revision)
        conn.commit()


def downgrade(lab: Lab, schema: Schema, revision: str) -> None:
    with translate_connect_errors(lab.url), lab.sqlalchemy(schema).connect() as conn:
        command.downgrade(alembic_config(conn), revision)
        conn.commit()


def current_revision(lab: Lab, schema: Schema) -> str | None:
    with translate_connect_errors(lab.url), lab.sqlalchemy(schema).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(lab: Lab) -> dict[Schema, str | None]:
    """Create the lab database if needed and bring every schema to its target revision."""
    lab.ensure()
    for schema in Schema:
        upgrade(lab, schema)
    return {schema: current_revision(lab, schema) for schema in Schema}


def status(lab: Lab) -> dict[Schema, tuple[str | None, str]]:
    """Per schema: (current revision, target revision)."""
    return {
        schema: (current_revision(lab, schema), resolve(schema.target_revision))
        for schema in Schema
    }


def require_migrated(lab: Lab) -> None:
    for schema, (current, target) in status(lab).items():
        if current != target:
            raise LabError(
                f"the lab schema {schema.value!r} is at revision {current or 'none'},"
                f" needs {target}; run `{migrate_command(lab.name)}`"
            )


DEFAULT_ORDERS = 100


def prepare(lab: Lab) -> None:
    """Make the lab usable without ceremony: create, migrate, and load orders if new.

    A database the lab has just created (always, on the embedded server) gets the
    default orders, so ``redpacket grant 1`` works on a fresh machine.
    """
    created = lab.ensure()
    for schema in Schema:
        if current_revision(lab, schema) != resolve(schema.target_revision):
            upgrade(lab, schema)
    if created:
        lab.reset(DEFAULT_ORDERS)
