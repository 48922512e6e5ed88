"""The strategies as people read them: what each does, on which schema, what it gets right."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redpacket.database.names import Schema
from redpacket.isolation import Isolation
from redpacket.strategies import Race, Strategy

if TYPE_CHECKING:  # ``strategies --json`` prints no table: Rich loads for the tables only
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

RACE_STYLE = {
    Race.CORRECT: "green",
    Race.CORRECT_WITH_RETRIES: "yellow",
    Race.DUPLICATE: "bold red",
}


def strategy_data(strategy: Strategy) -> dict[str, Any]:
    """One strategy as JSON-ready data: the same facts the table shows, and its statements."""
    return {
        "name": strategy.name,
        "summary": strategy.summary,
        "schema": Schema.for_revision(strategy.requires_revision).value,
        "requires_revision": strategy.requires_revision,
        "file": strategy.origin or None,
        "steps": [{"name": step.name, "sql": step.sql} for step in strategy.steps],
        "verdicts": {
            level.value: {"race": expected.race.value, "note": expected.note}
            for level, expected in strategy.verdicts.items()
        },
    }


def _verdict(strategy: Strategy, level: Isolation) -> Text:
    from rich.text import Text

    expected = strategy.verdicts[level]
    text = Text(expected.race.value, style=RACE_STYLE[expected.race])
    if expected.note:
        text.append(f"\n{expected.note}", style="dim")
    return text


RACE_CAPTION = "what two racing grants for one order end with, per isolation level"


def strategies_table(strategies: Sequence[Strategy], caption: str = RACE_CAPTION) -> Table:
    from rich.table import Table

    table = Table(title="grant strategies", caption=caption, show_lines=True)
    table.add_column("strategy", style="bold", no_wrap=True)
    table.add_column("what it does")
    table.add_column("schema", no_wrap=True)
    for level in Isolation:
        table.add_column(level.value)
    for strategy in strategies:
        schema = Schema.for_revision(strategy.requires_revision).value
        verdicts = [_verdict(strategy, level) for level in Isolation]
        table.add_row(strategy.name, strategy.summary, schema, *verdicts)
    return table


def strategy_detail(strategy: Strategy) -> Group:
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table

    steps = Table(title=f"{strategy.name}: one transaction, step by step", show_lines=True)
    steps.add_column("#", justify="right")
    steps.add_column("step", style="bold", no_wrap=True)
    steps.add_column("SQL")
    for number, step in enumerate(strategy.steps, start=1):
        steps.add_row(str(number), step.name, step.sql)
    schema = Schema.for_revision(strategy.requires_revision).value
    doc = strategy.doc.strip() or strategy.summary
    if strategy.origin:
        doc += f"\n\n(from {strategy.origin})"
    return Group(
        Panel(doc, title=f"{strategy.name} (schema {schema})", title_align="left"),
        steps,
        strategies_table([strategy], caption=""),
    )
