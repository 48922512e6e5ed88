"""What a stress run is asked to do, checked once, shared by every engine and process."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from redpacket.errors import LabError
from redpacket.isolation import Isolation
from redpacket.service import DEFAULT_AMOUNT, DEFAULT_CAMPAIGN
from redpacket.strategies import Strategy


class Workload(enum.Enum):
    HOT = "hot"  # every worker grants the same order at once, order after order
    UNIFORM = "uniform"  # each worker grants random orders: production traffic, no race
    CROSSED = "crossed"  # pairs of orders granted in one transaction, half in each order

    @classmethod
    def parse(cls, name: str) -> Workload:
        try:
            return cls(name.strip().lower())
        except ValueError:
            valid = ", ".join(w.value for w in cls)
            raise LabError(f"unknown workload {name!r}; choose one of: {valid}") from None

    @property
    def hot(self) -> bool:
        """Workers are released together, order after order (or pair after pair)."""
        return self is not Workload.UNIFORM


class Engine(enum.Enum):
    LOOP = "loop"  # one event loop per process over non-blocking libpq connections
    SERVICE = "service"  # one thread per worker calling the SQLAlchemy grant service

    @classmethod
    def parse(cls, name: str) -> Engine:
        try:
            return cls(name.strip().lower())
        except ValueError:
            raise LabError(f"unknown engine {name!r}; choose one of: loop, service") from None


MAX_WORKERS = 512


@dataclass(frozen=True)
class StressPlan:
    strategy: Strategy
    isolation: Isolation
    workers: int = 16
    orders: int = 100
    workload: Workload = Workload.HOT
    processes: int = 1
    retries: int = 0
    duration_s: float | None = None
    attempts: int | None = None
    engine: Engine = Engine.LOOP
    campaign_id: str = DEFAULT_CAMPAIGN
    amount: str = str(DEFAULT_AMOUNT)
    seed: int = 1
    kill_rate: float | None = None  # backends terminated per second, mid-transaction
    lock_timeout_ms: int | None = None
    statement_timeout_ms: int | None = None
    deadlock_timeout_ms: int | None = None  # superuser only: how soon deadlocks are detected

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise LabError(f"--workers must be at least 1, got {self.workers}")
        if self.workers > MAX_WORKERS:
            raise LabError(f"--workers must be at most {MAX_WORKERS}, got {self.workers}")
        if self.orders < 1:
            raise LabError(f"--orders must be at least 1, got {self.orders}")
        if self.processes < 1:
            raise LabError(f"--processes must be at least 1, got {self.processes}")
        if self.processes > self.workers:
            raise LabError(
                f"--processes ({self.processes}) cannot exceed --workers ({self.workers})"
            )
        if self.retries < 0:
            raise LabError(f"--retries must be 0 or more, got {self.retries}")
        if self.duration_s is not None and self.duration_s <= 0:
            raise LabError(f"--duration must be more than 0 seconds, got {self.duration_s:g}")
        if self.attempts is not None and self.attempts < 1:
            raise LabError(f"--attempts must be at least 1, got {self.attempts}")
        if self.duration_s is not None and self.attempts is not None:
            raise LabError("give --duration or --attempts, not both")
        if self.workload.hot and (self.duration_s is not None or self.attempts is not None):
            raise LabError(
                f"--duration and --attempts are for the uniform workload; the"
                f" {self.workload.value} workload grants each of --orders once per worker"
            )
        if self.engine is Engine.SERVICE and self.processes > 1:
            raise LabError("--engine service runs threads in one process; drop --processes")
        if self.kill_rate is not None and self.kill_rate <= 0:
            raise LabError(
                f"--kill-backends must be more than 0 per second, got {self.kill_rate:g}"
            )
        for name, value in (
            ("--lock-timeout", self.lock_timeout_ms),
            ("--statement-timeout", self.statement_timeout_ms),
            ("--deadlock-timeout", self.deadlock_timeout_ms),
        ):
            if value is not None and value <= 0:
                raise LabError(f"{name} must be more than 0 ms, got {value}")
        faults = self.kill_rate or self.lock_timeout_ms or self.statement_timeout_ms
        if self.engine is Engine.SERVICE and (faults or self.workload is Workload.CROSSED):
            raise LabError("fault injection and the crossed workload need --engine loop")
        if self.workload is Workload.CROSSED and (self.orders < 2 or self.workers < 2):
            raise LabError("the crossed workload needs at least 2 orders and 2 workers")

    @property
    def session_settings(self) -> tuple[tuple[str, str], ...]:
        """Server settings for the workers' sessions, applied once their statements are prepared.

        Set after connection setup, not in the connection string: a 1 ms
        ``statement_timeout`` is a fault for the workload, not a reason for the
        worker's own PREPAREs to fail.
        """
        settings = (
            ("lock_timeout", self.lock_timeout_ms),
            ("statement_timeout", self.statement_timeout_ms),
            ("deadlock_timeout", self.deadlock_timeout_ms),
        )
        return tuple((name, f"{value}ms") for name, value in settings if value)

    @property
    def expected_requests(self) -> int | None:
        """How many grant requests the run will make, when that is known in advance."""
        return self.workers * self.orders if self.workload.hot else self.attempts

    @property
    def label(self) -> str:
        return f"{self.strategy.name}/{self.isolation.value}/{self.workload.value}/{self.workers}w"

    def share(self, process: int) -> tuple[int, int | None]:
        """(workers, attempts) for process number ``process`` of ``processes``."""
        workers = self.workers // self.processes + (process < self.workers % self.processes)
        attempts = None
        if self.attempts is not None:
            attempts = self.attempts // self.processes + (process < self.attempts % self.processes)
        return workers, attempts
