"""Run a spec file in the lab's spec database and keep what happened."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redpacket.errors import LabError
from redpacket.specs import output
from redpacket.specs.events import (
    Event,
    Failure,
    Notice,
    Notify,
    PermutationStarted,
    Problem,
    SendFailed,
    SetupResult,
    SpecParsed,
    StepCanceled,
    StepCompleted,
    StepResult,
    StepWaiting,
    Table,
)
from redpacket.specs.model import BlockerKind, Permutation, Spec
from redpacket.specs.runner import Runner, SpecAborted

if TYPE_CHECKING:
    from redpacket.database.lab import Lab


@dataclass
class SpecRun:
    spec: Spec
    server: str  # "PostgreSQL 15.8"
    engine: str
    events: list[Event] = field(default_factory=list)
    aborted: str | None = None  # why the run stopped early, as isolationtester says it
    seconds: float = 0.0

    def text(self, *, problems: bool = True) -> str:
        return output.text(self.events, problems=problems)

    def to_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec.name,
            "server": self.server,
            "engine": self.engine,
            "aborted": self.aborted,
            "seconds": round(self.seconds, 3),
            "permutations": sum(isinstance(e, PermutationStarted) for e in self.events),
            "events": [event_json(event) for event in self.events],
        }


def event_json(event: Event) -> dict[str, Any]:
    kind = {
        SpecParsed: "parsed", PermutationStarted: "permutation", SetupResult: "setup_result",
        StepWaiting: "waiting", StepCompleted: "completed", StepResult: "result",
        Notice: "notice", Notify: "notify", StepCanceled: "canceled", SendFailed: "send_failed",
        Problem: "problem",
    }[type(event)]  # fmt: skip
    data: dict[str, Any] = {"event": kind}
    for name, value in vars(event).items():
        if isinstance(value, Table):
            data["table"] = {"columns": list(value.columns), "rows": [list(r) for r in value.rows]}
        elif isinstance(value, Failure):
            data["error"] = vars(value)
        else:
            data[name] = list(value) if isinstance(value, tuple) else value
    return data


def engine_problem(spec: Spec, engine: Any) -> str | None:
    """Why ``spec`` cannot run on ``engine`` (its '# redpacket: engines' line), or None."""
    if spec.engines and not {engine.name, *engine.schemes} & set(spec.engines):
        return f"written for {', '.join(spec.engines)}, not {engine.label}"
    return None


def check_engine(spec: Spec, engine: Any) -> None:
    problem = engine_problem(spec, engine)
    if problem is not None:
        raise LabError(f"spec {spec.name!r} is {problem} (its '# redpacket: engines' line)")


def run_spec(
    lab: Lab,
    spec: Spec,
    permutations: Sequence[Permutation] | None = None,
    on_event: Callable[[Event], None] | None = None,
    *,
    max_wait: float | None = None,
    defer_waiting: bool = False,
) -> SpecRun:
    """Run ``spec`` (its permutations, or those given) in the lab's spec database."""
    check_engine(spec, lab.engine)
    url = lab.spec_url()
    server = lab.engine.spec_server(url)
    try:
        if not server.has_notices and any(
            blocker.kind is BlockerKind.NOTICES
            for permutation in (permutations or spec.permutations)
            for pstep in permutation.steps
            for blocker in pstep.blockers
        ):
            raise LabError(
                f"spec {spec.name!r} waits for notices, which {lab.engine.label} does not send"
            )
        version = server.version()
        run = SpecRun(spec, lab.engine.server_label(version), lab.engine.name)

        def emit(event: Event) -> None:
            run.events.append(event)
            if on_event is not None:
                on_event(event)

        started = time.perf_counter()
        runner = Runner(spec, server, emit, max_wait=max_wait, defer_waiting=defer_waiting)
        try:
            runner.run(list(permutations) if permutations is not None else None)
        except SpecAborted as stop:
            run.aborted = str(stop)
        finally:
            runner.close()
        run.seconds = time.perf_counter() - started
        return run
    finally:
        server.close()


__all__ = ["SpecRun", "run_spec"]
