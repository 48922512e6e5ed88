"""Running figures while a stress run goes on, for a progress bar."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Live:
    """Counts so far, and grants per order, so duplicates show up while they happen."""

    attempts: int = 0
    granted: int = 0
    failed: int = 0
    _grants: Counter[int] = field(default_factory=Counter)
    duplicates: int = 0

    def add_grants(self, order_ids: list[int]) -> None:
        for order_id in order_ids:
            self._grants[order_id] += 1
            if self._grants[order_id] == 2:
                self.duplicates += 1
