"""strategies: the fixes the lab knows, what each does and what it is declared to get right."""

from __future__ import annotations

import click

from redpacket.cli.app import Options, cli, console, json_option, print_json
from redpacket.report.strategy_view import (
    RACE_CAPTION,
    EngineAtHand,
    strategies_table,
    strategy_data,
    strategy_detail,
)
from redpacket.strategies import STRATEGIES, get_strategy


def engines_at_hand(options: Options) -> list[EngineAtHand]:
    """The engines of the --database-url given (read off the URL: nothing connects), else
    every engine the lab knows, side by side."""
    from redpacket.database.urls import engine_of, parse_url
    from redpacket.engines import ENGINES

    found = [engine_of(parse_url(url)) for url in options.database_urls]
    chosen = list(dict.fromkeys(found)) or list(ENGINES.values())
    return [(engine.name, engine.label) for engine in chosen]


@cli.command()
@click.argument("name", required=False)
@json_option
@click.pass_obj
def strategies(options: Options, name: str | None, as_json: bool) -> None:
    """List the grant strategies and their verdict per level; NAME shows one, with its SQL.

    Needs no database: the verdicts are the ones the interleaving tests hold each
    strategy to, per engine (those of --database-url's, or of every engine);
    `redpacket matrix` measures them on your server.
    """
    chosen = [get_strategy(name)] if name is not None else list(STRATEGIES.values())
    engines = engines_at_hand(options)
    if as_json:
        data = [strategy_data(strategy, engines) for strategy in chosen]
        print_json(data[0] if name is not None else data)
    elif name is not None:
        console().print(strategy_detail(chosen[0], engines))
    else:
        caption = f"{RACE_CAPTION}; `redpacket strategies NAME` shows one, with its SQL"
        console().print(strategies_table(chosen, engines, caption))
