"""grant: one grant, as the service would make it."""

from __future__ import annotations

import dataclasses

import click

from redpacket import service
from redpacket.cli.app import (
    Options,
    cli,
    isolation_option,
    json_option,
    open_lab,
    print_json,
    retries_option,
    strategy_option,
)
from redpacket.database import migrate as migration
from redpacket.isolation import Isolation
from redpacket.retry import RetryPolicy
from redpacket.service import DEFAULT_CAMPAIGN, GrantRequest, GrantResult
from redpacket.strategies import Outcome, Strategy


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("order_id", type=int)
@strategy_option
@isolation_option
@click.option("--campaign", default=DEFAULT_CAMPAIGN, show_default=True, help="Campaign id.")
@retries_option
@json_option
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
        print_json(dataclasses.asdict(result) | {"outcome": result.outcome.label})
    else:
        click.echo(describe(result))
    if result.outcome not in (Outcome.GRANTED, Outcome.ALREADY_GRANTED):
        raise click.exceptions.Exit(1)


def describe(result: GrantResult) -> str:
    detail = {
        Outcome.GRANTED: f"granted (red packet {result.red_packet_id})",
        Outcome.ALREADY_GRANTED: "already granted",
        Outcome.FAILED: f"FAILED ({result.reason})",
        Outcome.UNKNOWN: "UNKNOWN: the connection was lost while COMMIT was in flight",
        Outcome.INTERRUPTED: "INTERRUPTED",
    }[result.outcome]
    attempts = f"{result.attempts} attempt" + ("s" if result.attempts != 1 else "")
    errors = f" (errors: {', '.join(result.errors)})" if result.errors else ""
    return (
        f"order {result.order_id}, campaign {result.campaign_id!r}: {detail}"
        f" — {result.strategy} at {result.isolation}, {attempts}{errors}"
    )
