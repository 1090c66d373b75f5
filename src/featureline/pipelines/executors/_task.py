"""One step attempt, run where the executor puts it (in-process, a worker process, a Ray task).

Loads the inputs from the artifact store, calls the user function inside an error boundary
(its exception becomes a picklable `StepError` naming step, run, inputs and the user
traceback), captures stdout/stderr into the step's log file, and stores the outputs in the
artifact store right here, so large values never travel back through the runner.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path, PurePath
from typing import IO, Any

from featureline.errors import StepError, ValidationError
from featureline.pipelines.executors.base import ItemOf, StepTask, TaskResult

_STORES: dict[str, Any] = {}


def store_for(root: str) -> Any:
    """The worker's `ArtifactStore` for a root (opened once per process)."""
    store = _STORES.get(root)
    if store is None:
        from featureline.pipelines.artifacts import ArtifactStore

        store = _STORES[root] = ArtifactStore(root)
    return store


class _Timeout(BaseException):
    """Raised into the step by SIGALRM; a BaseException so `except Exception` can't eat it."""


@contextlib.contextmanager
def _alarm(timeout: float | None) -> Iterator[bool]:
    usable = (
        timeout is not None
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield False
        return

    def fire(signum: int, frame: Any) -> None:
        raise _Timeout()

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, float(timeout or 0))
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@contextlib.contextmanager
def _capture(path: str, mode: str, header: str) -> Iterator[IO[str]]:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8", errors="replace", buffering=1) as log:
        log.write(header)
        log.flush()
        if mode == "fd":
            for s in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    s.flush()
            saved = os.dup(1), os.dup(2)
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                yield log
            finally:
                for s in (sys.stdout, sys.stderr):
                    with contextlib.suppress(Exception):
                        s.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                os.close(saved[0])
                os.close(saved[1])
        else:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield log


def execute_task(task: StepTask) -> TaskResult:
    """Run one attempt; never raises for anything the step does."""
    res = TaskResult(task.name, ok=False, started=time.time(), pid=os.getpid())
    if task.pid_path:
        with contextlib.suppress(OSError):
            Path(task.pid_path).write_text(str(os.getpid()))
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    header = f"=== step {task.name} · run {task.run_id} · attempt {task.attempt} · pid {os.getpid()} · {stamp} ===\n"
    try:
        with _capture(task.log_path, task.capture, header) as log:
            _attempt(task, res, log)
    except Exception as e:  # the machinery around the step failed (log folder, artifact root)
        res.ok = False
        res.error = _error(task, f"{type(e).__name__}: {e}", error_type=type(e).__name__)
    res.finished = time.time()
    return res


def execute_pickled(data: bytes) -> TaskResult:
    """`execute_task` of a task pickled with cloudpickle (how the process executor ships tasks:
    values of classes defined in `__main__` travel by value, as the steps do)."""
    import pickle

    return execute_task(pickle.loads(data))


def _error(
    task: StepTask, what: str, tb: str = "", error_type: str = "", retryable: bool = True
) -> StepError:
    inputs = dict(task.input_ids)
    for k, v in task.params.items():
        if k not in inputs:
            inputs[k] = _short(v)
    return StepError.build(
        what,
        step=task.name,
        run_id=task.run_id,
        inputs=inputs,
        traceback=tb,
        error_type=error_type,
        retryable=retryable,
    )


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _attempt(task: StepTask, res: TaskResult, log: IO[str]) -> None:
    store = store_for(task.artifact_root)
    try:
        kwargs = _load_inputs(task, store)
    except Exception as e:
        res.error = _error(
            task, f"could not load its inputs: {type(e).__name__}: {e}", error_type=type(e).__name__
        )
        return
    t0 = time.monotonic()
    # steps may record lineage: tell them which run and step they are (built-in steps do)
    os.environ["FEATURELINE_RUN_ID"], os.environ["FEATURELINE_STEP"] = task.run_id, task.name
    try:
        with _alarm(task.timeout):
            value = task.step.fn(**kwargs)
    except _Timeout:
        res.timed_out = True
        res.error = _error(task, f"timed out after {task.timeout:g} s", error_type="TimeoutError")
        return
    except (Exception, SystemExit) as e:
        tb = _user_traceback(e)
        print(tb, file=sys.stderr, end="")
        res.error = _error(task, f"{type(e).__name__}: {e}", tb, error_type=type(e).__name__)
        return
    if task.timeout is not None and time.monotonic() - t0 > task.timeout:
        res.timed_out = True
        res.error = _error(
            task,
            f"timed out after {task.timeout:g} s (it could not be interrupted)",
            error_type="TimeoutError",
        )
        return
    _store_outputs(task, res, value, store)


