"""Run steps one at a time in the calling process: for debugging (breakpoints work) and tests.

No isolation: a step that crashes the interpreter crashes the run. A timeout interrupts the
step with SIGALRM when the runner is on the main thread (Python code only); otherwise it is
detected after the step returns. Outputs still go through the artifact store, so a pipeline
behaves the same here as under the process or Ray executors.
"""

from __future__ import annotations

from concurrent.futures import Future

from featureline.pipelines.executors.base import ExecutorCapabilities, StepTask, TaskResult


class InlineExecutor:
    capabilities = ExecutorCapabilities(
        isolation=False, parallel=False, remote=False, kill=False, max_parallel=1, capture="sys"
    )

    def start(self) -> None:
        return None

    def submit(self, task: StepTask) -> Future[TaskResult]:
        from featureline.pipelines.executors._task import execute_task

        task.capture = "sys"
        fut: Future[TaskResult] = Future()
        try:
            fut.set_result(execute_task(task))
        except BaseException as e:
            fut.set_exception(e)
            if not isinstance(e, Exception):
                raise
        return fut

    def kill(self, future: Future[TaskResult]) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def __repr__(self) -> str:
        return "InlineExecutor()"


__all__ = ["InlineExecutor"]
