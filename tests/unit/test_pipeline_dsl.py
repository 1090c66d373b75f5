"""The pipeline DSL and graph: tracing, validation (every problem at once), spec; plus runs
that need a real worker pool (SIGKILL, hard timeouts, unpicklable steps)."""

from __future__ import annotations

import json
import os
import pickle
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pytest

from featureline.errors import ConfigError, DefinitionError
from featureline.pipelines.artifacts import Metrics
from featureline.pipelines.dsl import Pipeline, Step, pipeline, step, when
from featureline.pipelines.executors.process import ProcessExecutor
from featureline.pipelines.executors.ray import ray_options
from featureline.pipelines.graph import Const, Graph, Node, OutputRef, ParamRef, PipelineParam
from featureline.pipelines.runner import run


@step
def load(n: int) -> pa.Table:
    return pa.table({"x": list(range(n))})


@step
def count(t: pa.Table) -> int:
    return t.num_rows


@step
def scale(x: int, factor: float = 2.0) -> float:
    return x * factor


class Split(NamedTuple):
    train: pa.Table
    test: pa.Table


@step
def split(t: pa.Table) -> Split:
    return Split(t.slice(0, 1), t.slice(1))


@step(outputs=("model", "metrics"), retries=1, timeout=5, resources={"num_cpus": 1})
def train(t: pa.Table, lr: float = 0.1) -> tuple[str, Metrics]:
    return f"model-{lr}", Metrics(rows=t.num_rows)


@step
def never_called(x: int) -> int:
    raise AssertionError("steps must not run while a pipeline is being defined")


@step
def slow_square(x: int) -> int:
    time.sleep(1.0)
    return x * x


@step
def kill_self(x: int) -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return x


@step(timeout=0.5)
def stubborn(x: int) -> int:
    signal.signal(signal.SIGALRM, signal.SIG_IGN)  # the soft interrupt can't reach it
    time.sleep(30)
    return x


@pipeline
def bystander(n: int = 3) -> None:
    slow_square(n)
    kill_self(n)


@pipeline
def hung(n: int = 1) -> None:
    stubborn(n)


# ---- steps and tracing ------------------------------------------------------------------------


def test_step_is_usable_bare_and_with_options_and_callable_outside_pipelines() -> None:
    assert isinstance(load, Step) and load.name == "load" and load.output_names == ("output",)
    assert count(load(3)) == 3 and scale.map(items=[1, 2], factor=3) == [3, 6]
    assert train.output_names == ("model", "metrics") and train.options.retries == 1
    assert split.output_names == ("train", "test") and split.outputs["test"] is pa.Table
    assert load.inputs["n"].required and not scale.inputs["factor"].required


def test_step_option_problems_are_reported_together() -> None:
    with pytest.raises(DefinitionError) as info:

        @step(
            retries=-1,
            timeout=0,
            retry_backoff=-2,
            resources={"num_gpus": "many"},
            outputs=("a", "a"),
        )
        def bad(x: int) -> int:
            return x

    assert len(info.value.problems) == 5
    for needle in ("retries", "timeout", "retry_backoff", "num_gpus", "outputs"):
        assert needle in str(info.value)


def test_tracing_records_nodes_without_running_steps() -> None:
    @pipeline
    def p(n: int = 3, lr: float = 0.5) -> None:
        t = load(n)
        parts = split(t)
        _model, _metrics = train(parts.output("train"), lr=lr)
        never_called.map(items=[1, 2])
        count(parts["test"])
        with when(count(t) > 2):
            never_called(5)

    assert isinstance(p, Pipeline) and p.params["lr"].default == 0.5
    g = p.graph
    assert g.names == [
        "load",
        "split",
        "train",
        "never_called",
        "count",
        "count_2",
        "never_called_2",
    ]
    assert g.node("train").inputs == {"t": OutputRef("split", "train"), "lr": ParamRef("lr")}
    assert g.node("never_called").map_over == "x"
    assert g.node("never_called_2").conditions[0].describe() == "`count_2` > 2"
    assert g.topological_order().index("count_2") < g.topological_order().index("never_called_2")
    spec = g.to_spec()
    assert json.loads(json.dumps(spec)) == spec and spec["params"]["n"]["default"] == 3
    assert spec["nodes"][2]["outputs"] == {"model": "str", "metrics": "Metrics"}


