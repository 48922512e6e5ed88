"""doctor, migrate, reset, drop: the lab database's life cycle."""

from __future__ import annotations

import dataclasses

import click

from redpacket.cli.app import Options, cli, console, json_option, open_lab, print_json
from redpacket.database import migrate as migration
from redpacket.doctor import diagnose
from redpacket.errors import LabError
from redpacket.report.doctor_view import doctor_table


@cli.command()
@json_option
@click.pass_obj
def doctor(options: Options, as_json: bool) -> None:
    """Show the server, the lab database and whether its schema is migrated."""
    with open_lab(options) as lab:
        report = diagnose(lab)
    if as_json:
        print_json(dataclasses.asdict(report) | {"migrated": report.migrated})
        return
    console().print(doctor_table(report))


@cli.command()
@click.pass_obj
def migrate(options: Options) -> None:
    """Create the lab database if needed and upgrade its schemas."""
    with open_lab(options) as lab:
        revisions = migration.migrate(lab)
    for schema, revision in revisions.items():
        click.echo(f"{lab.name}.{schema.value}: at revision {revision}")


@cli.command()
@click.option("--orders", default=100, show_default=True, type=int, help="Orders to load.")
@click.pass_obj
def reset(options: Options, orders: int) -> None:
    """Empty the lab's tables and load fresh orders (migrating first if needed)."""
    if orders < 0:
        raise LabError(f"--orders must be 0 or more, got {orders}")
    with open_lab(options) as lab:
        migration.migrate(lab)
        lab.reset(orders)
    click.echo(f"{lab.name}: reset, {orders} orders loaded")


@cli.command()
@click.pass_obj
def drop(options: Options) -> None:
    """Drop the lab database, and only it (it must carry the lab's mark)."""
    with open_lab(options) as lab:
        dropped = lab.drop()
    click.echo(f"{lab.name}: dropped" if dropped else f"{lab.name}: nothing to drop")
