"""Run a pipeline: schedule its steps on an executor, with caching, retries, timeouts, logs.

    result = run(training, {"n": 1000}, executor="process")
    result.status                 # "succeeded" | "failed"
    result.statuses               # {"load": "succeeded", "train": "cached", "deploy": "skipped"}
    model = result.output("train", "model")

Semantics:
* A step's cache key is `cache_key(code_hash(fn), params, input artifact ids, env)` with env =
  Python major.minor and the Featureline version, plus what the step's `cache_key` function
  returns, if it declares one (`@step(cache_key=fn)`, called here before the lookup; if it
  raises, the step fails). A hit needs every cached output to still be in the artifact store
  (`exists`); otherwise the step runs again. `run(..., cache=False)` or `@step(cache=False)`
  skip the lookup (results are still recorded for later runs).
* A failed attempt is retried `retries` times, waiting `retry_backoff * 2**(n-1)` s. A timed
  out attempt counts as failed; a value that cannot be stored (unpicklable) is not retried.
* On a failure, independent branches run on; the failed step's dependants are "cancelled".
  `fail_fast=True` cancels everything not yet started (running steps finish).
* A false condition makes a step "skipped", and its dependants too.
* Everything is recorded in the metadata store (default: SQLite `<artifact_root>/metadata.db`):
  the run, each step (a mapped step's elements as `name[i]`), cache keys, inputs, outputs,
  metrics (any `Metrics` output, or a dict of numbers output as `metrics`; a cached step's
  too), log tails, attempts and lineage edges
  artifact -input-> step -output-> artifact. Full logs: `<artifact_root>/logs/<run_id>/`.
* `run` returns a `RunResult` whatever happened; `raise_for_status()` raises the first error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from featureline.errors import ConfigError, DefinitionError, NotFoundError, unknown
from featureline.pipelines._scheduler import OK, StepResult, _Run
from featureline.pipelines._types import value_matches
from featureline.pipelines.executors import (
    EXECUTORS,
    Executor,
    StepError,
    default_executor,
    make_executor,
)
from featureline.pipelines.graph import Graph


@dataclass
class RunResult:
    run_id: str
    pipeline: str
    status: str
    steps: dict[str, StepResult]
    duration: float
    artifact_root: str

    @property
    def statuses(self) -> dict[str, str]:
        return {k: s.status for k, s in self.steps.items()}

    @property
    def durations(self) -> dict[str, float]:
        return {k: s.duration for k, s in self.steps.items()}

    @property
    def outputs(self) -> dict[str, dict[str, Any]]:
        return {k: s.outputs for k, s in self.steps.items()}

    @property
    def errors(self) -> dict[str, StepError]:
        found = {k: s.error for k, s in self.steps.items() if s.error is not None}
        for s in self.steps.values():
            found.update({i.name: i.error for i in s.items if i.error is not None})
        return found

    def output(self, step: str, name: str | None = None) -> Any:
        """Load a step's output (a mapped step: the list of its elements' outputs)."""
        if step not in self.steps:
            raise NotFoundError(unknown("step", step, self.steps) + f" (run `{self.run_id}`)")
        res = self.steps[step]
        if res.status not in OK:
            why = res.reason or (res.error.message.splitlines()[0] if res.error else "")
            raise NotFoundError(
                f"step `{step}` has no outputs in run `{self.run_id}`: it {res.status}. {why}"
            )
        if not res.outputs:
            raise NotFoundError(f"step `{step}` has no outputs (it returns None).")
        if name is None:
            if len(res.outputs) != 1:
                raise NotFoundError(
                    f"step `{step}` has outputs {sorted(res.outputs)}; pass `name=`."
                )
            name = next(iter(res.outputs))
        if name not in res.outputs:
            raise NotFoundError(f"step `{step}`: " + unknown("output", name, res.outputs))
        from featureline.pipelines.executors._task import store_for

        ref, store = res.outputs[name], store_for(self.artifact_root)
        return [store.get(r) for r in ref] if isinstance(ref, list) else store.get(ref)

    def raise_for_status(self) -> RunResult:
        for err in self.errors.values():
            raise err
        return self


class Traced(Protocol):
    """A traced pipeline (a `dsl.Pipeline`): the runner needs only its graph. Structural, so
    that the runner never imports the DSL, whose `Pipeline.run` calls it."""

    @property
    def graph(self) -> Graph: ...


def default_artifact_root() -> Path:
    home = os.environ.get("FEATURELINE_HOME")
    return (Path(home).expanduser() if home else Path.cwd() / ".featureline") / "artifacts"


def run(
    pipeline: Traced | Graph,
    params: dict[str, Any] | None = None,
    *,
    executor: str | Executor = "process",
    cache: bool = True,
    artifact_root: str | os.PathLike[str] | None = None,
    metadata: Any = None,
    run_name: str | None = None,
    fail_fast: bool = False,
    tags: dict[str, Any] | None = None,
) -> RunResult:
    """Run `pipeline` with `params` on `executor` ("process", "inline", "ray" or an Executor)."""
    graph = pipeline if isinstance(pipeline, Graph) else pipeline.graph
    graph.validate()
    values = _resolve_params(graph, params)
    root = str(artifact_root) if artifact_root is not None else str(default_artifact_root())
    local = root.startswith("file://") or "://" not in root
    if local:
        root = str(Path(root.removeprefix("file://")).expanduser().resolve())
    local_dir = Path(root) if local else default_artifact_root()
    from featureline.pipelines.metadata import MetadataStore, open_metadata_store

    if metadata is None or isinstance(metadata, str | os.PathLike):
        where = str(local_dir / "metadata.db") if metadata is None else os.fspath(metadata)
        md, own_md = open_metadata_store(where, Path.cwd(), "default"), True
    elif isinstance(metadata, MetadataStore):
        md, own_md = metadata, False
    else:
        raise ConfigError(
            f"`metadata` must be a location or a MetadataStore, not `{type(metadata).__name__}`."
        )
    try:
        ex = _executor(executor)
        md.create_pipeline(graph.name, graph.to_spec())
        run_tags = {**(tags or {}), **({"run_name": run_name} if run_name else {})}
        run_id = md.create_run(graph.name, values, tags=run_tags)
        state = _Run(
            graph, values, ex, md, run_id, root, local_dir / "logs" / run_id, cache, fail_fast
        )
        status, results, duration = state.execute()
        return RunResult(run_id, graph.name, status, results, duration, root)
    finally:
        if own_md:
            md.close()


def _executor(spec: Any) -> Executor:
    if isinstance(spec, str):
        if spec == "inline":
            return make_executor("inline")
        if spec in EXECUTORS:
            return default_executor(spec)
        raise ConfigError(unknown("executor", spec, EXECUTORS) + " Or pass an Executor instance.")
    if isinstance(spec, Executor):
        spec.start()
        return spec
    raise ConfigError(f"`executor` must be one of {EXECUTORS} or an Executor, not `{spec!r}`.")


def _resolve_params(graph: Graph, given: dict[str, Any] | None) -> dict[str, Any]:
    given = dict(given or {})
    problems = [unknown("parameter", k, graph.params) for k in given if k not in graph.params]
    values: dict[str, Any] = {}
    for p in graph.params.values():
        if p.name in given:
            values[p.name] = given[p.name]
            if not value_matches(given[p.name], p.annotation):
                problems.append(
                    f"parameter `{p.name}` expects `{p.annotation}` but got `{given[p.name]!r}`."
                )
        elif p.required:
            problems.append(f"parameter `{p.name}` is required. Fix: pass it in `params`.")
        else:
            values[p.name] = p.default
    if problems:
        raise DefinitionError.from_problems(problems, what=f"parameters of pipeline `{graph.name}`")
    return values


__all__ = ["RunResult", "StepResult", "default_artifact_root", "run"]
