"""The contract every pipeline `Executor` passes.

Subclass `ExecutorContract` in a test module and override the `executor` fixture so it returns
a started executor (share one per module: pools and Ray are slow to start)::

    @pytest.fixture(scope="module")
    def pool():
        with ProcessExecutor(max_workers=2) as ex:
            yield ex

    class TestProcessExecutor(ExecutorContract):
        @pytest.fixture
        def executor(self, pool):
            return pool

The steps and pipelines live in `_executor_steps` at module level, so that worker processes
(and Ray workers) import them by reference; a step made in a function (like one of `__main__`)
travels by value. Tests that need a crash-proof executor (SIGKILL) run only when
`capabilities.isolation` is declared.
"""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from featureline.pipelines.dsl import pipeline, step
from featureline.pipelines.executors import Executor, StepError
from featureline.pipelines.metadata import open_metadata_store
from featureline.pipelines.runner import RunResult, run
from featureline.testing._executor_steps import (
    bad_return,
    crash_always,
    crash_once,
    failing,
    fan,
    gated,
    linear,
    logging_pipe,
    retrying,
    slow,
    typed,
)

# ---- the contract ---------------------------------------------------------------------------


class ExecutorContract:
    """Override `executor`; every test gets its own artifact root (and so its own cache)."""

    @pytest.fixture
    def executor(self) -> Executor:
        raise NotImplementedError("override the `executor` fixture")

    @pytest.fixture
    def root(self, tmp_path: Path) -> Path:
        return tmp_path / "artifacts"

    def run(
        self,
        executor: Executor,
        p: Any,
        root: Path,
        params: dict[str, Any] | None = None,
        **kw: Any,
    ) -> RunResult:
        return run(p, params, executor=executor, artifact_root=root, **kw)

    def test_capabilities_are_declared(self, executor: Executor) -> None:
        caps = executor.capabilities
        assert isinstance(executor, Executor)
        assert caps.max_parallel >= 1 and caps.capture in ("fd", "sys")
        if not caps.parallel:
            assert caps.max_parallel == 1

    def test_linear_pipeline(self, executor: Executor, root: Path) -> None:
        r = self.run(executor, linear, root, {"n": 5})
        assert r.status == "succeeded", r.errors
        assert r.statuses == {
            "make_table": "succeeded",
            "double": "succeeded",
            "table_sum": "succeeded",
        }
        assert r.output("table_sum") == 20
        assert r.output("double").column("x").to_pylist() == [0, 2, 4, 6, 8]
        assert all(d >= 0 for d in r.durations.values())
        md = open_metadata_store(str(root / "metadata.db"), root, "default")
        try:
            got = md.get_run(r.run_id)
            assert got["status"] == "succeeded"
            assert {s["step"] for s in got["steps"]} == {"make_table", "double", "table_sum"}
            ref = r.steps["double"].outputs["output"]
            up = md.lineage("artifact", ref.id, "up", 2)
            assert {(e["src_kind"], e["relation"]) for e in up} >= {
                ("step", "output"),
                ("artifact", "input"),
            }
        finally:
            md.close()

    def test_fan_out_and_collect(self, executor: Executor, root: Path) -> None:
        r = self.run(executor, fan, root, {"n": 5})
        assert r.status == "succeeded", r.errors
        assert r.output("square") == [0, 1, 4, 9, 16]
        assert r.output("add_all") == 30
        assert r.output("label") == ["sq0", "sq1", "sq4", "sq9", "sq16"]
        assert r.output("add_all_2") == 61
        assert r.output("evaluate") == {"score": 0.3}
        assert [i.name for i in r.steps["square"].items] == [f"square[{i}]" for i in range(5)]
        empty = self.run(executor, fan, root, {"n": 0})
        assert empty.status == "succeeded" and empty.output("add_all") == 0

    def test_multiple_outputs_files_and_arrays(
        self, executor: Executor, root: Path, tmp_path: Path
    ) -> None:
        r = self.run(executor, typed, root, {"folder": str(tmp_path / "notes"), "n": 5})
        assert r.status == "succeeded", r.errors
        assert r.output("bounds", "lo") == 0 and r.output("label") == "hi4"
        assert r.output("parity", "evens") == [0, 2, 4] and r.output("add_all") == 4
        note = r.output("write_note")
        assert isinstance(note, Path) and note.read_text() == "a note" and note.is_relative_to(root)
        assert r.output("read_note") == "a note" and r.output("array_sum") == 10.0
        assert r.output("as_array").dtype == np.float64

    def test_condition_skips_step_and_its_dependants(self, executor: Executor, root: Path) -> None:
        r = self.run(executor, gated, root, {"n": 4})
        assert r.status == "succeeded", r.errors
        s = r.statuses
        assert s["square"] == "skipped" and s["label"] == "skipped"
        assert s["label_2"] == "succeeded" and r.output("label_2") == "small6"
        assert s["label_3"] == "skipped"
        assert "condition" in r.steps["square"].reason and "upstream" in r.steps["label"].reason
        r2 = self.run(executor, gated, root, {"n": 20, "deploy": True})
        assert r2.output("label") == f"big{190 * 190}" and r2.statuses["label_2"] == "skipped"
        assert r2.output("label_3") == "deployed20"

    def test_step_error_names_step_run_inputs_and_traceback(
        self, executor: Executor, root: Path
    ) -> None:
        r = self.run(executor, failing, root, {"n": 3})
        assert r.status == "failed"
        s = r.statuses
        assert (
            s["explode"] == "failed"
            and s["double"] == "cancelled"
            and s["table_sum"] == "cancelled"
        )
        assert (
            s["double_2"] == "succeeded" and r.output("table_sum_2") == 6
        )  # independent branch ran
        err = r.errors["explode"]
        table_id = r.steps["make_table"].outputs["output"].id
        text = str(err)
        for needle in (
            "`explode`",
            r.run_id,
            table_id,
            "bad input",
            "ValueError: boom",
            "raise ValueError",
            "Traceback",
        ):
            assert needle in text, needle
        assert err.step == "explode" and err.run_id == r.run_id and err.inputs["t"] == table_id
        copy = pickle.loads(pickle.dumps(err))
        assert isinstance(copy, StepError) and str(copy) == text and copy.traceback == err.traceback
        with pytest.raises(StepError, match="boom"):
            r.raise_for_status()

    def test_fail_fast_cancels_pending_work(self, executor: Executor, root: Path) -> None:
        r = self.run(executor, failing, root, {"n": 3}, fail_fast=True)
        assert r.status == "failed" and r.statuses["explode"] == "failed"
        assert r.statuses["table_sum"] == "cancelled" and r.statuses["table_sum_2"] in (
            "cancelled",
            "succeeded",
        )

    def test_retry_succeeds_on_second_attempt(
        self, executor: Executor, root: Path, tmp_path: Path
    ) -> None:
        counter = tmp_path / "count"
        r = self.run(executor, retrying, root, {"counter": str(counter)})
        assert r.status == "succeeded", r.errors
        assert r.steps["flaky"].attempts == 2 and counter.read_text() == "2"
        assert r.output("flaky") == "ok"
        assert "attempt 1" in Path(r.steps["flaky"].log_path or "").read_text()

    def test_timeout(self, executor: Executor, root: Path) -> None:
        t0 = time.monotonic()
        r = self.run(executor, slow, root, {"seconds": 30.0})
        assert time.monotonic() - t0 < 15
        assert r.status == "failed" and r.statuses["sleepy"] == "failed"
        assert "timed out after 0.5 s" in str(r.errors["sleepy"])

    def test_unpicklable_return_fails_the_run(self, executor: Executor, root: Path) -> None:
        r = self.run(executor, bad_return, root)
        assert r.status == "failed"
        text = str(r.errors["unpicklable"])
        assert "`unpicklable`" in text and "lock" in text
        assert r.steps["unpicklable"].attempts == 1

    def test_cache_hit_on_rerun(self, executor: Executor, root: Path) -> None:
        first = self.run(executor, fan, root, {"n": 3})
        assert first.status == "succeeded"
        t0 = time.monotonic()
        again = self.run(executor, fan, root, {"n": 3})
        elapsed = time.monotonic() - t0
        assert set(again.statuses.values()) == {"cached"}, again.statuses
        assert again.output("add_all") == first.output("add_all") == 5
        assert elapsed < 1.0
        fresh = self.run(executor, fan, root, {"n": 3}, cache=False)
        assert set(fresh.statuses.values()) == {"succeeded"}
        changed = self.run(executor, fan, root, {"n": 4})
        assert (
            changed.statuses["numbers"] == "succeeded" and changed.statuses["add_all_2"] == "cached"
        )

    def test_cache_miss_when_an_artifact_is_deleted(self, executor: Executor, root: Path) -> None:
        first = self.run(executor, linear, root, {"n": 3})
        ref = first.steps["double"].outputs["output"]
        os.remove(ref.uri)
        again = self.run(executor, linear, root, {"n": 3})
        assert again.statuses == {
            "make_table": "cached",
            "double": "succeeded",
            "table_sum": "cached",
        }
        assert again.output("double").column("x").to_pylist() == [0, 2, 4]

    def test_step_logs_are_captured(self, executor: Executor, root: Path) -> None:
        r = self.run(executor, logging_pipe, root, {"n": 7})
        path = r.steps["chatty"].log_path
        assert path is not None and Path(path).is_relative_to(root)
        text = Path(path).read_text()
        assert "hello from stdout 7" in text and "hello from stderr 7" in text
        md = open_metadata_store(str(root / "metadata.db"), root, "default")
        try:
            step = next(s for s in md.get_run(r.run_id)["steps"] if s["step"] == "chatty")
            assert "hello from stdout 7" in step["logs"] and path in step["logs"]
        finally:
            md.close()

    def test_a_step_made_in_a_function_travels_by_value(
        self, executor: Executor, root: Path
    ) -> None:
        offset = 5

        def plus_offset(x: int) -> int:  # a helper the worker cannot import either
            return x + offset

        @step
        def local(x: int) -> int:
            return plus_offset(x)

        @pipeline
        def p(n: int = 1) -> None:
            local(n)

        r = self.run(executor, p, root, {"n": 2})
        assert r.status == "succeeded", r.errors
        assert r.output("local") == 7

    def test_sigkilled_step_is_retried(
        self, executor: Executor, root: Path, tmp_path: Path
    ) -> None:
        if not executor.capabilities.isolation:
            pytest.skip(
                "this executor runs steps in the runner's process: SIGKILL would end the test run"
            )
        r = self.run(executor, crash_once, root, {"counter": str(tmp_path / "c")})
        assert r.status == "succeeded", r.errors
        assert r.steps["killed_once"].attempts == 2

    def test_sigkilled_step_without_retries_fails_clearly(
        self, executor: Executor, root: Path, tmp_path: Path
    ) -> None:
        if not executor.capabilities.isolation:
            pytest.skip(
                "this executor runs steps in the runner's process: SIGKILL would end the test run"
            )
        counter = tmp_path / "c"
        r = self.run(executor, crash_always, root, {"counter": str(counter)})
        assert r.status == "failed" and counter.read_text() == "1"
        text = str(r.errors["killed_always"])
        assert "`killed_always`" in text and r.run_id in text
        assert "died" in text or "crash" in text.lower()
        assert self.run(executor, linear, root, {"n": 2}).status == "succeeded"  # still usable


__all__ = ["ExecutorContract"]
