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
pool (`BrokenProcessPool`). The broken pool is taken down here, not left to the standard
library: its remaining workers are ended (SIGTERM, then SIGKILL) until its manager thread is
gone, and a fresh pool takes the remaining steps. The attempt whose worker died on its own
fails with `WorkerCrashedError` naming the step, the pid and the signal (the runner retries it
if the step has retries left); the attempts merely caught in the teardown (their workers were
still alive when the pool broke, or they had not started) are resubmitted transparently, and
the results of steps that had finished are kept. Attribution reads the workers' exit codes
from the pool's process table (`ProcessPoolExecutor._processes`, a CPython detail).

Why the pool is not left to end itself: `ProcessPoolExecutor` spawns workers on demand, in
`submit`, while its manager thread may be marking the pool broken without the lock `submit`
holds. A worker started in that window is never terminated nor sent a stop sentinel; it waits
in `call_queue.get` for ever, the manager thread joins it for ever, and the interpreter hangs
at exit in `concurrent.futures.process._python_exit` (Python 3.11; see also gh-94777); or a
work item added then made the thread die on "dictionary changed size during iteration". So the
pools here (`_Pool`) mark themselves broken under that lock (`_ManagerThread`; where that
class is missing, they start all their workers when created instead, and never spawn one in
`submit`); recovery ends whatever is alive
in the broken pool's live process table until its manager thread is gone; and `shutdown()` (also
run at interpreter exit, before the standard library joins the pools' threads) gives a pool
`STOP_GRACE` seconds to stop, then terminates and joins, with a timeout, what is still alive.

Timeouts: the worker interrupts the step with SIGALRM at `timeout`; a step stuck in C code is
killed by `kill()` (SIGKILL to its worker) when the runner's grace period also runs out.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import multiprocessing as mp
import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import process as _cfp
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.connection import wait as _ready
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

log = logging.getLogger("featureline.pipelines")

_PRELOAD = ["featureline.pipelines.executors._task", "featureline.pipelines.artifacts"]
# Resubmissions of an attempt caught in a pool's teardown (it did not break the pool). When the
# pool broke and no other attempt's worker is seen dead on its own, an attempt that had not
# started yet may be the cause (its worker died before it could say so): those get only
# MAX_FREE_RESTARTS. The larger cap only bounds a pathological loop.
MAX_FREE_RESTARTS = 3
MAX_CASUALTY_RESTARTS = 50
STOP_GRACE = 5.0  # seconds a pool being shut down may take to stop its workers itself
RECOVERY_TIMEOUT = 30.0  # seconds to end a broken pool's workers and see its manager thread end
REAP_TIMEOUT = 5.0  # seconds to wait for terminated/killed workers of a pool being shut down


@dataclass(eq=False)
class _Record:
    task: StepTask
    payload: bytes
    outer: Future[TaskResult] = field(default_factory=Future)
    pool: Any = None
    inner: Future[TaskResult] | None = None
    killed: bool = False
    restarts: int = 0
    unexplained: int = 0  # restarts after breaks no dead worker explained


@dataclass(eq=False)
class _Broken:
    """A broken pool being taken down, with what `pool.shutdown()` would drop."""

    pool: ProcessPoolExecutor
    manager: threading.Thread | None
    procs: Mapping[int, Any]  # the pool's live process table (not a copy)
    thread: threading.Thread | None = None


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


def _alive(proc: Any) -> bool:
    """Whether a worker still runs, without reaping it: its sentinel is not readable yet.
    (`is_alive()` would read a forkserver child's exit status off that pipe; a second reader,
    the pool's manager thread, then meets EOF and records exit code 255 for it.)"""
    try:
        return not _ready([proc.sentinel], 0)
    except Exception:
        return False


if hasattr(_cfp, "_ExecutorManagerThread") and hasattr(_cfp, "_threads_wakeups"):

    class _ManagerThread(_cfp._ExecutorManagerThread):
        """The pool's manager thread, marking the pool broken under the lock `submit` holds.

        The standard one sets `_broken` without it, so a `submit` already past its check still
        adds its work item (and may spawn a worker) while the pool is torn down: "dictionary
        changed size during iteration" kills the thread half way, or a worker started then is
        never stopped and joined for ever. With the lock, nothing is added after the mark.
        Also records which workers were alive at the breakage: they did not cause it."""

        alive_at_break: frozenset[int] | None = None

        def terminate_broken(self, cause: Any) -> None:
            me: Any = self
            with me.shutdown_lock:
                self.alive_at_break = frozenset(
                    pid for pid, p in list(me.processes.items()) if _alive(p)
                )
                executor = me.executor_reference()
                if executor is not None:
                    executor._broken = "A child process terminated abruptly, the process pool is not usable anymore"
                    executor._shutdown_thread = True
                del executor
            super().terminate_broken(cause)

