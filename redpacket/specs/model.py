"""What a spec file says: setup, sessions with their steps, and permutations.

The shape is isolationtester's (PostgreSQL's ``src/test/isolation``): setup blocks
run in order on a control connection before each permutation, each session has an
optional setup, its steps and an optional teardown, and a permutation lists steps
by name, each with optional blocker annotations.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class BlockerKind(enum.Enum):
    ONCE = "*"  # report the step as waiting the first time, whatever happens
    OTHER_STEP = "step"  # not complete while that step (of another session) runs
    NOTICES = "notices"  # not complete until that step's session sent N more notices


@dataclass(frozen=True)
class Blocker:
    kind: BlockerKind
    step: str | None = None
    notices: int = 0

    def __str__(self) -> str:
        if self.kind is BlockerKind.ONCE:
            return "*"
        if self.kind is BlockerKind.NOTICES:
            return f"{self.step} notices {self.notices}"
        return str(self.step)


@dataclass(frozen=True)
class Step:
    name: str
    sql: str
    session: int  # index into Spec.sessions


@dataclass(frozen=True)
class Session:
    name: str
    steps: tuple[Step, ...]
    setup: str | None = None
    teardown: str | None = None


@dataclass(frozen=True)
class PermutationStep:
    name: str
    blockers: tuple[Blocker, ...] = ()

    def __str__(self) -> str:
        if not self.blockers:
            return self.name
        return f"{self.name}({', '.join(str(b) for b in self.blockers)})"


@dataclass(frozen=True)
class Permutation:
    steps: tuple[PermutationStep, ...]

    def __str__(self) -> str:
        return " ".join(step.name for step in self.steps)


@dataclass(frozen=True)
class Spec:
    name: str
    sessions: tuple[Session, ...]
    setup: tuple[str, ...] = ()
    teardown: str | None = None
    permutations: tuple[Permutation, ...] = ()
    engines: tuple[str, ...] = ()  # engines the spec is written for; () = any
    steps: dict[str, Step] = field(default_factory=dict, compare=False, repr=False)

    def step(self, name: str) -> Step:
        return self.steps[name]
