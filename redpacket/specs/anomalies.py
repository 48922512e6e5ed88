"""Each anomaly at each isolation level, on a real server: possible, or prevented and how.

A cell is the verdict of one spec run. The witness (``catalog``) says whether the
anomaly happened; if it did not, the run's own events say what stopped it: the
first error the server sent (the engine names it: serialization failure,
deadlock), else a step the server reported waiting ("blocked"), else nothing at all
happened to the reader: it simply did not see the other's write ("not seen").

The red-packet race is one more row: the seed strategy at the t2-waits schedule,
run as ``explain`` runs it (on the same spec runner); a duplicate grant is the anomaly (G2, a write
skew by predicate: both checks find no grant, both insert).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from redpacket.isolation import Isolation
from redpacket.specs.catalog import ANOMALIES, Anomaly, Observed
from redpacket.specs.events import Event, Failure, StepResult, StepWaiting
from redpacket.specs.model import Spec
from redpacket.specs.run import SpecRun, run_spec

if TYPE_CHECKING:
    from redpacket.database.lab import Lab

RED_PACKET = "red packet"
RED_PACKET_ANOMALY = "G2 (seed code: check, then insert)"


class Outcome(enum.Enum):
    POSSIBLE = "possible"
    PREVENTED = "prevented"


@dataclass(frozen=True)
class Cell:
    anomaly: str
    level: Isolation
    engine: str  # engine name
    server: str
    outcome: Outcome
    how: str  # "blocked", "not seen", "serialization failure 40001", "deadlock 1213", ...
    error: str | None = None  # the server's message, when an error prevented it

    def shown(self) -> str:
        return "possible" if self.outcome is Outcome.POSSIBLE else f"prevented: {self.how}"

    def to_json(self) -> dict[str, Any]:
        return {
            "anomaly": self.anomaly, "level": self.level.value, "engine": self.engine,
            "server": self.server, "outcome": self.outcome.value, "how": self.how,
            "error": self.error,
        }  # fmt: skip


def at_level(spec: Spec, begin: Sequence[str]) -> Spec:
    """The spec with each session's ``BEGIN;`` replaced by the engine's way of opening a
    transaction at the level (PostgreSQL's BEGIN ISOLATION LEVEL; MySQL's SET
    TRANSACTION then START TRANSACTION)."""
    opening = "; ".join(begin) + ";"
    sessions = tuple(
        replace(s, setup=opening) if (s.setup or "").strip().upper() == "BEGIN;" else s
        for s in spec.sessions
    )
    return Spec(spec.name, sessions, spec.setup, spec.teardown, spec.permutations,
                spec.engines, dict(spec.steps))  # fmt: skip


def error_kind(faults: Any, failure: Failure) -> str:
    """The engine's name for an error: its fault classes, else the code."""
    code = failure.code or failure.sqlstate or "?"
    kinds = (("serialization failure", faults.serialization), ("deadlock", faults.deadlock),
             ("lock timeout", faults.lock_timeout))  # fmt: skip
    for kind, codes in kinds:
        if code in codes:
            return f"{kind} {code}"
    return f"error {code}"


def judge(
    anomaly: Anomaly, events: Sequence[Event], faults: Any
) -> tuple[Outcome, str, str | None]:
    """(outcome, how, the server's message): the witness decides; ``prevention`` says how."""
    results = [e for e in events if isinstance(e, StepResult)]
    if anomaly.witness(Observed.of(results)):
        return Outcome.POSSIBLE, "", None
    return Outcome.PREVENTED, *prevention(events, faults)


def prevention(events: Sequence[Event], faults: Any) -> tuple[str, str | None]:
    """(how, the server's message) for a run in which the anomaly did not happen: the
    waits and errors of the run in the order they happened; with neither, by not seeing."""
    happened: list[str] = []
    message = None
    for event in events:
        if isinstance(event, StepWaiting) and not event.forced:
            mechanism = "blocked"
        elif isinstance(event, StepResult) and isinstance(event.result, Failure):
            mechanism = error_kind(faults, event.result)
            message = message or event.result.message
        else:
            continue
        if mechanism not in happened and not mechanism.startswith("error"):
            happened.append(mechanism)
    return ", then ".join(happened) or "not seen", message


def run_anomaly(lab: Lab, anomaly: Anomaly, level: Isolation) -> tuple[Cell, SpecRun]:
    spec = at_level(anomaly.spec, lab.engine.begin(level))
    run = run_spec(lab, spec, max_wait=30, defer_waiting=True)
    outcome, how, error = judge(anomaly, run.events, lab.engine.faults)
    if run.aborted:
        outcome, how, error = Outcome.PREVENTED, "stuck", run.aborted
    cell = Cell(anomaly.code, level, lab.engine.name, run.server, outcome, how, error)
    return cell, run


def red_packet_cell(lab: Lab, level: Isolation) -> Cell:
    """The seed strategy at t2-waits, as ``explain`` runs it: a spec the runner generates
    as it goes; a duplicate grant is the witness, and the run's spec events say how it
    was prevented, as for every other row."""
    from redpacket.interleave.run import run_one
    from redpacket.interleave.timeline import Verdict
    from redpacket.strategies import get_strategy

    run = run_one(lab, get_strategy("seed"), level, "t2-waits", 0)
    if run.verdict is Verdict.DUPLICATE:
        return Cell(RED_PACKET, level, run.engine, run.server, Outcome.POSSIBLE, "")
    how, error = prevention(run.spec_events, lab.engine.faults)
    if run.stuck:
        how, error = "stuck", run.stuck
    return Cell(RED_PACKET, level, run.engine, run.server, Outcome.PREVENTED, how, error)


def anomaly_table(
    lab: Lab,
    anomalies: Sequence[Anomaly] = ANOMALIES,
    levels: Sequence[Isolation] = tuple(Isolation),
    *,
    red_packet: bool = True,
    on_cell: Callable[[Cell], None] | None = None,
) -> list[Cell]:
    """Every anomaly at every level on ``lab``'s server (and the red-packet row)."""
    cells = []
    for anomaly in anomalies:
        for level in levels:
            cell, _ = run_anomaly(lab, anomaly, level)
            cells.append(cell)
            if on_cell is not None:
                on_cell(cell)
    if red_packet:
        from redpacket.database import migrate

        migrate.prepare(lab)
        for level in levels:
            cell = red_packet_cell(lab, level)
            cells.append(cell)
            if on_cell is not None:
                on_cell(cell)
    return cells
