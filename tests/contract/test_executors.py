"""Every executor passes the executor contract: inline, process, and Ray when installed."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from featureline.pipelines.dsl import pipeline, step
from featureline.pipelines.executors import Executor
from featureline.pipelines.executors.inline import InlineExecutor
from featureline.pipelines.executors.process import ProcessExecutor
from featureline.pipelines.runner import run
from featureline.testing._executor_steps import linear
from featureline.testing.executor_contract import ExecutorContract


@pytest.fixture(scope="module")
def process_executor() -> Iterator[ProcessExecutor]:
    ex = ProcessExecutor(max_workers=2, timeout_grace=1.0)
    ex.start()
    yield ex
    ex.shutdown()


def _ray_is_a_dev_dependency() -> bool:
    try:
        requires = importlib.metadata.requires("featureline") or []
    except importlib.metadata.PackageNotFoundError:
        return False
    return any(
        r.replace(" ", "").startswith("ray") and 'extra=="dev"' in r.replace(" ", "")
        for r in requires
    )


@pytest.fixture(scope="module")
def ray_executor() -> Iterator[Executor]:
    if importlib.util.find_spec("ray") is None:
        msg = "ray is not installed: pip install 'featureline[ray]'"
        if os.environ.get("CI", "").lower() == "true" and _ray_is_a_dev_dependency():
            pytest.fail(msg + " (CI=true and ray is a dev dependency: failing instead of skipping)")
        pytest.skip(msg)
    from featureline.pipelines.executors.ray import RayExecutor

    ex = RayExecutor(num_cpus=2, include_dashboard=False)
    ex.start()
    yield ex
    ex.shutdown()


class TestInlineExecutor(ExecutorContract):
    @pytest.fixture
    def executor(self) -> Executor:
        return InlineExecutor()


class TestProcessExecutor(ExecutorContract):
    @pytest.fixture
    def executor(self, process_executor: ProcessExecutor) -> Executor:
        return process_executor


class TestRayExecutor(ExecutorContract):
    @pytest.fixture
    def executor(self, ray_executor: Executor) -> Executor:
        return ray_executor


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


class TestProcessExecutorCrashes:
    """A step that SIGKILLs its worker breaks the whole stdlib pool: the executor takes it down
    itself and starts a new one with every worker running, the steps merely caught in the
    teardown run again (their results are not lost), and shutting down never hangs."""

    def test_other_steps_keep_their_results(
        self, process_executor: ProcessExecutor, tmp_path: Path
    ) -> None:
        @step
        def die(x: int) -> int:
            os.kill(os.getpid(), signal.SIGKILL)
            return x

        @step
        def nap(x: int) -> int:
            time.sleep(0.3)
            return x

        @pipeline
        def p() -> None:
            nap.map(items=[1, 2, 3])
            die(0)

        r = run(p, executor=process_executor, artifact_root=tmp_path / "a")
        assert r.status == "failed"
        text = str(r.errors["die"])
        assert "step `die`" in text and "SIGKILL" in text and "died" in text, text
        assert r.steps["die"].attempts == 1
        assert r.statuses["nap"] == "succeeded", r.errors
        assert r.output("nap") == [1, 2, 3]
        assert [i.attempts for i in r.steps["nap"].items] == [1, 1, 1]  # rerun, not retried

    def test_shutdown_after_a_worker_died_is_bounded_and_leaves_no_worker(self) -> None:
        ex = ProcessExecutor(max_workers=2)
        ex.start()
        pids = ex.worker_pids()
        assert len(pids) == 2
        os.kill(pids[0], signal.SIGKILL)  # an idle worker: the pool breaks with no step to fail
        time.sleep(0.5)
        started = time.monotonic()
        ex.shutdown()
        assert time.monotonic() - started < 15
        deadline = time.monotonic() + 5
        while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(_gone(pid) for pid in pids)

    def test_a_broken_pool_is_replaced_on_the_next_submit(self, tmp_path: Path) -> None:
        with ProcessExecutor(max_workers=2) as ex:
            before = ex.worker_pids()
            os.kill(before[0], signal.SIGKILL)
            time.sleep(0.5)
            r = run(linear, {"n": 2}, executor=ex, artifact_root=tmp_path / "a")
            assert r.status == "succeeded", r.errors
            assert r.steps["make_table"].attempts == 1
            after = ex.worker_pids()
            assert 1 <= len(after) <= 2 and not set(after) & set(before)
            assert all(_gone(pid) for pid in before)  # the broken pool's workers were ended
