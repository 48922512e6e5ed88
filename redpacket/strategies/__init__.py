"""The registry of grant strategies: one module each, listed here explicitly.

A new strategy is one new module with a ``STRATEGY`` and one line below.
"""

from __future__ import annotations

from redpacket.errors import LabError
from redpacket.strategies import (
    advisory,
    conditional_update,
    lock_first,
    naive,
    on_conflict,
    optimistic,
    seed,
    unique_catch,
)
from redpacket.strategies.steps import End, Expected, Race, Step, Strategy, Walk

_MODULES = (advisory, conditional_update, lock_first, naive, on_conflict, optimistic, seed,
            unique_catch)  # fmt: skip
STRATEGIES: dict[str, Strategy] = dict(
    sorted((module.STRATEGY.name, module.STRATEGY) for module in _MODULES)
)
STRATEGY_NAMES = tuple(STRATEGIES)


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name.strip().lower().replace("-", "_")]
    except KeyError:
        raise LabError(
            f"unknown strategy {name!r}; choose one of: {', '.join(STRATEGY_NAMES)}"
        ) from None


__all__ = [
    "STRATEGIES", "STRATEGY_NAMES", "End", "Expected", "Race", "Step", "Strategy", "Walk",
    "get_strategy",
]  # fmt: skip