def test_all_validation_problems_are_reported_at_once() -> None:
    other_load = Step(lambda n: n, name="load")
    with pytest.raises(DefinitionError) as info:

        @pipeline
        def broken(n: int = 3) -> None:
            t = load(n)
            scale(t)  # a table where an int is expected
            count()  # missing input
            scale(1, facter=2)  # unknown parameter
            other_load(n)  # duplicate step name
            train(t).output("weights")  # unknown output
            count(train(t))  # several outputs, none picked
            scale("seven")  # a literal of the wrong type
            scale.map(items=count(t))  # fan-out over an int

    problems = info.value.problems
    text = str(info.value)
    assert len(problems) == 8, text
    assert (
        "type mismatch: step `scale` input `x` expects `int` but step `load` output `output` is `pyarrow.Table`"
        in text
    )
    assert "missing required input `t`" in text
    assert "Unknown parameter `facter`. Did you mean `factor`?" in text
    assert "duplicate step name `load`" in text
    assert "no output `weights`" in text and "pick one with `.output('model')`" in text
    assert "'seven'" in text and "not a list" in text


def test_hand_built_graph_cycle_and_unknown_refs() -> None:
    g = Graph(
        "hand",
        {"n": PipelineParam("n", int, 1)},
        [
            Node("a", never_called, {"x": OutputRef("b")}),
            Node("b", never_called, {"x": OutputRef("a")}),
            Node("c", scale, {"x": ParamRef("m")}),
            Node("d", scale, {"x": OutputRef("zz")}),
            Node("e", scale, {"x": Const(1)}),
        ],
    )
    with pytest.raises(DefinitionError) as info:
        g.validate()
    text = str(info.value)
    assert len(info.value.problems) == 3, text
    assert "cycle: `a` → `b` → `a`" in text or "cycle: `b` → `a` → `b`" in text
    assert "Unknown pipeline parameter `m`. Valid: `n`." in text and "Unknown step `zz`" in text


def test_handles_have_no_value_at_definition_time() -> None:
    with pytest.raises(DefinitionError, match="with when"):

        @pipeline
        def p(n: int = 1) -> None:
            if count(load(n)) > 3:
                load(n)

    with pytest.raises(DefinitionError, match="inside a @pipeline"), when(load):
        pass
    with pytest.raises(DefinitionError, match=r"\.run\("):
        bystander()


def test_with_options_gives_a_distinct_node_and_pickles_by_reference() -> None:
    fast = scale.with_options(name="scale_fast", retries=3)

    @pipeline
    def p(n: int = 1) -> None:
        scale(n)
        fast(n)
        scale(n)

    assert p.graph.names == ["scale", "scale_fast", "scale_2"]
    assert fast.options.retries == 3 and scale.options.retries == 0
    assert pickle.loads(pickle.dumps(scale)) is scale


def test_run_parameter_problems_are_reported_together(tmp_path: Path) -> None:
    @pipeline
    def p(n: int, lr: float = 0.1) -> None:
        scale(n, lr)

    with pytest.raises(DefinitionError) as info:
        run(p, {"lrr": 1.0}, executor="inline", artifact_root=tmp_path)
    assert len(info.value.problems) == 2 and "Did you mean `lr`?" in str(info.value)
    with pytest.raises(DefinitionError, match="expects"):
        run(p, {"n": "three"}, executor="inline", artifact_root=tmp_path)
    with pytest.raises(ConfigError, match="Did you mean `inline`"):
        run(p, {"n": 1}, executor="inlin", artifact_root=tmp_path)


def test_a_step_with_cache_false_always_runs(tmp_path: Path) -> None:
    uncached = scale.with_options(name="uncached", cache=False)

    @pipeline
    def p(n: int = 2) -> None:
        scale(n)
        uncached(n)

    first = p.run({"n": 2}, executor="inline", artifact_root=tmp_path)
    again = p.run({"n": 2}, executor="inline", artifact_root=tmp_path)
    assert first.statuses == {"scale": "succeeded", "uncached": "succeeded"}
    assert again.statuses == {"scale": "cached", "uncached": "succeeded"}
    assert again.output("uncached") == 4.0


def test_step_resources_map_to_ray_task_options() -> None:
    assert ray_options({}) == {"num_cpus": 1}
    got = ray_options({"num_cpus": 2, "num_gpus": 0.5, "memory": 1e9, "tpu": 1})
    assert got == {
        "num_cpus": 2,
        "num_gpus": 0.5,
        "memory": 1_000_000_000,
        "resources": {"tpu": 1.0},
    }


def test_default_artifact_root_follows_featureline_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEATURELINE_HOME", str(tmp_path / "home"))
    r = run(Graph("one", {}, [Node("s", scale, {"x": Const(2)})]), executor="inline")
    assert r.output("s") == 4.0 and r.artifact_root == str(tmp_path / "home" / "artifacts")
    assert (tmp_path / "home" / "artifacts" / "metadata.db").exists()


