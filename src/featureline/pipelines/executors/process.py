"""The default executor: steps in parallel worker processes on the local cores.

One persistent `concurrent.futures.ProcessPoolExecutor` (`forkserver` context where the
platform has it, else `spawn`), warmed at `start()` so the first step does not pay for
process start-up and imports. Each worker runs one step attempt at a time, with its
stdout/stderr (file descriptors 1 and 2, so C extensions and subprocesses too) in the step log.

Workers never import the user's `__main__` (`_mp.context_without_main`): a script without an
`if __name__ == "__main__":` guard is not run again in each worker, and a notebook works too.
Tasks are shipped with cloudpickle, so steps, helpers, classes and values defined in
`__main__` travel by value; steps of importable modules travel by reference.

Crashes: a worker killed by a signal (SIGKILL, the OOM killer, a segfault) breaks the whole
pool (`BrokenProcessPool`). The pool is rebuilt; the attempt whose worker died abnormally
fails with `WorkerCrashedError` (the runner retries it if the step has retries left), and the
attempts that were merely caught in the teardown (their workers ended by the pool's SIGTERM,
or not started yet) are resubmitted transparently. Attribution reads the workers' exit codes
from the pool's process table (`ProcessPoolExecutor._processes`, a CPython detail).

Timeouts: the worker interrupts the step with SIGALRM at `timeout`; a step stuck in C code is
killed by `kill()` (SIGKILL to its worker) when the runner's grace period also runs out.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing as mp
import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featureline.errors import ConfigError, WorkerCrashedError
from featureline.pipelines.executors._mp import context_without_main
from featureline.pipelines.executors._task import execute_pickled, warm
from featureline.pipelines.executors.base import (
    ExecutorCapabilities,
    StepTask,
    TaskResult,
)

_PRELOAD = ["featureline.pipelines.executors._task", "featureline.pipelines.artifacts"]
MAX_FREE_RESTARTS = 3


@dataclass(eq=False)
class _Record:
    task: StepTask
    payload: bytes
    outer: Future[TaskResult] = field(default_factory=Future)
    pool: Any = None
    inner: Future[TaskResult] | None = None
    killed: bool = False
    restarts: int = 0


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "ended without an exit status"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (e.g. the out-of-memory killer or `kill -9`)" if -code == signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    return f"exited with code {code}"


class ProcessExecutor:
    """Parallel local worker processes. Use one per program; `shutdown()` when done."""

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        context: str | None = None,
        preload: tuple[str, ...] = (),
        timeout_grace: float = 2.0,
    ) -> None:
        self.max_workers = max(1, max_workers or os.cpu_count() or 1)
        methods = mp.get_all_start_methods()
        self.context = context or ("forkserver" if "forkserver" in methods else "spawn")
        if self.context == "fork":
            raise ConfigError(
                "The `fork` start method is unsafe with threads. Fix: use `forkserver` or `spawn`."
            )
        self.preload = tuple(preload)
        self.timeout_grace = timeout_grace
        self.capabilities = ExecutorCapabilities(
            isolation=True,
            parallel=True,
            remote=False,
            kill=True,
            max_parallel=self.max_workers,
            capture="fd",
        )
        self._lock = threading.RLock()
        self._flag_lock = threading.Lock()
        self._recovering: set[int] = set()
        self._records: dict[int, _Record] = {}
        self._pool: ProcessPoolExecutor | None = None
        self._tmp: str | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"ProcessExecutor(max_workers={self.max_workers}, context={self.context!r})"

    def __enter__(self) -> ProcessExecutor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # ---- lifecycle ----------------------------------------------------------------------

    def _new_pool(self) -> ProcessPoolExecutor:
        ctx = context_without_main(self.context)
        if self.context == "forkserver":
            ctx.set_forkserver_preload([*_PRELOAD, *self.preload])
        return ProcessPoolExecutor(
            self.max_workers, mp_context=ctx, initializer=warm, initargs=(self.preload,)
        )

    def start(self) -> None:
        """Create the pool and start every worker now (idempotent)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("this ProcessExecutor was shut down; create a new one")
            if self._pool is not None:
                return
            self._tmp = tempfile.mkdtemp(prefix="featureline-workers-")
            self._pool = self._new_pool()
            pool = self._pool
        futures = [pool.submit(time.sleep, 0.05) for _ in range(self.max_workers)]
        for f in futures:
            f.result()

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
            records = list(self._records.values())
            self._records.clear()
        for rec in records:
            if not rec.outer.done():
                rec.outer.set_exception(
                    WorkerCrashedError(f"step `{rec.task.name}`: the executor was shut down")
                )
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    # ---- tasks --------------------------------------------------------------------------

    def submit(self, task: StepTask) -> Future[TaskResult]:
        self.start()
        assert self._tmp is not None
        task.capture = "fd"
        task.pid_path = os.path.join(self._tmp, f"{uuid.uuid4().hex}.pid")
        import cloudpickle

        rec = _Record(
            task, cloudpickle.dumps(task, protocol=5)
        )  # unpicklable: raises here, to the caller
        with self._lock:
            self._records[id(rec)] = rec
            self._submit_locked(rec)
        return rec.outer

    def _submit_locked(self, rec: _Record) -> None:
        pool = self._pool
        rec.pool, rec.inner = pool, None
        if pool is None:
            rec.outer.set_exception(
                WorkerCrashedError(f"step `{rec.task.name}`: the executor was shut down")
            )
            return
        try:
            inner = pool.submit(execute_pickled, rec.payload)
        except BrokenProcessPool:
            self._start_recovery(pool, dict(getattr(pool, "_processes", None) or {}))
            return
        rec.inner = inner
        inner.add_done_callback(functools.partial(self._done, rec))

    def _done(self, rec: _Record, f: Future[TaskResult]) -> None:
        # Runs in the pool's management thread: no locks that `submit` holds, no pool calls.
        if rec.outer.done():
            return
        if f.cancelled():
            if rec.killed:
                self._forget(rec)
                rec.outer.set_exception(WorkerCrashedError(f"step `{rec.task.name}` was stopped"))
            return
        exc = f.exception()
        if isinstance(exc, BrokenProcessPool):
            self._start_recovery(rec.pool, dict(getattr(rec.pool, "_processes", None) or {}))
            return
        self._forget(rec)
        if exc is not None:
            rec.outer.set_exception(exc)
        else:
            rec.outer.set_result(f.result())

    def _forget(self, rec: _Record) -> None:
        self._records.pop(id(rec), None)

    def _start_recovery(self, pool: Any, procs: dict[int, Any]) -> None:
        with self._flag_lock:
            if id(pool) in self._recovering:
                return
            self._recovering.add(id(pool))
        threading.Thread(
            target=self._recover, args=(pool, procs), name="featureline-pool-recovery", daemon=True
        ).start()

    def _recover(self, old: ProcessPoolExecutor, procs: dict[int, Any]) -> None:
        # End the broken pool's workers ourselves, until its manager thread is gone: on some
        # Python versions (3.11.7 here) the pool joins idle workers that still wait on its
        # call queue, and waits forever (gh-94777). A SIGTERMed busy worker's step is
        # restarted below, as a teardown casualty; a worker still alive after 10 s is killed.
        old.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + 10
        ours: set[int] = set()  # workers ended here, not by their step: their steps run again
        while True:
            live = {**procs, **(getattr(old, "_processes", None) or {})}
            for pid, proc in live.items():
                with contextlib.suppress(Exception):
                    if proc.is_alive():
                        ours.add(pid)
                        proc.kill() if time.monotonic() > deadline else proc.terminate()
            manager = getattr(old, "_executor_manager_thread", None)
            if manager is None or not manager.is_alive():
                break
            manager.join(0.2)
        for proc in procs.values():  # reap them, so their exit codes say why they ended
            with contextlib.suppress(Exception):
                proc.join(5)
        with self._lock:
            if self._pool is old and not self._closed:
                self._pool = self._new_pool()
            for rec in [r for r in self._records.values() if r.pool is old]:
                if rec.outer.done():
                    self._forget(rec)
                    continue
                pid = _read_pid(rec.task.pid_path)
                code = procs[pid].exitcode if pid is not None and pid in procs else None
                if rec.killed:
                    self._forget(rec)
                    rec.outer.set_exception(
                        WorkerCrashedError(f"step `{rec.task.name}` was killed after its timeout")
                    )
                elif (
                    pid is None or pid in ours or code == -signal.SIGTERM
                ) and rec.restarts < MAX_FREE_RESTARTS:
                    rec.restarts += 1  # caught in the teardown, not the cause: run it again
                    if rec.task.pid_path:
                        Path(rec.task.pid_path).unlink(missing_ok=True)
                    self._submit_locked(rec)
                else:
                    self._forget(rec)
                    rec.outer.set_exception(
                        WorkerCrashedError(
                            f"the worker process (pid {pid}) running step `{rec.task.name}` died: it "
                            f"{_describe_exit(code)}. The process pool was rebuilt."
                        )
                    )
        with self._flag_lock:
            self._recovering.discard(id(old))

    def kill(self, future: Future[TaskResult]) -> None:
        """SIGKILL the worker running the attempt behind `future` (used after a timeout)."""
        with self._lock:
            rec = next((r for r in list(self._records.values()) if r.outer is future), None)
            if rec is None or rec.outer.done():
                return
            rec.killed = True
            inner = rec.inner
        if inner is not None and inner.cancel():
            return
        deadline = time.monotonic() + 1.0
        pid = _read_pid(rec.task.pid_path)
        while pid is None and time.monotonic() < deadline:
            time.sleep(0.01)
            pid = _read_pid(rec.task.pid_path)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def worker_pids(self) -> list[int]:
        """The pids of the current workers (for tests and diagnostics)."""
        with self._lock:
            pool = self._pool
        return sorted(getattr(pool, "_processes", None) or {})


def _read_pid(path: str | None) -> int | None:
    if not path:
        return None
    try:
        return int(Path(path).read_text())
    except (OSError, ValueError):
        return None


__all__ = ["ProcessExecutor"]
