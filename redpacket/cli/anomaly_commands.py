"""anomalies: the classic anomalies, each a spec file, at every isolation level."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from redpacket.cli.app import (
    Options,
    check_html,
    cli,
    console,
    html_option,
    isolation_list,
    json_option,
    open_labs,
    print_json,
    progress_bar,
    split_names,
)
from redpacket.isolation import ISOLATION_NAMES
from redpacket.specs.anomalies import Cell, anomaly_table
from redpacket.specs.catalog import ANOMALIES, ANOMALY_CODES, anomaly_named


@cli.command()
@click.option(
    "--isolation",
    "levels",
    multiple=True,
    help=f"Comma-separated levels ({', '.join(ISOLATION_NAMES)}); default: all three.",
)
@click.option(
    "--only",
    multiple=True,
    help=f"Comma-separated anomalies ({', '.join(ANOMALY_CODES)}); default: all.",
)
@click.option("--no-red-packet", is_flag=True, help="Leave out the red-packet row.")
@json_option
@html_option
@click.pass_obj
def anomalies(
    options: Options,
    levels: Sequence[str],
    only: Sequence[str],
    no_red_packet: bool,
    as_json: bool,
    html_path: Path | None,
) -> None:
    """Run the classic anomalies (Hermitage's) at every level: possible, or prevented and how.

    One table per --database-url: the same spec files on PostgreSQL and on
    MySQL/MariaDB give different answers at the same level name.
    """
    check_html(html_path, as_json)
    chosen = [anomaly_named(code) for code in split_names(only)] or list(ANOMALIES)
    picked = isolation_list(levels)
    cells: list[Cell] = []
    with open_labs(options) as labs, progress_bar() as bar:
        total = len(labs) * len(picked) * (len(chosen) + (0 if no_red_packet else 1))
        task = bar.add_task("anomalies", total=total)
        for lab in labs:
            cells += anomaly_table(
                lab, chosen, picked, red_packet=not no_red_packet,
                on_cell=lambda _cell: bar.advance(task),
            )  # fmt: skip
    if as_json:
        print_json([cell.to_json() for cell in cells])
        return
    from redpacket.cli.show import Show

    show = Show(console(), "redpacket anomalies", html_path)
    show.anomalies(cells)
    show.save()
