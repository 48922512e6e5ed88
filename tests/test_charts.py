"""Charts mark a wrong run, so a fast but wrong strategy never reads as a cheap fix."""

from __future__ import annotations

import pytest

from redpacket.database.lab import Lab
from redpacket.isolation import Isolation
from redpacket.report.charts import Grid
from redpacket.strategies import STRATEGIES
from redpacket.stress.plan import StressPlan
from redpacket.stress.runner import run_stress

pytestmark = pytest.mark.stress
matplotlib = pytest.importorskip("matplotlib", reason="the plots extra is not installed")
matplotlib.use("Agg")


def test_wrong_runs_are_hatched_and_named_in_the_legend(lab: Lab) -> None:
    results = [
        run_stress(lab, StressPlan(STRATEGIES[name], level, workers=4, orders=10))
        for name, level in (
            ("seed", Isolation.REPEATABLE_READ),
            ("on_conflict", Isolation.REPEATABLE_READ),
        )
    ]
    assert [r.correct for r in results] == [False, True]
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots()
    try:
        Grid(results).bars(axis, lambda r: r.throughput_per_s, "per second", "t", mark_wrong=True)
        hatches = [bar.get_hatch() for bar in axis.patches]
        shown = axis.get_legend()
        assert shown is not None
        legend = [text.get_text() for text in shown.get_texts()]
    finally:
        plt.close(figure)
    assert hatches == ["///", None]  # seed, then on_conflict, in the one level's colour
    assert legend == ["repeatable-read", "wrong: duplicates or missing grants"]
