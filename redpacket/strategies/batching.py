"""Which of a strategy's statements can go to the server together, for every executor.

A step the client need not see before sending the next one (it goes on whatever it
returns: an advisory lock) travels with its successor; a batch ends at the first
step that decides. COMMIT joins the batch of a step that commits whatever it
returns, unless the transaction has another order to grant. Same statements, same
order: batching changes only the round trips (libpq's pipeline on PostgreSQL; MySQL
has no pipeline, and its loop sends one statement at a time).
"""

from __future__ import annotations

from dataclasses import dataclass

from redpacket.strategies.steps import Strategy


@dataclass(frozen=True)
class Batch:
    steps: tuple[int, ...]  # step indexes, in order; the last one decides (or is the last)
    commit: bool  # COMMIT goes with it: its last step commits whatever it returns


def batches(strategy: Strategy) -> tuple[tuple[Batch, ...], tuple[Batch, ...]]:
    """(closing, open): the batch starting at each step, when the transaction ends with
    this order (COMMIT may join) and when another order follows (it never does)."""
    closing, open_ = [], []
    count = len(strategy.steps)
    for start in range(count):
        end = start
        while not strategy.steps[end].decides and end + 1 < count:
            end += 1
        steps = tuple(range(start, end + 1))
        closing.append(Batch(steps, strategy.steps[end].always_commits))
        open_.append(Batch(steps, False))
    return tuple(closing), tuple(open_)
