"""What every engine hands back, and how a loop engine is driven to its end.

An engine's run ends one of three ways: it finishes, the user presses Ctrl-C, or
the server goes away. Each still yields the figures gathered so far.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from redpacket.stress.ctrl_c import CTRL_C
from redpacket.stress.fast import FastEngine
from redpacket.stress.plan import StressPlan
from redpacket.stress.statements import ServerGone, StatementRefused
from redpacket.stress.tally import Tally


def nothing() -> None:
    pass


@dataclass
class EngineReport:
    """What the engine(s) handed back."""

    tally: Tally
    attempted: bytearray
    elapsed_s: float
    interrupted: bool = False
    error: str | None = None


def drive(
    engine: FastEngine,
    plan: StressPlan,
    progress: Callable[[Tally], bool],
    barrier: Callable[[], None] | None = None,
    ready: Callable[[], None] = nothing,
) -> tuple[float, bool, str | None]:
    """Run an engine to its end, Ctrl-C or a lost server: (elapsed, interrupted, error)."""
    started = time.monotonic()
    cpu_started = time.process_time()
    deadline = started + plan.duration_s if plan.duration_s else None
    interrupted, error = False, None
    with CTRL_C.deferred() as ctrl_c:  # Ctrl-C never cuts a request's count in half
        try:
            ready()  # every worker is connected: faults may start
            engine.run(deadline, progress, barrier)
        except KeyboardInterrupt:
            interrupted = True
        except ServerGone as exc:
            error = f"the server went away mid-run ({exc}); the figures are those gathered so far"
        except StatementRefused as exc:  # the schema changed, and a worker reconnected
            error = f"{exc}, mid-run; the figures are those gathered so far"
        finally:
            engine.close()
            engine.tally.client_cpu_s += time.process_time() - cpu_started
        interrupted = interrupted or ctrl_c.pending  # pressed after the last wait
    return time.monotonic() - started, interrupted, error
