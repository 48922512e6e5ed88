from __future__ import annotations

import dataclasses

import pytest

from redpacket.errors import LabError
from redpacket.isolation import Isolation
from redpacket.strategies import STRATEGIES, End, Strategy, Walk, get_strategy
from redpacket.strategies.steps import Go

EXPECTED = [
    "advisory",
    "conditional_update",
    "lock_check",
    "lock_first",
    "naive",
    "on_conflict",
    "optimistic",
    "seed",
    "unique_catch",
]


def test_registry_is_explicit_and_sorted() -> None:
    assert list(STRATEGIES) == EXPECTED


def test_unknown_strategy_lists_the_valid_ones() -> None:
    with pytest.raises(LabError, match="choose one of: advisory, conditional_update"):
        get_strategy("pessimistic")


@pytest.mark.parametrize("strategy", STRATEGIES.values(), ids=list(STRATEGIES))
def test_each_strategy_is_documented_per_level_and_well_formed(strategy: Strategy) -> None:
    assert set(strategy.verdicts) == set(Isolation)
    for level in Isolation:
        assert level.value in strategy.doc.lower().replace(" ", "-"), (
            f"{strategy.name} docstring omits {level.value}"
        )
    for engine in ("postgresql", "mysql"):  # every built-in runs on both, verdicts declared
        assert set(strategy.for_engine(engine).verdicts) == set(Isolation)
    assert "MySQL" in strategy.doc
    assert strategy.problems() == []
    assert strategy.origin == ""  # built in, not loaded from a file


def test_constrained_strategies_need_revision_2() -> None:
    needing = {name for name, s in STRATEGIES.items() if s.requires_revision == "0002"}
    assert needing == {"on_conflict", "unique_catch"}


def test_walk_follows_the_seed_to_a_duplicate_check() -> None:
    walk = Walk(STRATEGIES["seed"], {"order_id": 1, "campaign_id": "c", "amount": 1})
    assert [walk.step.name] == ["select_order"]
    assert walk.row((1,)) is None
    assert walk.step.name == "lock_order"
    assert walk.row((1,)) is None
    assert walk.step.name == "find_grant"
    assert walk.row((7,)) is End.ALREADY_GRANTED


def test_walk_jumps_and_captures() -> None:
    walk = Walk(STRATEGIES["conditional_update"], {"order_id": 1})
    assert walk.row(None) is None
    assert walk.step.name == "select_order"
    assert walk.row(None) is End.UNKNOWN_ORDER
    optimistic = Walk(STRATEGIES["optimistic"], {"order_id": 1})
    optimistic.row((3,))
    assert optimistic.context["seen_version"] == 3


def test_walk_handles_only_declared_errors() -> None:
    walk = Walk(STRATEGIES["unique_catch"], {})
    assert walk.error("23505") is End.ALREADY_GRANTED
    assert Walk(STRATEGIES["unique_catch"], {}).error("23503") is None
    assert Walk(STRATEGIES["naive"], {}).error("23505") is None


def test_problems_are_found_before_a_strategy_runs() -> None:
    seed = STRATEGIES["seed"]
    lock = seed.steps[1]
    jumps = dataclasses.replace(lock, on_row=Go("nowhere"))
    broken = dataclasses.replace(
        seed,
        name="my fix",
        steps=(seed.steps[0], jumps, seed.steps[0]),
        verdicts={Isolation.SERIALIZABLE: seed.verdicts[Isolation.SERIALIZABLE]},
    )
    assert broken.problems() == [
        "its name 'my fix' must be a Python identifier",
        "step names repeat: select_order, lock_order, select_order",
        "verdicts omit read-committed, repeatable-read",
        "step lock_order goes to 'nowhere', which is no step",
    ]
    assert dataclasses.replace(seed, steps=()).problems() == ["it has no steps"]
