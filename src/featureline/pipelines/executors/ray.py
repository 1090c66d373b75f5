"""Steps as Ray tasks, on a Ray cluster (`address=`) or a local Ray instance started on demand.

Install with `pip install 'featureline[ray]'`; `ray` is imported only here. Per-step
`resources` map to Ray task options: `num_cpus`, `num_gpus`, `memory` (bytes) directly,
anything else as a custom resource. Ray's own retries are off (`max_retries=0`): the runner
retries, so attempts are counted and logged in one place. The artifact root must be a folder
(or fsspec URL) every node can reach; a relative local path is made absolute here.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

from featureline.errors import MissingExtraError, WorkerCrashedError
from featureline.pipelines.executors.base import (
    ExecutorCapabilities,
    StepTask,
    TaskResult,
)

_DIRECT = ("num_cpus", "num_gpus", "memory")


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise MissingExtraError.for_extra("ray", "ray") from e
    return ray


def ray_options(resources: Mapping[str, float]) -> dict[str, Any]:
    """Ray task options for a step's `resources` (1 CPU unless it says otherwise)."""
    opts: dict[str, Any] = {"num_cpus": 1}
    custom: dict[str, float] = {}
    for key, value in resources.items():
        if key in _DIRECT:
            opts[key] = int(value) if key == "memory" else value
        else:
            custom[key] = float(value)
    if custom:
        opts["resources"] = custom
    return opts


class RayExecutor:
    """Run step attempts as Ray tasks. `init_options` go to `ray.init` when it starts Ray."""

    def __init__(
        self, address: str | None = None, *, max_parallel: int | None = None, **init_options: Any
    ) -> None:
        self.address = address
        self.init_options = init_options
        self._max_parallel = max_parallel
        self._ray: Any = None
        self._remote: Any = None
        self._owns = False
        self._lock = threading.Lock()
        self._refs: dict[int, Any] = {}
        self.capabilities = ExecutorCapabilities(
            isolation=True,
            parallel=True,
            remote=True,
            kill=True,
            max_parallel=max_parallel or 1,
            capture="sys",
        )

    def __repr__(self) -> str:
        return f"RayExecutor(address={self.address!r})"

    def __enter__(self) -> RayExecutor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def start(self) -> None:
        with self._lock:
            if self._remote is not None:
                return
            ray = _import_ray()
            if not ray.is_initialized():
                opts = {"include_dashboard": False, "log_to_driver": True, **self.init_options}
                ray.init(address=self.address, **opts)
                self._owns = True
            from featureline.pipelines.executors._task import execute_task

            self._ray = ray
            self._remote = ray.remote(max_retries=0, retry_exceptions=False)(execute_task)
            cpus = int(ray.cluster_resources().get("CPU", 1))
            self.capabilities = ExecutorCapabilities(
                isolation=True,
                parallel=True,
                remote=True,
                kill=True,
                max_parallel=self._max_parallel or max(1, cpus),
                capture="sys",
            )

    def submit(self, task: StepTask) -> Future[TaskResult]:
        self.start()
        task.capture = "sys"
        ray = self._ray
        ref = self._remote.options(**ray_options(task.step.options.resources)).remote(task)
        outer: Future[TaskResult] = Future()
        inner = ref.future()
        with self._lock:
            self._refs[id(outer)] = ref

        def done(f: Future[Any]) -> None:
            with self._lock:
                self._refs.pop(id(outer), None)
            if outer.done():
                return
            if f.cancelled():
                outer.set_exception(
                    WorkerCrashedError(f"step `{task.name}`: the Ray task was cancelled")
                )
                return
            exc = f.exception()
            if exc is None:
                outer.set_result(f.result())
            elif isinstance(
                exc,
                (
                    ray.exceptions.WorkerCrashedError,
                    ray.exceptions.NodeDiedError,
                    ray.exceptions.TaskCancelledError,
                    ray.exceptions.ObjectLostError,
                ),
            ):
                outer.set_exception(
                    WorkerCrashedError(
                        f"the Ray worker running step `{task.name}` died: {type(exc).__name__}: {str(exc)[:500]}"
                    )
                )
            else:
                outer.set_exception(exc)

        inner.add_done_callback(done)
        return outer

    def kill(self, future: Future[TaskResult]) -> None:
        with self._lock:
            ref = self._refs.get(id(future))
        if ref is not None:
            self._ray.cancel(ref, force=True)

    def shutdown(self) -> None:
        with self._lock:
            refs = list(self._refs.values())
            self._refs.clear()
            ray, owns = self._ray, self._owns
            self._remote, self._owns = None, False
        for ref in refs:
            ray.cancel(ref, force=True)
        if ray is not None and owns and ray.is_initialized():
            ray.shutdown()


__all__ = ["RayExecutor", "ray_options"]
