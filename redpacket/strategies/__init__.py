"""The registry of grant strategies: one module each, listed here explicitly.

A new strategy is one new module with a ``STRATEGY`` and one line below. A user's
own strategy is a file with a ``STRATEGY``, named by its path where a name goes.
"""

from __future__ import annotations

from redpacket.errors import LabError
from redpacket.strategies import (
    advisory,
    conditional_update,
    lock_check,
    lock_first,
    naive,
    on_conflict,
    optimistic,
    seed,
    unique_catch,
)
from redpacket.strategies.ending import Ending, Outcome
from redpacket.strategies.files import load_strategy_file, looks_like_file
from redpacket.strategies.steps import (
    NEXT,
    End,
    Expected,
    Go,
    Race,
    Role,
    Step,
    Strategy,
    infer_role,
)
from redpacket.strategies.walk import Walk, closes_with_commit

_MODULES = (advisory, conditional_update, lock_check, lock_first, naive, on_conflict, optimistic,
            seed, unique_catch)  # fmt: skip
STRATEGIES: dict[str, Strategy] = dict(
    sorted((module.STRATEGY.name, module.STRATEGY) for module in _MODULES)
)
STRATEGY_NAMES = tuple(STRATEGIES)


def get_strategy(name: str) -> Strategy:
    """A built-in strategy by name, or the one a user's ``.py`` file defines."""
    if looks_like_file(name):
        return load_strategy_file(name, reserved=frozenset(STRATEGIES))
    try:
        return STRATEGIES[name.strip().lower().replace("-", "_")]
    except KeyError:
        raise LabError(
            f"unknown strategy {name!r}; choose one of: {', '.join(STRATEGY_NAMES)},"
            " or give the path of a .py file that defines STRATEGY"
        ) from None


__all__ = [
    "NEXT", "STRATEGIES", "STRATEGY_NAMES", "End", "Ending", "Expected", "Go", "Outcome", "Race",
    "Role", "Step", "Strategy", "Walk", "closes_with_commit", "get_strategy", "infer_role",
]  # fmt: skip