# ---- the process executor under crashes ---------------------------------------------------


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessExecutor]:
    ex = ProcessExecutor(max_workers=2, timeout_grace=0.5)
    ex.start()
    yield ex
    ex.shutdown()


def test_sigkill_fails_only_the_killed_step_and_rebuilds_the_pool(
    pool: ProcessExecutor, tmp_path: Path
) -> None:
    before = pool.worker_pids()
    r = run(bystander, {"n": 3}, executor=pool, artifact_root=tmp_path)
    assert r.statuses == {"slow_square": "succeeded", "kill_self": "failed"}
    assert r.output("slow_square") == 9 and r.steps["slow_square"].attempts == 1
    text = str(r.errors["kill_self"])
    assert "`kill_self`" in text and "died" in text and "SIGKILL" in text and r.run_id in text
    assert set(pool.worker_pids()).isdisjoint(before)


def test_a_step_that_ignores_the_soft_timeout_is_killed(
    pool: ProcessExecutor, tmp_path: Path
) -> None:
    t0 = time.monotonic()
    r = run(hung, executor=pool, artifact_root=tmp_path)
    assert time.monotonic() - t0 < 10
    assert r.status == "failed" and "timed out after 0.5 s (its worker was killed)" in str(
        r.errors["stubborn"]
    )
    assert (
        run(
            Graph("after", {}, [Node("s", scale, {"x": Const(3)})]),
            executor=pool,
            artifact_root=tmp_path,
        ).output("s")
        == 6.0
    )


def test_a_step_defined_in_a_function_runs_on_the_process_executor(
    pool: ProcessExecutor, tmp_path: Path
) -> None:
    offset = 10

    @step
    def local(x: int) -> int:  # shipped by value, with what it closes over
        return x + offset

    @pipeline
    def p(n: int = 1) -> None:
        local(n)

    r = run(p, executor=pool, artifact_root=tmp_path)
    assert r.status == "succeeded", r.errors
    assert r.output("local") == 11
    assert run(p, executor="inline", artifact_root=tmp_path).statuses["local"] == "cached"


def test_a_step_closing_over_an_unpicklable_value_fails_clearly(
    pool: ProcessExecutor, tmp_path: Path
) -> None:
    import threading

    lock = threading.Lock()

    @step
    def locked(x: int) -> int:
        with lock:
            return x

    @pipeline
    def p(n: int = 1) -> None:
        locked(n)

    r = run(p, executor=pool, artifact_root=tmp_path)
    text = str(r.errors["locked"])
    assert r.status == "failed" and "lock" in text and "picklable" in text and "inline" in text
    assert r.steps["locked"].attempts == 1
    assert run(p, executor="inline", artifact_root=tmp_path).output("locked") == 1


# ---- cache_key functions ------------------------------------------------------------------------


def test_cache_key_function_must_name_inputs_of_the_step() -> None:
    def key(n: int, missing: str, **rest: int) -> int:
        return n

    with pytest.raises(DefinitionError) as info:
        step(cache_key=key)(scale.fn)
    text = str(info.value)
    assert (
        len(info.value.problems) == 3
        and "`n` is not an input" in text
        and "`missing`" in text
        and "**kwargs" in text
    )
    assert step(cache_key=lambda x: x)(scale.fn).cache_key_inputs == ("x",)


def test_cache_key_function_decides_reuse_and_its_failure_fails_the_step(tmp_path: Path) -> None:
    world = {"version": 1}

    def key(x: int, factor: float = 2.0) -> dict[str, float]:
        if world["version"] < 0:
            raise RuntimeError("cannot reach the world")
        return {"version": world["version"], "factor": factor}

    keyed = scale.with_options(name="keyed")
    keyed = Step(scale.fn, "keyed", keyed.options, None, key)

    @pipeline
    def p(n: int = 2) -> None:
        keyed(n)

    assert p.run(executor="inline", artifact_root=tmp_path).statuses == {"keyed": "succeeded"}
    assert p.run(executor="inline", artifact_root=tmp_path).statuses == {"keyed": "cached"}
    world["version"] = 2
    again = p.run(executor="inline", artifact_root=tmp_path)
    assert again.statuses == {"keyed": "succeeded"} and again.output("keyed") == 4.0
    assert pickle.loads(pickle.dumps(keyed)).cache_key(3) == {"version": 2, "factor": 2.0}
    world["version"] = -1
    bad = p.run(executor="inline", artifact_root=tmp_path)
    assert (
        bad.status == "failed"
        and "cache_key function failed: RuntimeError: cannot reach the world"
        in str(bad.errors["keyed"])
    )
