"""Executors run one step attempt (a `StepTask`) somewhere and hand back a `TaskResult`.

The boundary is small on purpose: `submit` a task, get a `concurrent.futures.Future`;
`kill` a task that overran its timeout; `shutdown`. Everything else — caching, retries,
ordering, metadata — lives one layer up, in the runner. What a backend can do is declared in
`ExecutorCapabilities`, never discovered by a `NotImplementedError` at run time.

The future resolves to a `TaskResult` for anything the *step* did (success, an exception,
a timeout the worker noticed); it raises `WorkerCrashedError` only when the machinery died
under the step (a SIGKILLed worker, a lost Ray node). Every backend passes
`featureline.testing.executor_contract.ExecutorContract`.
"""

from __future__ import annotations

import atexit
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from featureline.errors import ConfigError, StepError, WorkerCrashedError, unknown

if TYPE_CHECKING:
    from featureline.pipelines.artifacts import ArtifactRef
    from featureline.pipelines.dsl import Step


@dataclass(frozen=True)
class ExecutorCapabilities:
    """`isolation`: a crashing or hung step cannot take the runner down.
    `parallel`: several steps at once (`max_parallel` slots). `remote`: steps may run on other
    machines, so the artifact root must be reachable from them. `kill`: a step that overruns
    its timeout can be stopped for sure (otherwise only interrupted when it runs Python code).
    `capture`: "fd" captures the step's process-level stdout/stderr (C extensions and
    subprocesses too), "sys" only Python's `sys.stdout`/`sys.stderr`."""

    isolation: bool
    parallel: bool
    remote: bool
    kill: bool
    max_parallel: int = 1
    capture: Literal["fd", "sys"] = "sys"


@dataclass(frozen=True)
class ItemOf:
    """The `index`-th element of a list artifact (fan-out over a step's list output)."""

    ref: ArtifactRef
    index: int


@dataclass
class StepTask:
    """One attempt of one step (or one element of a mapped step). Picklable."""

    run_id: str
    name: str
    step: Step
    params: dict[str, Any]
    artifacts: dict[str, Any]  # ArtifactRef | list[ArtifactRef] | ItemOf
    input_ids: dict[str, str]
    artifact_root: str
    log_path: str
    attempt: int = 1
    timeout: float | None = None
    capture: Literal["fd", "sys"] = "sys"
    pid_path: str | None = None


@dataclass
class TaskResult:
    """What one attempt did. `error` is set when it failed; outputs are already stored."""

    name: str
    ok: bool
    outputs: dict[str, ArtifactRef] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    lengths: dict[str, int] = field(default_factory=dict)
    error: StepError | None = None
    timed_out: bool = False
    started: float = 0.0
    finished: float = 0.0
    pid: int = 0


@runtime_checkable
class Executor(Protocol):
    """Runs step attempts. Configure at construction; `start` warms it up (idempotent)."""

    capabilities: ExecutorCapabilities

    def start(self) -> None: ...

    def submit(self, task: StepTask) -> Future[TaskResult]: ...

    def kill(self, future: Future[TaskResult]) -> None:
        """Stop the attempt behind `future` for sure if `capabilities.kill`; else forget it."""
        ...

    def shutdown(self) -> None: ...


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
