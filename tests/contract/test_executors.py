"""Every executor passes the executor contract: inline, process, and Ray when installed."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from collections.abc import Iterator

import pytest

from featureline.pipelines.executors import Executor
from featureline.pipelines.executors.inline import InlineExecutor
from featureline.pipelines.executors.process import ProcessExecutor
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
