"""The strategies as people read them: what each does, on which schema, what it gets right."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redpacket.database.names import Schema
from redpacket.errors import LabError
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


EngineAtHand = tuple[str, str]  # (the engine's name, as strategies key it; its label)


def on_engine(strategy: Strategy, engine: EngineAtHand) -> Strategy | None:
    """The strategy as ``engine`` runs it (its SQL, its verdicts); None: it has no SQL there."""
    try:
        return strategy.for_engine(*engine)
    except LabError:
        return None


def strategy_data(strategy: Strategy, engines: Sequence[EngineAtHand]) -> dict[str, Any]:
    """One strategy as JSON-ready data: the same facts the table shows, and its statements.

    ``steps`` and ``verdicts`` are the first engine's (the one at hand, or PostgreSQL);
    ``engines`` has each engine's verdicts, null where the strategy has no SQL for it.
    """
    first = on_engine(strategy, engines[0]) or strategy
    return {
        "name": strategy.name,
        "summary": strategy.summary,
        "schema": Schema.for_revision(strategy.requires_revision).value,
        "requires_revision": strategy.requires_revision,
        "file": strategy.origin or None,
        "engine": engines[0][0],
        "steps": [{"name": step.name, "sql": step.sql} for step in first.steps],
        "verdicts": _verdicts_data(first),
        "engines": {engine[0]: _verdicts_on(strategy, engine) for engine in engines},
    }


def _verdicts_on(strategy: Strategy, engine: EngineAtHand) -> dict[str, dict[str, str]] | None:
    there = on_engine(strategy, engine)
    return None if there is None else _verdicts_data(there)


def _verdicts_data(strategy: Strategy) -> dict[str, dict[str, str]]:
    return {
        level.value: {"race": expected.race.value, "note": expected.note}
        for level, expected in strategy.verdicts.items()
    }


def _verdict(strategy: Strategy, level: Isolation) -> Text:
    from rich.text import Text

    expected = strategy.verdicts[level]
    text = Text(expected.race.value, style=RACE_STYLE[expected.race])
    if expected.note:
        text.append(f"\n{expected.note}", style="dim")
    return text


RACE_CAPTION = "what two racing grants for one order end with, per isolation level"


def strategies_table(
    strategies: Sequence[Strategy], engines: Sequence[EngineAtHand], caption: str = RACE_CAPTION
) -> Table:
    """A row per strategy and engine: the same SQL can end differently on InnoDB."""
    from rich.table import Table
    from rich.text import Text

    labels = " and ".join(label for _name, label in engines)
    table = Table(title=f"grant strategies on {labels}", caption=caption, show_lines=True)
    table.add_column("strategy", style="bold", no_wrap=True)
    table.add_column("what it does")
    table.add_column("schema", no_wrap=True)
    if len(engines) > 1:
        table.add_column("engine")
    for level in Isolation:
        table.add_column(level.value)
    for strategy in strategies:
        schema = Schema.for_revision(strategy.requires_revision).value
        for number, engine in enumerate(engines):
            there = on_engine(strategy, engine)
            first = number == 0
            cells: list[str | Text] = [
                strategy.name if first else "", strategy.summary if first else "",
                schema if first else "",
            ]  # fmt: skip
            cells += [engine[1]] if len(engines) > 1 else []
            if there is None:
                cells += [Text(f"no SQL for {engine[1]}", style="dim")] * len(Isolation)
            else:
                cells += [_verdict(there, level) for level in Isolation]
            table.add_row(*cells, end_section=number == len(engines) - 1)
    return table


def strategy_detail(strategy: Strategy, engines: Sequence[EngineAtHand]) -> Group:
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table

    shown = on_engine(strategy, engines[0]) or strategy
    steps = Table(
        title=f"{strategy.name} on {engines[0][1]}: one transaction, step by step",
        show_lines=True,
    )
    steps.add_column("#", justify="right")
    steps.add_column("step", style="bold", no_wrap=True)
    steps.add_column("SQL")
    for number, step in enumerate(shown.steps, start=1):
        steps.add_row(str(number), step.name, step.sql)
    schema = Schema.for_revision(strategy.requires_revision).value
    doc = strategy.doc.strip() or strategy.summary
    if strategy.origin:
        doc += f"\n\n(from {strategy.origin})"
    return Group(
        Panel(doc, title=f"{strategy.name} (schema {schema})", title_align="left"),
        steps,
        strategies_table([strategy], engines, caption=""),
    )
