"""The classic anomalies, each a spec file of the lab's own and a witness.

The names and the schedules are Hermitage's (Kleppmann's test suite of Adya's
anomalies, the catalogue people in the field quote per database and level): two
rows, (1, 10) and (2, 20), two or three transactions, one fixed interleaving. Each
spec is plain SQL that PostgreSQL and InnoDB both run; the level is set per session
by the engine. The witness looks at what the run returned (a read's values, the
rows left at the end) and says whether the anomaly happened: the verdict comes from
the data, never from the level's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

from redpacket.specs.events import Failure, StepResult, Table
from redpacket.specs.model import Spec
from redpacket.specs.parser import parse


@dataclass(frozen=True)
class Observed:
    """What a run returned, by step: the tables in order, and whether any step failed."""

    tables: dict[str, list[Table]]
    failed: bool

    def values(self, step: str) -> list[str | None]:
        """The first column of every row the step returned."""
        return [row[0] for table in self.tables.get(step, []) for row in table.rows]

    def rows(self, step: str) -> list[tuple[str | None, ...]]:
        return [row for table in self.tables.get(step, []) for row in table.rows]

    @classmethod
    def of(cls, results: list[StepResult]) -> Observed:
        tables: dict[str, list[Table]] = {}
        for event in results:
            if isinstance(event.result, Table):
                tables.setdefault(event.step, []).append(event.result)
        return cls(tables, any(isinstance(e.result, Failure) for e in results))


@dataclass(frozen=True)
class Anomaly:
    code: str  # Adya's / Hermitage's name
    title: str
    witness: Callable[[Observed], bool]  # True: the anomaly happened in this run

    @property
    def spec(self) -> Spec:
        text = resources.files("redpacket.specs").joinpath(f"anomalies/{self.code.lower()}.spec")
        return parse(text.read_text(encoding="utf-8"), f"{self.code.lower()}.spec")


def _final(seen: Observed) -> list[tuple[str | None, ...]]:
    return seen.rows("check")


ANOMALIES: tuple[Anomaly, ...] = (
    Anomaly("G0", "dirty write",
            lambda s: _final(s) in ([("1", "11"), ("2", "22")], [("1", "12"), ("2", "21")])),
    Anomaly("G1a", "aborted read", lambda s: "101" in s.values("t2_r1") + s.values("t2_r2")),
    Anomaly("G1b", "intermediate read",
            lambda s: "101" in s.values("t2_r1") + s.values("t2_r2")),
    Anomaly("G1c", "circular information flow",
            lambda s: s.values("t1_r") == ["22"] or s.values("t2_r") == ["11"]),
    Anomaly("OTV", "observed transaction vanishes",
            lambda s: s.values("t3_r1") == ["11"]
            and "20" in s.values("t3_r2") + s.values("t3_r3")),
    Anomaly("PMP", "predicate many preceders", lambda s: "3" in s.values("t1_r2")),
    Anomaly("PMP-write", "predicate many preceders, by a write",
            lambda s: not s.failed and any(row[1] == "20" for row in _final(s))),
    Anomaly("P4", "lost update",
            lambda s: not s.failed and _final(s)[:1] == [("1", "11")]),
    Anomaly("G-single", "read skew", lambda s: s.values("t1_r2") == ["18"]),
    Anomaly("G-single-write", "read skew, by a write",
            lambda s: not s.failed and s.values("t1_r") == ["10"] and len(_final(s)) == 2),
    Anomaly("G2-item", "write skew", lambda s: _final(s) == [("1", "11"), ("2", "21")]),
    Anomaly("G2", "anti-dependency cycle by predicate (phantom write skew)",
            lambda s: len(_final(s)) == 4),
)  # fmt: skip
ANOMALY_CODES = tuple(anomaly.code for anomaly in ANOMALIES)


def anomaly_named(code: str) -> Anomaly:
    for anomaly in ANOMALIES:
        if anomaly.code.lower() == code.strip().lower():
            return anomaly
    from redpacket.errors import LabError

    raise LabError(f"unknown anomaly {code!r}; choose from: {', '.join(ANOMALY_CODES)}")
