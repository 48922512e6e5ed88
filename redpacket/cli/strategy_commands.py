"""strategies: the fixes the lab knows, what each does and what it is declared to get right."""

from __future__ import annotations

import click

from redpacket.cli.app import cli, console, json_option, print_json
from redpacket.report.strategy_view import (
    RACE_CAPTION,
    strategies_table,
    strategy_data,
    strategy_detail,
)
from redpacket.strategies import STRATEGIES, get_strategy


@cli.command()
@click.argument("name", required=False)
@json_option
def strategies(name: str | None, as_json: bool) -> None:
    """List the grant strategies and their verdict per level; NAME shows one, with its SQL.

    Needs no database: the verdicts are the ones the interleaving tests hold each
    strategy to; `redpacket matrix` measures them on your server.
    """
    chosen = [get_strategy(name)] if name is not None else list(STRATEGIES.values())
    if as_json:
        data = [strategy_data(strategy) for strategy in chosen]
        print_json(data[0] if name is not None else data)
    elif name is not None:
        console().print(strategy_detail(chosen[0]))
    else:
        caption = f"{RACE_CAPTION}; `redpacket strategies NAME` shows one, with its SQL"
        console().print(strategies_table(chosen, caption))
