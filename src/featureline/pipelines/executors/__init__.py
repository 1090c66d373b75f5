"""Executors run one step attempt (a `StepTask`) somewhere and hand back a `TaskResult`.

The boundary is small on purpose: `submit` a task, get a `concurrent.futures.Future`;
`kill` a task that overran its timeout; `shutdown`. Everything else — caching, retries,
ordering, metadata — lives one layer up, in the runner. What a backend can do is declared in
`ExecutorCapabilities`, never discovered by a `NotImplementedError` at run time.

The future resolves to a `TaskResult` for anything the *step* did (success, an exception,
a timeout the worker noticed); it raises `WorkerCrashedError` only when the machinery died
under the step (a SIGKILLed worker, a lost Ray node). Every backend passes
`featureline.testing.executor_contract.ExecutorContract`.

The contract types live in `executors/base.py`, which the backends import; this module is
the factory (`make_executor`, the shared `default_executor`s) and re-exports them.
"""

from __future__ import annotations

import atexit
import threading
from typing import Any

from featureline.errors import ConfigError, StepError, WorkerCrashedError, unknown
from featureline.pipelines.executors.base import (
    Executor,
    ExecutorCapabilities,
    ItemOf,
    StepTask,
    TaskResult,
)

EXECUTORS = ("inline", "process", "ray")
_defaults: dict[str, Executor] = {}
_lock = threading.Lock()


def make_executor(name: str, **options: Any) -> Executor:
    """A new executor by name: "inline", "process" or "ray"."""
    if name == "inline":
        from featureline.pipelines.executors.inline import InlineExecutor

        return InlineExecutor(**options)
    if name == "process":
        from featureline.pipelines.executors.process import ProcessExecutor

        return ProcessExecutor(**options)
    if name == "ray":
        from featureline.pipelines.executors.ray import RayExecutor

        return RayExecutor(**options)
    raise ConfigError(unknown("executor", name, EXECUTORS))


def default_executor(name: str) -> Executor:
    """The shared, already-started executor for a name (kept warm between runs)."""
    with _lock:
        ex = _defaults.get(name)
        if ex is None:
            ex = make_executor(name)
            ex.start()
            _defaults[name] = ex
        return ex


def shutdown_default_executors() -> None:
    """Shut down the shared executors (also done at interpreter exit)."""
    with _lock:
        items = list(_defaults.values())
        _defaults.clear()
    for ex in items:
        ex.shutdown()


atexit.register(shutdown_default_executors)

__all__ = [
    "EXECUTORS",
    "Executor",
    "ExecutorCapabilities",
    "ItemOf",
    "StepError",
    "StepTask",
    "TaskResult",
    "WorkerCrashedError",
    "default_executor",
    "make_executor",
    "shutdown_default_executors",
]
