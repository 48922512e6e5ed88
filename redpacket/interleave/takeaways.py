"""What a matrix of runs teaches, level by level, composed from the runs themselves.

For each level: the strategies that held, those that held once a refused or lost
attempt was retried, and those that duplicated, each group with the causes its
runs' explanations found. Nothing here is known in advance about a strategy: a
different server that behaves differently gets different takeaways.
"""

from __future__ import annotations

from collections.abc import Sequence

from redpacket.interleave.explain import explain
from redpacket.interleave.timeline import Run, Verdict


def takeaways(without_retries: Sequence[Run], with_retries: Sequence[Run]) -> list[str]:
    """One line per server and level; ``with_retries`` are the same cells, retried."""
    servers = list(dict.fromkeys(run.server for run in without_retries))
    lines = []
    for server in servers:
        mine = [r for r in without_retries if r.server == server]
        again = [r for r in with_retries if r.server == server]
        lines += [
            f"{server}, {line}" if len(servers) > 1 else line for line in _per_level(mine, again)
        ]
    return lines


def _per_level(without_retries: Sequence[Run], with_retries: Sequence[Run]) -> list[str]:
    levels = list(dict.fromkeys(run.isolation for run in without_retries))
    lines = []
    for level in levels:
        groups: dict[str, dict[str, list[str]]] = {"holds": {}, "holds once retried": {},
                                                   "duplicates": {}}  # fmt: skip
        strategies = list(
            dict.fromkeys(r.strategy for r in without_retries if r.isolation == level)
        )
        for strategy in strategies:
            once = [r for r in without_retries if (r.strategy, r.isolation) == (strategy, level)]
            again = [r for r in with_retries if (r.strategy, r.isolation) == (strategy, level)]
            if any(r.verdict is Verdict.DUPLICATE for r in (*once, *again)):
                group, telling = "duplicates", [r for r in again if r.verdict is Verdict.DUPLICATE]
            elif all(r.verdict is Verdict.CORRECT for r in once):
                group, telling = "holds", once
            elif all(r.verdict is Verdict.CORRECT for r in again):
                group, telling = "holds once retried", once
            else:
                continue  # stuck or still refused after retries: no lesson to draw
            causes = [c for r in telling if (c := explain(r).cause)]
            groups[group][strategy] = list(dict.fromkeys(causes))
        parts = []
        for group, members in groups.items():
            if not members:
                continue
            named = ", ".join(
                f"{name} ({'; '.join(causes)})" if causes else name
                for name, causes in members.items()
            )
            parts.append(f"{group}: {named}")
        lines.append(f"{level} — " + ". ".join(parts) + ".")
    return lines