else:  # pragma: no cover - another Python: the pool's own thread, recovery copes
    _ManagerThread = None  # type: ignore[assignment,misc]


class _Pool(ProcessPoolExecutor):
    """A `ProcessPoolExecutor` whose manager thread is `_ManagerThread`. Without it (another
    Python), every worker is started at creation instead, so that `submit` never spawns one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        me: Any = self
        launch = getattr(me, "_launch_processes", None)
        if _ManagerThread is None and callable(launch):
            try:
                launch()
            except BaseException:
                _stop_pool(self, 0.0)
                raise

    def _start_executor_manager_thread(self) -> None:
        me: Any = self
        if _ManagerThread is None or me._executor_manager_thread is not None:
            super()._start_executor_manager_thread()
            return
        if not me._safe_to_dynamically_spawn_children:  # fork: never used here
            me._launch_processes()
        thread = me._executor_manager_thread = _ManagerThread(self)
        thread.start()
        _cfp._threads_wakeups[thread] = me._executor_manager_thread_wakeup


def _internals(pool: ProcessPoolExecutor) -> tuple[threading.Thread | None, Mapping[int, Any]]:
    """A pool's manager thread and its live process table: the dict the pool adds workers to,
    not a copy. Read them before `pool.shutdown()`, which drops both from the pool."""
    manager = getattr(pool, "_executor_manager_thread", None)
    procs = getattr(manager, "processes", None)
    if not isinstance(procs, dict):
        procs = getattr(pool, "_processes", None)
    return manager, procs if isinstance(procs, dict) else {}


def _end_processes(
    procs: Mapping[int, Any],
    manager: threading.Thread | None,
    timeout: float,
    kill_after: float = 1.0,
) -> set[int]:
    """End every process of `procs` still alive (SIGTERM, SIGKILL after `kill_after` s), again
    and again, until none is alive and the pool's manager thread is gone, or `timeout` s pass.
    Workers the pool adds to `procs` meanwhile are ended too. Once the manager thread is gone
    (it joins them itself while it runs), they are joined here. Returns the pids signalled."""
    start = time.monotonic()
    signalled: set[int] = set()
    while True:
        elapsed = time.monotonic() - start
        alive = [(pid, p) for pid, p in list(procs.items()) if _alive(p)]
        for pid, proc in alive:
            signalled.add(pid)
            with contextlib.suppress(Exception):
                proc.kill() if elapsed >= kill_after else proc.terminate()
        manager_alive = manager is not None and manager.is_alive()
        if (not alive and not manager_alive) or elapsed > timeout:
            break
        if manager is not None and manager_alive and manager is not threading.current_thread():
            manager.join(0.05)
        else:
            time.sleep(0.05)
    if manager is None or not manager.is_alive():  # nobody else reads their exit statuses now
        for proc in list(procs.values()):
            with contextlib.suppress(Exception):
                proc.join(0.5)
    return signalled


def _stop_pool(pool: ProcessPoolExecutor, grace: float) -> None:
    """Shut a pool down without ever waiting for ever: `grace` s for it to stop its workers
    itself, then terminate, kill and join what is left."""
    manager, procs = _internals(pool)
    # Held until its workers are gone: dropped (by `shutdown`) while one still starts, its
    # semaphores are unlinked under it, and it fails with FileNotFoundError on stderr.
    queue = getattr(pool, "_call_queue", None)
    with contextlib.suppress(Exception):
        pool.shutdown(wait=False, cancel_futures=True)
    if manager is not None and manager is not threading.current_thread():
        manager.join(grace)  # no manager thread (the pool never ran a task): nothing to wait for
    _end_processes(procs, manager, REAP_TIMEOUT)
    if manager is not None and manager.is_alive():
        log.warning("a process pool's manager thread did not end: %r", manager)
    del queue


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
        self._recovering: dict[int, _Broken] = {}
        self._records: dict[int, _Record] = {}
        self._pool: ProcessPoolExecutor | None = None
        self._tmp: str | None = None
        self._closed = False
        self._owner = os.getpid()  # a forked child must not end its parent's workers at exit
        _LIVE.add(self)

    def __repr__(self) -> str:
        return f"ProcessExecutor(max_workers={self.max_workers}, context={self.context!r})"

    def __enter__(self) -> ProcessExecutor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # ---- lifecycle ----------------------------------------------------------------------

    def _new_pool(self) -> ProcessPoolExecutor:
        """A pool that is marked broken safely (see `_Pool`)."""
        ctx = context_without_main(self.context)
        if self.context == "forkserver":
            ctx.set_forkserver_preload([*_PRELOAD, *self.preload])
        return _Pool(self.max_workers, mp_context=ctx, initializer=warm, initargs=(self.preload,))

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

    def shutdown(self, grace: float = STOP_GRACE) -> None:
        """Fail the attempts still running, stop the pool (`grace` s for it to stop its workers
        itself, then they are terminated), end broken pools' leftovers; never hangs."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
            records = list(self._records.values())
            self._records.clear()
        _LIVE.discard(self)
        for rec in records:
            if not rec.outer.done():
                rec.outer.set_exception(
                    WorkerCrashedError(f"step `{rec.task.name}`: the executor was shut down")
                )
        if pool is not None:
            _stop_pool(pool, grace)
        with self._flag_lock:
            broken = list(self._recovering.values())
        for b in broken:
            if b.thread is not None and b.thread is not threading.current_thread():
                b.thread.join(RECOVERY_TIMEOUT)
            _end_processes(b.procs, b.manager, REAP_TIMEOUT)
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
            self._forget(rec)
            rec.outer.set_exception(
                WorkerCrashedError(f"step `{rec.task.name}`: the executor was shut down")
            )
            return
        try:
            inner = pool.submit(execute_pickled, rec.payload)
        except (BrokenProcessPool, RuntimeError) as e:
            if isinstance(e, BrokenProcessPool) or getattr(pool, "_broken", False):
                self._start_recovery(pool)  # its recovery resubmits the attempt to the next pool
                return
            self._forget(rec)  # e.g. the interpreter is exiting
            rec.outer.set_exception(
                WorkerCrashedError(f"step `{rec.task.name}` could not be submitted: {e}")
            )
            return
        rec.inner = inner
        inner.add_done_callback(functools.partial(self._done, rec, pool))

    def _done(self, rec: _Record, pool: Any, f: Future[TaskResult]) -> None:
        # Runs in the pool's management thread: no locks that `submit` holds, no pool calls.
        if rec.outer.done() or f is not rec.inner:
            return  # settled, or an earlier submission of a resubmitted attempt
        if f.cancelled():
            if rec.killed:
                self._forget(rec)
                rec.outer.set_exception(WorkerCrashedError(f"step `{rec.task.name}` was stopped"))
            return
        exc = f.exception()
        if isinstance(exc, BrokenProcessPool):
            self._start_recovery(pool)
            return
        self._forget(rec)
        if exc is not None:
            rec.outer.set_exception(exc)
        else:
            rec.outer.set_result(f.result())

    def _forget(self, rec: _Record) -> None:
        self._records.pop(id(rec), None)

    def _start_recovery(self, pool: ProcessPoolExecutor) -> None:
        with self._flag_lock:
            if id(pool) in self._recovering:
                return
            manager, procs = _internals(pool)  # before anything shuts the pool down
            b = self._recovering[id(pool)] = _Broken(pool, manager, procs)
            b.thread = threading.Thread(
                target=self._recover, args=(b,), name="featureline-pool-recovery", daemon=True
            )
        b.thread.start()

    def _recover(self, b: _Broken) -> None:
        try:
            self._take_down_and_replace(b)
        except Exception:  # never leave the attempts of the broken pool waiting
            log.exception("recovering from a broken process pool failed")
            with self._lock:
                for rec in [r for r in list(self._records.values()) if r.pool is b.pool]:
                    self._forget(rec)
                    if not rec.outer.done():
                        rec.outer.set_exception(
                            WorkerCrashedError(
                                f"step `{rec.task.name}`: its process pool broke and could not be recovered"
                            )
                        )
        finally:
            with self._flag_lock:
                self._recovering.pop(id(b.pool), None)

    def _take_down_and_replace(self, b: _Broken) -> None:
        old = b.pool
        with contextlib.suppress(Exception):
            old.shutdown(wait=False, cancel_futures=True)
        # The pool's manager thread terminates and joins its workers itself; a worker it missed
        # (or one stuck) is killed here, until the thread is gone.
        if b.manager is not None:
            b.manager.join(1.0)
        signalled = _end_processes(b.procs, b.manager, RECOVERY_TIMEOUT, kill_after=0.0)
        if b.manager is not None and b.manager.is_alive():
            log.warning(
                "the broken process pool's manager thread did not end within %g s",
                RECOVERY_TIMEOUT,
            )
        procs = dict(b.procs)
        codes = {pid: p.exitcode for pid, p in procs.items()}
        # Workers alive when the pool broke did not break it: their attempts run again.
        alive = getattr(b.manager, "alive_at_break", None)
        if alive is None:  # the pool's own manager thread: judge by how they ended
            alive = {p for p, c in codes.items() if c == -signal.SIGTERM} | signalled
        crashed = {pid for pid, c in codes.items() if pid not in alive and c is not None}
        with self._lock:
            replace = self._pool is old and not self._closed
        new: ProcessPoolExecutor | None = None
        problem = ""
        if replace:
            try:
                new = self._new_pool()  # outside the lock: submits meanwhile wait for this one
            except Exception as e:
                problem = f"; a new process pool could not be started: {type(e).__name__}: {e}"
        with self._lock:
            if new is not None and self._pool is old and not self._closed:
                self._pool, new = new, None
            mine = [r for r in list(self._records.values()) if r.pool is old]
            pids = {r: _read_pid(r.task.pid_path) for r in mine}
            # A worker runs attempts one after the other: of those naming the same worker, the
            # last one started is the one it ran; the earlier ones had finished (their results
            # unread when the pool broke) and did not break it.
            last: dict[int, _Record] = {}
            for r, p in pids.items():
                if p is not None and (p not in last or _stamp(r) > _stamp(last[p])):
                    last[p] = r
            explained = bool(crashed & set(last))
            for rec in mine:
                if rec.outer.done():
                    self._forget(rec)
                    continue
                pid = pids[rec]
                code = codes.get(pid) if pid is not None else None
                casualty = pid is not None and (pid in alive or last[pid] is not rec)
                if rec.killed:
                    self._forget(rec)
                    rec.outer.set_exception(
                        WorkerCrashedError(f"step `{rec.task.name}` was killed after its timeout")
                    )
                elif (
                    not problem
                    and rec.restarts < MAX_CASUALTY_RESTARTS
                    and (
                        casualty
                        or (pid is None and (explained or rec.unexplained < MAX_FREE_RESTARTS))
                    )
                ):
                    # caught in the teardown, not the cause: run it again
                    rec.restarts += 1
                    rec.unexplained += pid is None and not explained
                    if rec.task.pid_path:
                        Path(rec.task.pid_path).unlink(missing_ok=True)
                    self._submit_locked(rec)
                else:
                    self._forget(rec)
                    who = f"pid {pid}" if pid is not None else "its pid unknown"
                    rec.outer.set_exception(
                        WorkerCrashedError(
                            f"the worker process ({who}) running step `{rec.task.name}` died: it "
                            f"{_describe_exit(code)}. The process pool was rebuilt{problem}."
                        )
                    )
        if new is not None:  # shut down meanwhile: not needed
            _stop_pool(new, 0.0)

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


_LIVE: weakref.WeakSet[ProcessExecutor] = weakref.WeakSet()


def _shutdown_at_exit() -> None:
    """Shut down the executors still open when the interpreter exits. Registered to run before
    `concurrent.futures.process._python_exit` joins the pools' manager threads (threading's
    exit hooks run last-registered first), so a broken pool cannot hang the exit."""
    for ex in list(_LIVE):
        if ex._owner == os.getpid():
            with contextlib.suppress(Exception):
                ex.shutdown()


try:  # CPython's hook for "before joining threads at exit", where the pools are joined
    threading._register_atexit(_shutdown_at_exit)  # type: ignore[attr-defined]
except (AttributeError, RuntimeError):  # pragma: no cover - another Python, or exiting already
    atexit.register(_shutdown_at_exit)


def _stamp(rec: _Record) -> int:
    """When the attempt's pid file was written (0 if it is gone)."""
    try:
        return os.stat(rec.task.pid_path or "").st_mtime_ns
    except OSError:
        return 0


def _read_pid(path: str | None) -> int | None:
    if not path:
        return None
    try:
        return int(Path(path).read_text())
    except (OSError, ValueError):
        return None


__all__ = ["ProcessExecutor"]
