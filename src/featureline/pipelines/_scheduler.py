"""The scheduling loop behind `runner.run`: one `_Run` per pipeline run, in the caller's thread.

It walks the graph in topological order; a node whose upstream nodes have all settled is
resolved (conditions evaluated, inputs bound to artifact refs or values, a mapped node
expanded into one task per element), looked up in the cache, or queued. Queued tasks are
submitted while the executor has free slots; the loop then waits for the first completion,
a retry timer or a timeout deadline, whichever is first. All metadata is written here.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import sys
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featureline.errors import StepError, ValidationError, WorkerCrashedError
from featureline.pipelines.executors.base import (
    Executor,
    ItemOf,
    StepTask,
    TaskResult,
)
from featureline.pipelines.graph import Const, Graph, Node, OutputRef, ParamRef, Source

log = logging.getLogger("featureline.pipelines")
OK = ("succeeded", "cached")
LOG_TAIL = 64_000


@dataclass
class StepResult:
    name: str
    status: str = "pending"
    attempts: int = 0
    duration: float = 0.0
    outputs: dict[str, Any] = field(default_factory=dict)
    error: StepError | None = None
    reason: str = ""
    log_path: str | None = None
    cache_key: str | None = None
    items: list[StepResult] = field(default_factory=list)


@dataclass(eq=False)
class _Job:
    node: Node
    res: StepResult
    task: StepTask
    key: str
    started: float = 0.0
    deadline: float | None = None


class _Run:
    def __init__(
        self,
        graph: Graph,
        values: dict[str, Any],
        ex: Executor,
        md: Any,
        run_id: str,
        root: str,
        log_dir: Path,
        cache: bool,
        fail_fast: bool,
    ) -> None:
        from featureline import __version__
        from featureline.pipelines.executors._task import store_for

        self.graph, self.values, self.ex, self.md, self.run_id = graph, values, ex, md, run_id
        self.root, self.log_dir, self.cache, self.fail_fast = root, log_dir, cache, fail_fast
        self.store = store_for(root)
        self.env = {
            "python": f"{sys.version_info[0]}.{sys.version_info[1]}",
            "featureline": __version__,
        }
        self.nodes = {n.name: n for n in graph.nodes}
        self.results = {n.name: StepResult(n.name) for n in graph.nodes}
        self.pending = graph.topological_order()
        self.ready: deque[_Job] = deque()
        self.timers: list[tuple[float, int, _Job]] = []
        self.running: dict[Future[TaskResult], _Job] = {}
        self.left: dict[str, int] = {}
        self.node_start: dict[str, float] = {}
        self.lengths: dict[tuple[str, str], int] = {}
        self.hashes: dict[int, str] = {}
        self.stopping = False
        self._seq = itertools.count()

    def execute(self) -> tuple[str, dict[str, StepResult], float]:
        t0 = time.monotonic()
        status, error = "failed", None
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._loop()
            failed = [r for r in self.results.values() if r.status == "failed"]
            status = "failed" if failed else "succeeded"
            error = "\n".join(f"step `{r.name}` failed" for r in failed) or None
        except BaseException as e:
            status = "cancelled" if isinstance(e, KeyboardInterrupt) else "failed"
            error = f"the runner stopped: {type(e).__name__}: {e}"
            for fut in list(self.running):
                self.ex.kill(fut)
            raise
        finally:
            self.md.finish_run(self.run_id, status, error)
        if status != "succeeded":
            log.warning("run %s of pipeline %s %s: %s", self.run_id, self.graph.name, status, error)
        return status, self.results, time.monotonic() - t0

    def _loop(self) -> None:
        grace = float(getattr(self.ex, "timeout_grace", 2.0))
        while True:
            self._schedule()
            now = time.monotonic()
            while self.timers and (self.timers[0][0] <= now or self.stopping):
                self.ready.append(heapq.heappop(self.timers)[2])
            while self.ready and len(self.running) < self.ex.capabilities.max_parallel:
                job = self.ready.popleft()
                if self.stopping:
                    self._fail(job, "cancelled", None, "fail_fast: another step failed")
                else:
                    self._submit(job, grace)
            if not self.running and not self.ready and not self.timers:
                self._schedule()  # attempts that failed at submission may have settled nodes
                if not self.ready:
                    if self.pending:  # pragma: no cover - a scheduler bug, never a user error
                        raise RuntimeError(f"steps {self.pending} can never start")
                    return
                continue
            waits = [t[0] for t in self.timers[:1]] + [
                j.deadline for j in self.running.values() if j.deadline
            ]
            timeout = max(0.0, min(waits) - time.monotonic()) if waits else None
            if not self.running:
                time.sleep(timeout or 0.0)
                continue
            done, _ = wait(list(self.running), timeout=timeout, return_when=FIRST_COMPLETED)
            for fut in done:
                self._completed(fut)
            now = time.monotonic()
            for fut, job in list(self.running.items()):
                if job.deadline is not None and now >= job.deadline:
                    del self.running[fut]
                    self.ex.kill(fut)
                    how = (
                        "its worker was killed"
                        if self.ex.capabilities.kill
                        else "abandoned: this executor cannot stop it"
                    )
                    self._attempt_failed(
                        job, self._error(job, f"timed out after {job.task.timeout:g} s ({how})")
                    )

    # ---- nodes --------------------------------------------------------------------------

    def _schedule(self) -> None:
        still: list[str] = []
        for name in self.pending:
            node, res = self.nodes[name], self.results[name]
            ups = [self.results[u].status for u in node.upstream()]
            if self.stopping:
                self._finish_node(node, "cancelled", "fail_fast: another step failed", record=True)
            elif any(
                s not in ("succeeded", "cached", "failed", "skipped", "cancelled") for s in ups
            ):
                still.append(name)
            elif bad := [
                u for u in node.upstream() if self.results[u].status in ("failed", "cancelled")
            ]:
                self._finish_node(
                    node,
                    "cancelled",
                    f"upstream step `{bad[0]}` {self.results[bad[0]].status}",
                    record=True,
                )
            elif skip := [u for u in node.upstream() if self.results[u].status == "skipped"]:
                self._finish_node(
                    node, "skipped", f"upstream step `{skip[0]}` was skipped", record=True
                )
            else:
                self.node_start[name] = time.monotonic()
                try:
                    false = next((c for c in node.conditions if not self._holds(c)), None)
                    items = None if false is not None else self._bind(node)
                except Exception as e:
                    what = f"could not evaluate its conditions or bind its inputs: {type(e).__name__}: {e}"
                    res.error = StepError.build(what, step=name, run_id=self.run_id, inputs={})
                    self._finish_node(node, "failed", "", record=True)
                    continue
                if false is not None:
                    self._finish_node(
                        node, "skipped", f"condition `{false.describe()}` is false", record=True
                    )
                elif items is not None:
                    self._start(node, items)
        self.pending = still

    def _holds(self, c: Any) -> bool:
        right = self._value(c.right) if isinstance(c.right, Source) else c.right
        return bool(c.evaluate(self._value(c.left), right))

    def _value(self, src: Source) -> Any:
        if isinstance(src, Const):
            return src.value
        if isinstance(src, ParamRef):
            return self.values[src.name]
        ref = self._ref(src)
        return [self.store.get(r) for r in ref] if isinstance(ref, list) else self.store.get(ref)

    def _ref(self, src: OutputRef) -> Any:
        outs = self.results[src.node].outputs
        return outs[src.output or self.nodes[src.node].step.output_names[0]]

    def _bind(self, node: Node) -> list[tuple[str, dict[str, Any], dict[str, Any], dict[str, str]]]:
        params: dict[str, Any] = {}
        arts: dict[str, Any] = {}
        ids: dict[str, str] = {}
        for pname, src in node.inputs.items():
            if pname == node.map_over:
                continue
            if isinstance(src, OutputRef):
                ref = self._ref(src)
                arts[pname] = ref
                ids[pname] = ",".join(r.id for r in ref) if isinstance(ref, list) else ref.id
            else:
                params[pname] = self._value(src)
        if node.map_over is None:
            return [(node.name, params, arts, ids)]
        over, src = node.map_over, node.inputs[node.map_over]
        items: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, str]]] = []
        if not isinstance(src, OutputRef):
            elems = self._value(src)
            if not isinstance(elems, (list, tuple)):
                raise ValidationError(
                    f"it maps over `{over}`, but got `{type(elems).__name__}`, not a list"
                )
            for i, v in enumerate(elems):
                items.append((f"{node.name}[{i}]", {**params, over: v}, arts, ids))
            return items
        ref = self._ref(src)
        if isinstance(ref, list):
            elems_refs: list[tuple[Any, str]] = [(r, r.id) for r in ref]
        else:
            out = src.output or self.nodes[src.node].step.output_names[0]
            n = self.lengths.get((src.node, out))
            n = len(self.store.get(ref)) if n is None else n
            elems_refs = [(ItemOf(ref, i), f"{ref.id}[{i}]") for i in range(n)]
        for i, (a, id_) in enumerate(elems_refs):
            items.append((f"{node.name}[{i}]", params, {**arts, over: a}, {**ids, over: id_}))
        return items

    def _start(
        self, node: Node, items: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, str]]]
    ) -> None:
        res = self.results[node.name]
        mapped = node.map_over is not None
        if mapped:
            res.items = [StepResult(name) for name, *_ in items]
            self.left[node.name] = len(items)
            if not items:
                res.outputs = {o: [] for o in node.step.output_names}
                self._finish_node(node, "succeeded", "", record=True)
        for (name, params, arts, ids), item in zip(
            items, res.items if mapped else [res], strict=True
        ):
            step = node.step
            task = StepTask(
                self.run_id,
                name,
                step,
                params,
                arts,
                ids,
                self.root,
                str(self.log_dir / f"{name}.log"),
                timeout=step.options.timeout,
            )
            job = _Job(node, item, task, "", started=time.monotonic())
            item.log_path = task.log_path
            try:
                extra = self._extra_key(step, params, arts)
            except Exception as e:
                self.md.start_step(self.run_id, name, "", ids)
                what = f"its cache_key function failed: {type(e).__name__}: {e}"
                self._fail(job, "failed", self._error(job, what, retryable=False), "")
                continue
            job.key = item.cache_key = key = self._key(step, params, ids, extra)
            self.md.start_step(self.run_id, name, key, ids)
            hit = self.md.find_cached(key) if key and self.cache and step.options.cache else None
            if (
                hit is not None
                and set(hit) == set(step.output_names)
                and all(self.store.exists(r) for r in hit.values())
            ):
                item.status, item.outputs = "cached", hit
                item.duration = time.monotonic() - job.started
                self.md.finish_step(
                    self.run_id, name, "cached", hit, self._metrics_of(hit), None, None, 0
                )
                self._lineage(job)
                self._job_done(job)
            else:
                self.ready.append(job)

    def _key(self, step: Any, params: dict[str, Any], ids: dict[str, str], extra: Any) -> str:
        from featureline.pipelines.cache import cache_key, code_hash

        code = self.hashes.get(id(step))
        if code is None:
            code = code_hash(step.fn)
            if step.cache_key is not None:  # its code is part of what the key means
                code = f"{code}+{code_hash(step.cache_key)}"
            self.hashes[id(step)] = code
        try:
            return cache_key(code, params, ids, self.env, extra)
        except ValidationError:
            return ""  # a param without a stable identity: this step is never cached

    def _extra_key(self, step: Any, params: dict[str, Any], arts: dict[str, Any]) -> Any:
        """What the step's `cache_key` function says about this run (None without one)."""
        if step.cache_key is None:
            return None
        from featureline.pipelines.graph import REQUIRED

        kwargs: dict[str, Any] = {}
        for name in step.cache_key_inputs:
            if name in params:
                kwargs[name] = params[name]
            elif name in arts:
                a = arts[name]
                kwargs[name] = (
                    self.store.get(a.ref)[a.index]
                    if isinstance(a, ItemOf)
                    else [self.store.get(r) for r in a]
                    if isinstance(a, list)
                    else self.store.get(a)
                )
            elif step.inputs[name].default is not REQUIRED:
                kwargs[name] = step.inputs[name].default
        return {"cache_key": step.cache_key(**kwargs)}

    def _metrics_of(self, outputs: dict[str, Any]) -> dict[str, float] | None:
        """The metrics a cached step's outputs hold, recorded on this run as if it had run."""
        from featureline.pipelines.artifacts import METRICS_OUTPUT, tracked_metrics

        found: dict[str, float] = {}
        for name, ref in outputs.items():
            if ref.materializer == "featureline.metrics" or (
                name == METRICS_OUTPUT and ref.kind == "json"
            ):
                found.update(tracked_metrics(name, self.store.get(ref)) or {})
        return found or None

    def _finish_node(self, node: Node, status: str, reason: str, *, record: bool) -> None:
        res = self.results[node.name]
        res.status, res.reason = status, reason
        if node.name in self.node_start:
            res.duration = time.monotonic() - self.node_start[node.name]
        if record:
            err = reason or (res.error.message if res.error else None)
            self.md.start_step(self.run_id, node.name, res.cache_key or "", {})
            refs = (
                {k: v for k, v in res.outputs.items() if not isinstance(v, list)}
                if status in OK
                else {}
            )
            self.md.finish_step(self.run_id, node.name, status, refs, None, err, None, res.attempts)
        if status == "failed" and self.fail_fast:
            self.stopping = True

    # ---- attempts -----------------------------------------------------------------------

    def _submit(self, job: _Job, grace: float) -> None:
        job.res.attempts += 1
        job.task.attempt = job.res.attempts
        if job.res.attempts > 1:
            self.md.start_step(self.run_id, job.task.name, job.key, job.task.input_ids)
        try:
            fut = self.ex.submit(job.task)
        except Exception as e:
            what = f"could not be submitted: {type(e).__name__}: {e}.{_pickle_hint(e)}"
            self._attempt_failed(job, self._error(job, what, retryable=False))
            return
        t = job.task.timeout
        job.deadline = (
            time.monotonic() + t + (grace if self.ex.capabilities.kill else 0.0) if t else None
        )
        self.running[fut] = job

    def _completed(self, fut: Future[TaskResult]) -> None:
        job = self.running.pop(fut)
        try:
            r = fut.result()
        except WorkerCrashedError as e:
            self._attempt_failed(job, self._error(job, str(e)))
            return
        except Exception as e:
            self._attempt_failed(
                job,
                self._error(
                    job,
                    f"could not run: {type(e).__name__}: {e}.{_pickle_hint(e)}",
                    retryable=False,
                ),
            )
            return
        if not r.ok:
            self._attempt_failed(job, r.error or self._error(job, "failed"))
            return
        job.res.status, job.res.outputs = "succeeded", dict(r.outputs)
        job.res.duration = time.monotonic() - job.started
        for out, n in r.lengths.items():
            self.lengths[(job.node.name, out)] = n
        self.md.finish_step(
            self.run_id,
            job.task.name,
            "succeeded",
            r.outputs,
            r.metrics or None,
            None,
            self._log_text(job),
            job.res.attempts,
        )
        self._lineage(job)
        self._job_done(job)

    def _error(self, job: _Job, what: str, retryable: bool = True) -> StepError:
        return StepError.build(
            what,
            step=job.task.name,
            run_id=self.run_id,
            inputs=job.task.input_ids,
            retryable=retryable,
        )

    def _attempt_failed(self, job: _Job, err: StepError) -> None:
        n = job.res.attempts
        if err.retryable and n <= job.node.step.options.retries and not self.stopping:
            delay = job.node.step.options.retry_backoff * 2 ** (n - 1)
            log.info(
                "step %s attempt %d failed; retrying in %.2fs: %s",
                job.task.name,
                n,
                delay,
                err.message.splitlines()[0],
            )
            heapq.heappush(self.timers, (time.monotonic() + delay, next(self._seq), job))
            return
        self._fail(job, "failed", err, "")

    def _fail(self, job: _Job, status: str, err: StepError | None, reason: str) -> None:
        job.res.status, job.res.error, job.res.reason = status, err, reason
        job.res.duration = time.monotonic() - job.started
        text = err.message if err else reason
        self.md.finish_step(
            self.run_id,
            job.task.name,
            status,
            {},
            None,
            text,
            self._log_text(job),
            job.res.attempts,
        )
        self._job_done(job)
        if status == "failed" and self.fail_fast:
            self.stopping = True

    def _job_done(self, job: _Job) -> None:
        node = job.node
        if node.map_over is None:
            return
        self.left[node.name] -= 1
        if self.left[node.name]:
            return
        res = self.results[node.name]
        statuses = [i.status for i in res.items]
        res.attempts = max(i.attempts for i in res.items)
        bad = next((s for s in ("failed", "cancelled") if s in statuses), None)
        if bad:
            first = next(i for i in res.items if i.status == bad)
            res.error = first.error
            self._finish_node(node, bad, f"element `{first.name}` {bad}", record=False)
            return
        res.outputs = {o: [i.outputs[o] for i in res.items] for o in node.step.output_names}
        self._finish_node(
            node,
            "cached" if all(s == "cached" for s in statuses) else "succeeded",
            "",
            record=False,
        )

    def _lineage(self, job: _Job) -> None:
        step_id = f"{self.run_id}/{job.task.name}"
        for a in job.task.artifacts.values():
            refs = a if isinstance(a, list) else [a.ref if isinstance(a, ItemOf) else a]
            for r in refs:
                self.md.add_lineage("artifact", r.id, "step", step_id, "input")
        for r in job.res.outputs.values():
            self.md.add_lineage("step", step_id, "artifact", r.id, "output")

    def _log_text(self, job: _Job) -> str | None:
        path = job.task.log_path
        try:
            with open(path, "rb") as f:
                f.seek(max(0, os.path.getsize(path) - LOG_TAIL))
                return f"[log file: {path}]\n" + f.read().decode("utf-8", "replace")
        except OSError:
            return None


def _pickle_hint(e: BaseException) -> str:
    if "pickle" not in f"{type(e).__name__} {e}".lower():
        return ""
    return (
        " Fix: pass picklable values and keep unpicklable objects (locks, connections, open"
        " files) out of the step's inputs and of what its code refers to, or use executor='inline'."
    )


__all__ = ["OK", "StepResult"]
