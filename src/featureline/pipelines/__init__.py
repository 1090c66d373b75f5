"""Kubeflow-style pipelines: `@step` and `@pipeline` in plain Python, run inline, in local
processes or on Ray, cached by content, tracked in a metadata store, with lineage."""

from featureline.pipelines.artifacts import ArtifactRef, ArtifactStore, Metrics
from featureline.pipelines.dsl import pipeline, step, when
from featureline.pipelines.runner import RunResult, run

__all__ = [
    "ArtifactRef",
    "ArtifactStore",
    "Metrics",
    "RunResult",
    "pipeline",
    "run",
    "step",
    "when",
]
