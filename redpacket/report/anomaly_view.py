"""The anomaly table: a row per anomaly (and the red-packet race), a column per level.

One table per server, since the point is the difference between engines: the same
spec, the same level name, another answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from redpacket.specs.anomalies import RED_PACKET, RED_PACKET_ANOMALY, Cell, Outcome
from redpacket.specs.catalog import ANOMALIES

ANOMALY_CAPTION = (
    "possible: the run showed the anomaly · prevented, and how: blocked (a wait the server"
    " reported), a serialization failure or deadlock (the server's code), or not seen (the"
    " read simply did not see the other's write)"
)
TITLES = {anomaly.code: anomaly.title for anomaly in ANOMALIES} | {RED_PACKET: RED_PACKET_ANOMALY}


def anomaly_grid(cells: Sequence[Cell]) -> tuple[str, list[str], list[list[str]]]:
    """(title, header, rows) for the cells of one server."""
    levels = list(dict.fromkeys(cell.level for cell in cells))
    names = list(dict.fromkeys(cell.anomaly for cell in cells))
    by_key = {(cell.anomaly, cell.level): cell for cell in cells}
    header = ["anomaly", "", *(level.value for level in levels)]
    rows = [
        [name, TITLES.get(name, ""),
         *(by_key[(name, level)].shown() if (name, level) in by_key else "" for level in levels)]
        for name in names
    ]  # fmt: skip
    title = f"anomalies on {cells[0].server}" if cells else "anomalies"
    return title, header, rows


def by_server(cells: Sequence[Cell]) -> list[list[Cell]]:
    servers = list(dict.fromkeys(cell.server for cell in cells))
    return [[cell for cell in cells if cell.server == server] for server in servers]


def anomaly_table(cells: Sequence[Cell]) -> Table:
    title, header, rows = anomaly_grid(cells)
    table = Table(title=title, caption=ANOMALY_CAPTION, title_justify="left")
    for name in header:
        table.add_column(name)
    for row in rows:
        table.add_row(*(Text(value, style=_style(value)) for value in row))
    return table


def _style(value: str) -> str:
    if value == Outcome.POSSIBLE.value:
        return "bold red"
    return "green" if value.startswith(Outcome.PREVENTED.value) else ""
