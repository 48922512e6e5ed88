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


class Grid:
    """Results of one (workload, workers) group, as strategies x isolation levels."""

    def __init__(self, results: Sequence[StressResult]) -> None:
        self.strategies = list(dict.fromkeys(r.plan.strategy.name for r in results))
        self.levels = list(dict.fromkeys(r.plan.isolation.value for r in results))
        self.cells = {(r.plan.strategy.name, r.plan.isolation.value): r for r in results}

    def bars(
        self, ax: Axes, metric: Metric, ylabel: str, title: str, mark_wrong: bool = False
    ) -> None:
        """Grouped bars; with ``mark_wrong``, runs that left duplicates or missing grants are
        hatched, so a fast but wrong strategy does not read as a cheap fix."""
        from matplotlib.patches import Patch

        width = 0.8 / max(1, len(self.levels))
        any_wrong = False
        handles: list[Patch] = []
        for offset, level in enumerate(self.levels):
            xs = [i + offset * width - 0.4 + width / 2 for i in range(len(self.strategies))]
            found = [self.cells.get((s, level)) for s in self.strategies]
            values = [metric(r) if r is not None else 0.0 for r in found]
            container = ax.bar(xs, values, width, label=level)
            handles.append(Patch(facecolor=container.patches[0].get_facecolor(), label=level))
            if not mark_wrong:
                continue
            for bar, result in zip(container.patches, found, strict=True):
                if result is not None and not result.correct:
                    bar.set_hatch("///")
                    bar.set_edgecolor("black")
                    bar.set_alpha(0.55)
                    any_wrong = True
        ax.set_xticks(list(range(len(self.strategies))), self.strategies, rotation=30, ha="right")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        if any_wrong:
            wrong = "wrong: duplicates or missing grants"
            handles.append(Patch(facecolor="white", edgecolor="black", hatch="///", label=wrong))
        ax.legend(handles=handles, fontsize="small")
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
        grid = Grid(group)
        subtitle = f"{workload} workload, {workers} workers"
        figure, (top, bottom) = plt.subplots(2, 1, figsize=(10, 8), constrained_layout=True)
        grid.bars(top, _throughput, "grant requests per second", f"Throughput ({subtitle})", True)
        grid.bars(bottom, _p99, "p99 latency (ms)", f"p99 latency ({subtitle})", True)
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
