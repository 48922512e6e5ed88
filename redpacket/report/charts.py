"""PNG charts of a comparison: what each fix costs, and what each fix gets wrong."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from redpacket.stress.result import StressResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes

Metric = Callable[[StressResult], float]


def _throughput(result: StressResult) -> float:
    return result.throughput_per_s


def _p99(result: StressResult) -> float:
    return result.tally.latency.percentile_ms(0.99)


def _duplicates(result: StressResult) -> float:
    return float(result.check.duplicate_orders) if result.check else 0.0


class _Grid:
    """Results of one (workload, workers) group, as strategies x isolation levels."""

    def __init__(self, results: Sequence[StressResult]) -> None:
        self.strategies = list(dict.fromkeys(r.plan.strategy.name for r in results))
        self.levels = list(dict.fromkeys(r.plan.isolation.value for r in results))
        self.cells = {(r.plan.strategy.name, r.plan.isolation.value): r for r in results}

    def bars(self, ax: Axes, metric: Metric, ylabel: str, title: str) -> None:
        width = 0.8 / max(1, len(self.levels))
        for offset, level in enumerate(self.levels):
            xs = [i + offset * width - 0.4 + width / 2 for i in range(len(self.strategies))]
            values = [
                metric(self.cells[(s, level)]) if (s, level) in self.cells else 0.0
                for s in self.strategies
            ]
            ax.bar(xs, values, width, label=level)
        ax.set_xticks(list(range(len(self.strategies))), self.strategies, rotation=30, ha="right")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize="small")
        ax.grid(axis="y", alpha=0.3)


def write_charts(results: Sequence[StressResult], out: Path) -> list[Path]:
    """One pair of charts per (workload, workers): cost, and duplicates. Returns the files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[tuple[str, int], list[StressResult]] = {}
    for result in results:
        groups.setdefault((result.plan.workload.value, result.plan.workers), []).append(result)
    written = []
    for (workload, workers), group in groups.items():
        grid = _Grid(group)
        subtitle = f"{workload} workload, {workers} workers"
        figure, (top, bottom) = plt.subplots(2, 1, figsize=(10, 8), constrained_layout=True)
        grid.bars(top, _throughput, "grants per second", f"Throughput ({subtitle})")
        grid.bars(bottom, _p99, "p99 latency (ms)", f"p99 latency ({subtitle})")
        cost = out / f"throughput_p99_{workload}_{workers}w.png"
        figure.savefig(cost, dpi=110)
        plt.close(figure)
        figure, axis = plt.subplots(figsize=(10, 4.5), constrained_layout=True)
        grid.bars(axis, _duplicates, "orders with duplicate grants", f"Duplicates ({subtitle})")
        duplicates = out / f"duplicates_{workload}_{workers}w.png"
        figure.savefig(duplicates, dpi=110)
        plt.close(figure)
        written += [cost, duplicates]
    return written
