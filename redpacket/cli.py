"""The command line: parse, call the core, render. Nothing else lives here."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from redpacket import service
from redpacket.database import migrate as migration
from redpacket.database.backends import BACKENDS, open_server
from redpacket.database.lab import DEFAULT_LAB_DATABASE, Lab
from redpacket.doctor import DoctorReport, diagnose
from redpacket.errors import LabError
from redpacket.isolation import ISOLATION_NAMES, Isolation
from redpacket.retry import RetryPolicy
from redpacket.service import DEFAULT_CAMPAIGN, GrantRequest, GrantResult, Outcome
from redpacket.strategies import STRATEGY_NAMES, Strategy, get_strategy

PROG = "redpacket"


@dataclasses.dataclass
class Options:
    database_url: str | None
    backend: str
    lab_database: str


@contextlib.contextmanager
def open_lab(options: Options) -> Iterator[Lab]:
    with open_server(options.backend, options.database_url) as server:
        lab = Lab(server, options.lab_database)
        try:
            yield lab
        finally:
            lab.close()


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--database-url",
    envvar="REDPACKET_DATABASE_URL",
    help="postgresql://USER[:PASSWORD]@HOST[:PORT]/DB of a server (env REDPACKET_DATABASE_URL).",
)
@click.option(
    "--backend",
    envvar="REDPACKET_BACKEND",
    default="auto",
    show_default=True,
    help=f"Where PostgreSQL comes from: {'|'.join(BACKENDS)} (env REDPACKET_BACKEND).",
)
@click.option(
    "--lab-database",
    envvar="REDPACKET_LAB_DATABASE",
    default=DEFAULT_LAB_DATABASE,
    show_default=True,
    help="The database the lab creates and owns on that server.",
)
@click.version_option(package_name="redpacket")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, backend: str, lab_database: str) -> None:
    """Reproduce, explain, stress and fix the duplicate red-packet grant."""
    if not lab_database.strip():
        raise LabError("--lab-database must not be empty")
    ctx.obj = Options(database_url or None, backend, lab_database)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def doctor(options: Options, as_json: bool) -> None:
    """Show the server, the lab database and whether its schema is migrated."""
    with open_lab(options) as lab:
        report = diagnose(lab)
    if as_json:
        _print_json(dataclasses.asdict(report) | {"migrated": report.migrated})
        return
    _render_doctor(report)


def _render_doctor(report: DoctorReport) -> None:
    table = Table(title="redpacket doctor", show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("backend", report.backend)
    table.add_row("server", f"PostgreSQL {report.server_version}")
    table.add_row("url", report.url)
    table.add_row("default isolation", report.default_isolation)
    table.add_row(
        "lab database",
        report.lab_database + ("" if report.lab_database_exists else " (not created yet)"),
    )
    for status in report.schemas:
        mark = "migrated" if status.migrated else "NOT migrated"
        table.add_row(
            f"schema {status.schema}",
            f"{mark} (at {status.current or 'none'}, target {status.target})",
        )
    table.add_row("ready", "yes" if report.migrated else "no: run `redpacket migrate`")
    _console().print(table)


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


@cli.command()
@click.pass_obj
def demo(options: Options) -> None:
    """The lab's main job: set up a lab database and show what it runs against."""
    with open_lab(options) as lab:
        migration.migrate(lab)
        lab.reset(100)
        _render_doctor(diagnose(lab))


def _strategy(_ctx: click.Context, _param: click.Parameter, value: str) -> Strategy:
    return get_strategy(value)


def _isolation(_ctx: click.Context, _param: click.Parameter, value: str) -> Isolation:
    return Isolation.parse(value)


strategy_option = click.option(
    "--strategy",
    "-s",
    default="seed",
    show_default=True,
    callback=_strategy,
    help=f"One of: {', '.join(STRATEGY_NAMES)}.",
)
isolation_option = click.option(
    "--isolation",
    "-i",
    default=Isolation.READ_COMMITTED.value,
    show_default=True,
    callback=_isolation,
    help=f"One of: {', '.join(ISOLATION_NAMES)}.",
)
retries_option = click.option(
    "--retries",
    default=0,
    show_default=True,
    type=int,
    help="Extra attempts after 40001, 40P01 or a lost optimistic race.",
)


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("order_id", type=int)
@strategy_option
@isolation_option
@click.option("--campaign", default=DEFAULT_CAMPAIGN, show_default=True, help="Campaign id.")
@retries_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def grant(
    options: Options,
    order_id: int,
    strategy: Strategy,
    isolation: Isolation,
    campaign: str,
    retries: int,
    as_json: bool,
) -> None:
    """Grant ORDER_ID its red packet once, with one strategy at one isolation level."""
    request = GrantRequest(order_id, campaign)
    policy = RetryPolicy(retries)
    with open_lab(options) as lab:
        migration.prepare(lab)
        result = service.grant(lab, strategy, isolation, request, policy)
    if as_json:
        _print_json(dataclasses.asdict(result) | {"outcome": result.outcome.value})
    else:
        _render_grant(result)
    if result.outcome is Outcome.FAILED:
        raise click.exceptions.Exit(1)


def _render_grant(result: GrantResult) -> None:
    detail = {
        Outcome.GRANTED: f"granted (red packet {result.red_packet_id})",
        Outcome.ALREADY_GRANTED: "already granted",
        Outcome.FAILED: f"FAILED ({result.reason})",
    }[result.outcome]
    attempts = f"{result.attempts} attempt" + ("s" if result.attempts != 1 else "")
    click.echo(
        f"order {result.order_id}, campaign {result.campaign_id!r}: {detail}"
        f" — {result.strategy} at {result.isolation}, {attempts}"
        + (f" (errors: {', '.join(result.errors)})" if result.errors else "")
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors become one line on stderr and exit status 2."""
    try:
        status = cli.main(
            args=list(argv) if argv is not None else None, prog_name=PROG, standalone_mode=False
        )
    except LabError as exc:
        click.echo(f"{PROG}: error: {exc.message}", err=True)
        return exc.exit_status
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.UsageError as exc:
        click.echo(f"{PROG}: error: {exc.format_message()}", err=True)
        return 2
    except click.ClickException as exc:
        click.echo(f"{PROG}: error: {exc.format_message()}", err=True)
        return exc.exit_code if exc.exit_code else 1
    except (click.Abort, KeyboardInterrupt):
        click.echo(f"{PROG}: interrupted", err=True)
        return 130
    except BrokenPipeError:
        return 1
    return status if isinstance(status, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
