"""Re-running a training pipeline (issue 9): a cached training set is reused only while the store
would return the same rows; its card records the `as_of` it was built at, so it can be rebuilt
from the card alone; re-registering the same model on the same training set returns the
existing version; step metrics are recorded on cache hits too, and a plain dict of numbers
named `metrics` is tracked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import featureline as fl
from featureline.models.steps import build_training_set, register_model
from featureline.pipelines.dsl import pipeline, step
from featureline.pipelines.runner import RunResult, run
from tests.helpers import TS, driver_defs, new_store, rows, utc

pytestmark = pytest.mark.integration


@step
def entity_rows(n: int) -> pa.Table:
    return pa.table(
        {
            "driver_id": pa.array([1 + i % 2 for i in range(n)], pa.int64()),
            "event_timestamp": pa.array([utc(2025, 1, 1, 12)] * n, TS),
        }
    )


@step(outputs=("model", "metrics"))
def fit_mean(
    training_set: pa.Table, info: dict[str, Any]
) -> tuple[dict[str, float], dict[str, float]]:
    values = training_set.column(info["feature_columns"][0]).to_pylist()
    mean = sum(values) / len(values)
    return {"mean": mean}, {"mean_rate": mean, "rows": float(len(values))}


@pipeline(name="rates")
def rates(repo: str, n: int = 4, as_of: str = "") -> None:
    ents = entity_rows(n)
    ts, info = build_training_set(repo, ents, "driver_stats:rate", as_of)
    model, metrics = fit_mean(ts, info)
    register_model(repo, "rates", model, info, metrics, "production")


@pytest.fixture
def store(tmp_path: Path) -> Any:
    driver, view = driver_defs(ttl=None)
    s = new_store(tmp_path, driver, view)
    s.ingest("driver_stats", rows([1, 2], [utc(2025, 1, 1, 10)] * 2, [0.5, 0.7]))
    yield s
    s.close()


def _run(store: Any, **params: Any) -> RunResult:
    r = run(
        rates,
        {"repo": str(store.repo_path), **params},
        executor="inline",
        artifact_root=store.config.artifacts,
        metadata=store.models.metadata,
    )
    assert r.status == "succeeded", r.errors
    return r


def test_a_cached_training_set_is_rebuilt_after_an_ingest(store: Any) -> None:
    first = _run(store)
    assert first.output("fit_mean", "model") == {"mean": pytest.approx(0.6)}
    again = _run(store)
    assert again.statuses["build_training_set"] == "cached"  # nothing new: the same rows
    store.ingest(
        "driver_stats", rows([1, 2], [utc(2025, 1, 1, 10)] * 2, [0.9, 1.1])
    )  # a corrected batch
    fresh = _run(store)
    assert (
        fresh.statuses["build_training_set"] == "succeeded"
        and fresh.statuses["fit_mean"] == "succeeded"
    )
    assert fresh.output("fit_mean", "model") == {"mean": pytest.approx(1.0)}
    assert _run(store).statuses["build_training_set"] == "cached"


def test_a_training_set_as_of_a_past_time_stays_cached_after_an_ingest(store: Any) -> None:
    from datetime import UTC, datetime

    then = datetime.now(UTC).isoformat()
    first = _run(store, as_of=then)
    store.ingest("driver_stats", rows([1, 2], [utc(2025, 1, 1, 10)] * 2, [0.9, 1.1]))
    again = _run(store, as_of=then)  # what the store knew then has not changed
    assert again.statuses["build_training_set"] == "cached"
    assert (
        again.output("fit_mean", "model")
        == first.output("fit_mean", "model")
        == {"mean": pytest.approx(0.6)}
    )
    assert again.output("build_training_set", "info")["as_of"] == then
    assert _run(store).output("fit_mean", "model") == {
        "mean": pytest.approx(1.0)
    }  # now: the new rows


def test_the_card_records_as_of_and_rebuilds_the_same_training_set(store: Any) -> None:
    r = _run(store)
    mv = store.models.get("rates", "production")
    t = mv.card["training"]
    assert isinstance(t["as_of"], str) and t["as_of"].endswith("+00:00")
    ts_id = r.steps["build_training_set"].outputs["training_set"].id
    assert t["training_set_id"] == ts_id
    store.ingest(
        "driver_stats", rows([1, 2], [utc(2025, 1, 1, 10)] * 2, [0.9, 1.1])
    )  # later data...
    store.compact("driver_stats")  # ... and a compaction do not change what the card names
    from featureline.models.steps import rebuild_training_set

    rebuilt = rebuild_training_set(store.repo_path, mv.card)
    assert store.models.artifacts.put(rebuilt).id == ts_id
    assert rebuilt.column("driver_stats__rate").to_pylist() == [0.5, 0.7, 0.5, 0.7]
    with fl.FeatureStore(store.repo_path) as other:  # a card alone (and the repo) is enough
        assert other.models.artifacts.put(rebuild_training_set(other, mv)).id == ts_id


def test_a_fully_cached_rerun_returns_the_registered_version(store: Any) -> None:
    first = _run(store)
    again = _run(store)
    assert (
        first.output("register_model")["version"] == again.output("register_model")["version"] == 1
    )
    assert [m["version"] for m in store.models.versions("rates")] == [1]
    store.ingest("driver_stats", rows([1, 2], [utc(2025, 1, 1, 10)] * 2, [0.9, 1.1]))
    assert _run(store).output("register_model")["version"] == 2  # a new training set: a new version
    mv = store.models.get("rates", "production")
    assert mv.version == 2 and mv.card["metrics"]["mean_rate"] == pytest.approx(1.0)


def test_metrics_dict_is_tracked_and_recorded_on_cache_hits(store: Any) -> None:
    first = _run(store)
    again = _run(store)
    assert again.statuses["fit_mean"] == "cached"
    for r in (first, again):
        got = store.models.metadata.get_run(r.run_id)
        assert got["metrics"]["fit_mean.mean_rate"] == pytest.approx(0.6), r.run_id
        assert got["metrics"]["fit_mean.rows"] == 4.0
        step_row = next(s for s in got["steps"] if s["step"] == "fit_mean")
        assert step_row["metrics"] == {"mean_rate": pytest.approx(0.6), "rows": 4.0}
