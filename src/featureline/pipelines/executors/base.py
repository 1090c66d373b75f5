"""The executor contract: what a backend is handed (`StepTask`), what it hands back
(`TaskResult`), what it declares it can do (`ExecutorCapabilities`), and the `Executor`
Protocol itself. The factory (`featureline.pipelines.executors.make_executor`) imports the
backends, and the backends import only this module, so neither imports the other.

A step is seen here as a `graph.StepLike` (its attributes), never as a `dsl.Step`: the DSL
runs pipelines through the runner, which runs them through an executor.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from featureline.errors import StepError
from featureline.pipelines.graph import StepLike

if TYPE_CHECKING:
    from featureline.pipelines.artifacts import ArtifactRef


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
    step: StepLike
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


__all__ = [
    "Executor",
    "ExecutorCapabilities",
    "ItemOf",
    "StepTask",
    "TaskResult",
]
