"""A strategy from the user's own file, so an engineer can put *their* fix through the lab.

The file is ordinary Python that defines ``STRATEGY = Strategy(...)`` out of the
same parts the built-in strategies use. It is loaded only when named on the command
line, checked with ``Strategy.problems`` before anything runs, and remembered by
path so ``--processes`` can load it again in each worker process.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import sys
from pathlib import Path

from redpacket.errors import LabError
from redpacket.strategies.steps import Strategy


def looks_like_file(name: str) -> bool:
    """``./my_fix.py`` names a file; ``lock_first`` names a built-in strategy."""
    return name.strip().endswith(".py")


def load_strategy_file(text: str, reserved: frozenset[str] = frozenset()) -> Strategy:
    """The ``STRATEGY`` defined in the file at ``text``; any problem is one LabError line."""
    path = Path(text.strip()).expanduser()
    if not path.is_file():
        raise LabError(f"strategy file {path} not found")
    resolved = path.resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(f"redpacket_user_{digest}", resolved)
    if spec is None or spec.loader is None:
        raise LabError(f"cannot load strategy file {path}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import would: dataclasses in the file look it up
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[spec.name]  # the user's code: any error is theirs to read, in one line
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise LabError(
            f"cannot load strategy file {path}: {type(exc).__name__}"
            + (f": {detail}" if detail else "")
        ) from None
    strategy = getattr(module, "STRATEGY", None)
    if not isinstance(strategy, Strategy):
        raise LabError(f"strategy file {path} must define STRATEGY = Strategy(...)")
    if strategy.name in reserved:
        raise LabError(
            f"strategy file {path} names its strategy {strategy.name!r}, which is built in;"
            " give it a name of its own"
        )
    problems = strategy.problems()
    if problems:
        raise LabError(f"strategy {strategy.name!r} in {path}: {problems[0]}")
    if not strategy.doc:
        strategy = dataclasses.replace(strategy, doc=module.__doc__ or "")
    return dataclasses.replace(strategy, origin=str(resolved))