def _user_traceback(e: BaseException) -> str:
    tb = e.__traceback__
    if tb is not None and tb.tb_frame.f_code is _attempt.__code__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(e), e, tb))


def _load_inputs(task: StepTask, store: Any) -> dict[str, Any]:
    kwargs = dict(task.params)
    for name, a in task.artifacts.items():
        if isinstance(a, ItemOf):
            kwargs[name] = store.get(a.ref)[a.index]
        elif isinstance(a, list):
            kwargs[name] = [store.get(r) for r in a]
        else:
            kwargs[name] = store.get(a)
    for name, spec in task.step.inputs.items():
        ann = spec.annotation
        if (
            isinstance(ann, type)
            and issubclass(ann, PurePath)
            and isinstance(kwargs.get(name), str)
        ):
            kwargs[name] = ann(kwargs[name])
    return kwargs


def _split(task: StepTask, value: Any) -> dict[str, Any]:
    names = task.step.output_names
    if not names:
        return {}
    if len(names) == 1:
        return {names[0]: value}
    shown = ", ".join(f"`{n}`" for n in names)
    if isinstance(value, Mapping):
        missing = [n for n in names if n not in value]
        if missing:
            raise _BadReturn(f"declares outputs {shown} but the returned dict lacks {missing}")
        return {n: value[n] for n in names}
    if isinstance(value, (tuple, list)) and len(value) == len(names):
        return dict(zip(names, value, strict=True))
    got = (
        f"a {type(value).__name__} of {len(value)}"
        if isinstance(value, (tuple, list))
        else f"`{type(value).__name__}`"
    )
    raise _BadReturn(
        f"declares outputs {shown} but returned {got}; return a tuple or dict with exactly those"
    )


class _BadReturn(Exception):
    pass


def _store_outputs(task: StepTask, res: TaskResult, value: Any, store: Any) -> None:
    from featureline.pipelines.artifacts import tracked_metrics

    try:
        parts = _split(task, value)
    except _BadReturn as e:
        res.error = _error(task, f"it {e}.", error_type="ValidationError", retryable=False)
        return
    for name, obj in parts.items():
        try:
            ref = store.put(obj, hint=task.step.outputs.get(name))
        except ValidationError as e:
            what = f"output `{name}` is a `{_type_name(obj)}` that cannot be stored: {e}"
            res.error = _error(task, what, error_type="ValidationError", retryable=False)
            return
        except Exception as e:
            res.error = _error(
                task,
                f"storing output `{name}` failed: {type(e).__name__}: {e}",
                error_type=type(e).__name__,
            )
            return
        res.outputs[name] = ref
        numbers = tracked_metrics(name, obj)
        if numbers is not None:
            res.metrics.update(numbers)
        if isinstance(obj, (list, tuple)):
            res.lengths[name] = len(obj)
    res.ok = True


def _type_name(obj: object) -> str:
    t = type(obj)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def warm(modules: tuple[str, ...] = ()) -> int:
    """Import what steps need (called once per worker at start); returns the pid."""
    import importlib

    import featureline.pipelines.artifacts  # noqa: F401

    for m in modules:
        importlib.import_module(m)
    return os.getpid()


__all__ = ["execute_pickled", "execute_task", "store_for", "warm"]
