"""The contract every MetadataStore backend passes.

Subclass `MetadataStoreContract` in a test module and override the `store` fixture so it
yields a fresh, empty store (and closes it afterwards)::

    class TestSqliteMetadata(MetadataStoreContract):
        @pytest.fixture
        def store(self, tmp_path):
            s = SqliteMetadataStore(tmp_path / "metadata.db")
            yield s
            s.close()

A store must pickle to its construction arguments (`__reduce__`): the suite sends it to
worker processes, as the pipeline executors do.
"""

from __future__ import annotations

import math
import multiprocessing
import pickle
import queue
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from featureline.errors import NotFoundError, StorageError, ValidationError
from featureline.pipelines.artifacts import ArtifactRef
from featureline.pipelines.metadata import MetadataCapabilities, MetadataStore

WORKERS = 4
STEPS_PER_WORKER = 8


def make_ref(n: int, kind: str = "json") -> ArtifactRef:
    """A distinct, well-formed reference for each `n` (the bytes need not exist)."""
    digest = f"{n:032x}"
    return ArtifactRef(
        digest, kind, f"/artifacts/{digest[:2]}/{digest}", 10 + n, "featureline.json"
    )


def _is_utc(ts: Any) -> bool:
    return isinstance(ts, datetime) and ts.utcoffset() == timedelta(0)


def _step_worker(store: MetadataStore, run_id: str, worker: int, barrier: Any, out: Any) -> None:
    """Runs in a spawned process: start and finish steps, log metrics and lineage, at once."""
    try:
        barrier.wait(timeout=120)
        for i in range(STEPS_PER_WORKER):
            step = f"w{worker}-s{i}"
            ref = make_ref(1000 * (worker + 1) + i)
            store.start_step(run_id, step, f"key-{step}", {"data": make_ref(1).id})
            store.log_metrics(run_id, {"progress": float(i)}, step=step)
            store.finish_step(run_id, step, "succeeded", {"out": ref}, {"i": i}, None, "ok", 1)
            store.add_lineage("artifact", make_ref(1).id, "artifact", ref.id, "derived")
        out.put((worker, None))
    except BaseException as e:  # report everything to the parent
        out.put((worker, f"{type(e).__name__}: {e}"))
    finally:
        store.close()


class MetadataStoreContract:
    """Base class of metadata backend tests. Override the `store` fixture."""

    @pytest.fixture
    def store(self) -> Iterator[MetadataStore]:
        raise NotImplementedError("override the `store` fixture to yield a fresh, empty store")

    @pytest.fixture
    def run_id(self, store: MetadataStore) -> str:
        store.create_pipeline("train", {"steps": ["load", "fit"]})
        return store.create_run("train", {"lr": 0.1})

    # ---- pipelines --------------------------------------------------------------------------

    def test_is_a_metadata_store(self, store: MetadataStore) -> None:
        assert isinstance(store, MetadataStore)
        assert isinstance(store.capabilities, MetadataCapabilities)

    def test_create_pipeline_keeps_spec_versions(self, store: MetadataStore) -> None:
        store.create_pipeline("p", {"steps": ["a"]})
        store.create_pipeline("p", {"steps": ["a"]})  # same spec: no new version
        store.create_pipeline("p", {"steps": ["a", "b"]})
        got = store.get_pipeline("p")
        assert got["name"] == "p" and got["spec"] == {"steps": ["a", "b"]}
        assert len(got["versions"]) == 2 and got["versions"][-1]["spec_hash"] == got["spec_hash"]
        assert all(_is_utc(v["created_at"]) for v in got["versions"])
        assert _is_utc(got["updated_at"])

    def test_pipeline_errors(self, store: MetadataStore) -> None:
        store.create_pipeline("training", {})
        with pytest.raises(NotFoundError, match="Did you mean `training`"):
            store.get_pipeline("trainng")
        with pytest.raises(ValidationError, match="JSON"):
            store.create_pipeline("p", {"when": datetime.now(UTC)})
        with pytest.raises(ValidationError, match="non-empty"):
            store.create_pipeline("", {})

    # ---- runs -------------------------------------------------------------------------------

    def test_create_run_and_get_run(self, store: MetadataStore) -> None:
        before = datetime.now(UTC) - timedelta(seconds=5)
        store.create_pipeline("train", {"v": 1})
        run_id = store.create_run("train", {"lr": 0.1, "layers": [8, 4]}, {"who": "ana"})
        run = store.get_run(run_id)
        assert run["run_id"] == run_id and run["pipeline"] == "train"
        assert run["status"] == "running" and run["error"] is None and run["finished_at"] is None
        assert run["params"] == {"lr": 0.1, "layers": [8, 4]}
        assert run["tags"] == {"who": "ana"}
        assert run["spec_hash"] == store.get_pipeline("train")["spec_hash"]
        assert run["steps"] == [] and run["metrics"] == {}
        assert _is_utc(run["created_at"]) and before < run["created_at"] < before + timedelta(60)

    def test_run_ids_are_short_unique_and_sortable(self, store: MetadataStore) -> None:
        ids = [store.create_run("p", {}) for _ in range(30)]
        assert len(set(ids)) == 30 and all(len(i) <= 26 for i in ids)
        assert sorted(ids) == ids

    def test_finish_run(self, store: MetadataStore, run_id: str) -> None:
        store.finish_run(run_id, "failed", "step `fit` failed: boom")
        run = store.get_run(run_id)
        assert run["status"] == "failed" and run["error"] == "step `fit` failed: boom"
        assert _is_utc(run["finished_at"]) and run["finished_at"] >= run["created_at"]
        with pytest.raises(ValidationError, match="Did you mean `succeeded`"):
            store.finish_run(run_id, "succeded")
        with pytest.raises(NotFoundError):
            store.finish_run("nope", "succeeded")

    def test_get_run_unknown_suggests_recent_ids(self, store: MetadataStore, run_id: str) -> None:
        typo = run_id[:-1] + ("0" if run_id[-1] != "0" else "1")
        with pytest.raises(NotFoundError) as info:
            store.get_run(typo)
        assert f"`{typo}`" in str(info.value) and f"Did you mean `{run_id}`" in str(info.value)

    def test_list_runs(self, store: MetadataStore) -> None:
        a = [store.create_run("a", {"i": i}) for i in range(3)]
        b = store.create_run("b", {})
        assert [r["run_id"] for r in store.list_runs()] == [b, *reversed(a)]
        assert [r["run_id"] for r in store.list_runs("a")] == list(reversed(a))
        assert [r["run_id"] for r in store.list_runs(limit=2)] == [b, a[2]]
        assert store.list_runs("none") == []
        assert all(r["status"] == "running" for r in store.list_runs())
        with pytest.raises(ValidationError, match="limit"):
            store.list_runs(limit=0)

    # ---- steps ------------------------------------------------------------------------------

    def test_step_round_trip(self, store: MetadataStore, run_id: str) -> None:
        inputs = {"data": make_ref(1).id}
        store.start_step(run_id, "fit", "k-fit", inputs)
        (running,) = store.get_run(run_id)["steps"]
        assert running["status"] == "running" and running["finished_at"] is None
        outputs = {"model": make_ref(2, "model"), "report": make_ref(3)}
        store.finish_step(run_id, "fit", "succeeded", outputs, {"rmse": 0.25}, None, "done\n", 2)
        (step,) = store.get_run(run_id)["steps"]
        assert step["step"] == "fit" and step["status"] == "succeeded"
        assert step["cache_key"] == "k-fit" and step["inputs"] == inputs
        assert step["outputs"] == outputs and step["metrics"] == {"rmse": 0.25}
        assert step["logs"] == "done\n" and step["attempts"] == 2 and step["error"] is None
        assert _is_utc(step["started_at"]) and step["finished_at"] >= step["started_at"]
        assert store.get_run(run_id)["metrics"] == {"fit.rmse": 0.25}

    def test_step_restart_and_failure(self, store: MetadataStore, run_id: str) -> None:
        store.start_step(run_id, "fit", "k", {})
        store.finish_step(run_id, "fit", "failed", {}, None, "ValueError: bad", "trace", 1)
        store.start_step(run_id, "fit", "k", {})
        (step,) = store.get_run(run_id)["steps"]
        assert step["status"] == "running" and step["error"] is None
        store.finish_step(run_id, "fit", "failed", {}, None, "ValueError: bad", None, 3)
        (step,) = store.get_run(run_id)["steps"]
        assert (step["status"], step["error"], step["attempts"]) == ("failed", "ValueError: bad", 3)

    def test_finish_step_without_start(self, store: MetadataStore, run_id: str) -> None:
        store.finish_step(run_id, "deploy", "skipped", {}, None, None, None, 0)
        (step,) = store.get_run(run_id)["steps"]
        assert step["status"] == "skipped" and step["outputs"] == {}

    def test_step_validation(self, store: MetadataStore, run_id: str) -> None:
        with pytest.raises(ValidationError, match="Did you mean `succeeded`"):
            store.finish_step(run_id, "s", "success", {}, None, None, None, 1)
        with pytest.raises(ValidationError, match="ArtifactRef"):
            store.finish_step(run_id, "s", "succeeded", {"x": "abc"}, None, None, None, 1)  # type: ignore[dict-item]
        with pytest.raises(ValidationError, match="number"):
            store.finish_step(run_id, "s", "succeeded", {}, {"acc": "high"}, None, None, 1)  # type: ignore[dict-item]
        with pytest.raises(NotFoundError):
            store.start_step("missing-run", "s", "k", {})
        assert store.get_run(run_id)["steps"] == []

    def test_long_logs_keep_the_tail(self, store: MetadataStore, run_id: str) -> None:
        logs = "x" * 1_200_000 + "THE END"
        store.finish_step(run_id, "s", "failed", {}, None, "boom", logs, 1)
        kept = store.get_run(run_id)["steps"][0]["logs"]
        assert kept.endswith("THE END") and "truncated" in kept and len(kept) < 1_100_000

    # ---- artifacts and cache ----------------------------------------------------------------

    def test_record_and_get_artifact(self, store: MetadataStore, run_id: str) -> None:
        store.record_artifact(make_ref(7))
        store.record_artifact(make_ref(7))  # idempotent
        assert store.get_artifact(make_ref(7).id) == make_ref(7)
        store.finish_step(run_id, "s", "succeeded", {"o": make_ref(8)}, None, None, None, 1)
        assert store.get_artifact(make_ref(8).id) == make_ref(8)
        with pytest.raises(NotFoundError, match=make_ref(9).id):
            store.get_artifact(make_ref(9).id)
        with pytest.raises(ValidationError):
            store.record_artifact({"id": "x"})  # type: ignore[arg-type]

    def test_find_cached(self, store: MetadataStore, run_id: str) -> None:
        assert store.find_cached("key") is None
        store.start_step(run_id, "a", "key", {})
        store.finish_step(run_id, "a", "succeeded", {"o": make_ref(1)}, None, None, None, 1)
        assert store.find_cached("key") == {"o": make_ref(1)}
        second = store.create_run("train", {})
        store.start_step(second, "a", "key", {})
        store.finish_step(second, "a", "succeeded", {"o": make_ref(2)}, None, None, None, 1)
        assert store.find_cached("key") == {"o": make_ref(2)}  # the most recent wins
        third = store.create_run("train", {})
        for status in ("failed", "cached", "cancelled"):
            store.start_step(third, status, "key", {})
            store.finish_step(third, status, status, {"o": make_ref(3)}, None, None, None, 1)
        assert store.find_cached("key") == {"o": make_ref(2)}
        store.start_step(third, "running", "other", {})
        assert store.find_cached("other") is None

    # ---- params and metrics -----------------------------------------------------------------

    def test_params_and_metrics(self, store: MetadataStore, run_id: str) -> None:
        store.log_params(run_id, {"epochs": 3, "when": datetime(2024, 5, 1, tzinfo=UTC)})
        store.log_params(run_id, {"lr": 0.2})  # overwrites the create_run value
        store.log_metrics(run_id, {"auc": 0.9, "loss": float("nan")})
        store.log_metrics(run_id, {"auc": 0.95})
        store.log_metrics(run_id, {"rmse": 1}, step="eval")
        run = store.get_run(run_id)
        assert run["params"] == {"lr": 0.2, "epochs": 3, "when": "2024-05-01T00:00:00+00:00"}
        assert run["metrics"]["auc"] == 0.95 and run["metrics"]["eval.rmse"] == 1.0
        assert math.isnan(run["metrics"]["loss"])
        with pytest.raises(ValidationError, match="`flag`"):
            store.log_metrics(run_id, {"flag": True})
        with pytest.raises(NotFoundError):
            store.log_params("missing-run", {"a": 1})

    # ---- lineage ----------------------------------------------------------------------------

    def test_lineage_walks_up_and_down(self, store: MetadataStore) -> None:
        # source -> training set -> model -> endpoint, plus a second input to the model
        store.add_lineage("source", "trips", "artifact", "ts", "input")
        store.add_lineage("artifact", "ts", "model", "m1", "trained_on")
        store.add_lineage("artifact", "params", "model", "m1", "configured_by")
        store.add_lineage("model", "m1", "endpoint", "e1", "deployed_as")
        store.add_lineage("model", "m1", "endpoint", "e1", "deployed_as")  # idempotent
        up = store.lineage("endpoint", "e1", "up")
        assert [(e["src_id"], e["dst_id"], e["depth"]) for e in up] == [
            ("m1", "e1", 1),
            ("params", "m1", 2),
            ("ts", "m1", 2),
            ("trips", "ts", 3),
        ]
        assert up[0]["relation"] == "deployed_as" and up[0]["src_kind"] == "model"
        assert len(store.lineage("endpoint", "e1", "up", depth=2)) == 3
        down = store.lineage("source", "trips", direction="down")
        assert [(e["src_id"], e["dst_id"]) for e in down] == [
            ("trips", "ts"),
            ("ts", "m1"),
            ("m1", "e1"),
        ]
        assert store.lineage("endpoint", "e1", "down") == []
        assert store.lineage("model", "unknown") == []

    def test_lineage_survives_cycles(self, store: MetadataStore) -> None:
        store.add_lineage("a", "1", "a", "2", "r")
        store.add_lineage("a", "2", "a", "1", "r")
        assert len(store.lineage("a", "1", "down", depth=50)) == 2

    def test_lineage_validation(self, store: MetadataStore) -> None:
        with pytest.raises(ValidationError, match="Did you mean `down`"):
            store.lineage("a", "1", "dow")
        with pytest.raises(ValidationError, match="depth"):
            store.lineage("a", "1", "up", depth=0)
        with pytest.raises(ValidationError):
            store.add_lineage("a", "", "b", "2", "r")

    # ---- lifecycle and concurrency ----------------------------------------------------------

    def test_closed_store_raises_storage_error(self, store: MetadataStore) -> None:
        store.close()
        store.close()  # idempotent
        with pytest.raises(StorageError, match="closed"):
            store.list_runs()

    def test_pickles_to_a_working_store(self, store: MetadataStore, run_id: str) -> None:
        reopened: MetadataStore = pickle.loads(pickle.dumps(store))
        try:
            assert reopened.get_run(run_id)["params"] == {"lr": 0.1}
            reopened.log_metrics(run_id, {"x": 1.0})
        finally:
            reopened.close()
        assert store.get_run(run_id)["metrics"] == {"x": 1.0}

    def test_concurrent_processes_write_steps(self, store: MetadataStore, run_id: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        barrier, results = ctx.Barrier(WORKERS), ctx.Queue()
        procs = [
            ctx.Process(target=_step_worker, args=(store, run_id, w, barrier, results))
            for w in range(WORKERS)
        ]
        for p in procs:
            p.start()
        outcomes: list[tuple[int, str | None]] = []
        try:
            for _ in procs:
                outcomes.append(results.get(timeout=180))
        except queue.Empty:
            pytest.fail(f"only {len(outcomes)} of {WORKERS} workers reported within 180 s")
        finally:
            for p in procs:
                p.join(timeout=60)
                if p.is_alive():
                    p.kill()
                    p.join()
            results.close()
            results.join_thread()
        assert [err for _, err in outcomes if err] == []
        run = store.get_run(run_id)
        expected = {f"w{w}-s{i}" for w in range(WORKERS) for i in range(STEPS_PER_WORKER)}
        assert {s["step"] for s in run["steps"]} == expected
        assert all(s["status"] == "succeeded" for s in run["steps"])
        assert run["metrics"]["w3-s7.progress"] == 7.0 and run["metrics"]["w0-s5.i"] == 5.0
        down = store.lineage("artifact", make_ref(1).id, "down")
        assert len(down) == WORKERS * STEPS_PER_WORKER
        assert store.find_cached("key-w2-s3") == {"out": make_ref(3003)}


__all__ = ["MetadataStoreContract", "make_ref"]


class ModelRegistryContract:
    """Model versions, aliases and cards in a metadata store (a `store` fixture to override)."""

    @pytest.fixture
    def store(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _ref(self, n: int = 1) -> ArtifactRef:
        return ArtifactRef(f"{n:032x}", "model", f"/tmp/{n}", 10, "featureline.model")

    def test_versions_aliases_cards(self, store: Any) -> None:
        from featureline.errors import NotFoundError, ValidationError

        assert store.register_model_version("fraud", self._ref(1), {"metrics": {"auc": 0.8}}) == 1
        assert (
            store.register_model_version(
                "fraud", self._ref(2), {"metrics": {"auc": 0.9}, "features": ["v@v1:f"]}
            )
            == 2
        )
        assert store.get_model_version("fraud")["version"] == 2
        assert store.get_model_version("fraud", 1)["card"] == {"metrics": {"auc": 0.8}}
        store.set_model_alias("fraud", "production", 1)
        got = store.get_model_version("fraud", "production")
        assert (
            got["version"] == 1
            and got["aliases"] == ["production"]
            and got["artifact"] == self._ref(1)
        )
        store.set_model_alias("fraud", "production", 2)  # aliases move
        assert store.get_model_version("fraud", "production")["version"] == 2
        assert [
            (m["name"], m["version"], m["aliases"]) for m in store.list_model_versions("fraud")
        ] == [("fraud", 2, ["production"]), ("fraud", 1, [])]
        with pytest.raises(
            NotFoundError, match=r"no alias `producton`\. Did you mean `production`"
        ):
            store.get_model_version("fraud", "producton")
        with pytest.raises(NotFoundError, match=r"Did you mean `fraud`"):
            store.get_model_version("frau")
        with pytest.raises(NotFoundError, match=r"no version 7"):
            store.set_model_alias("fraud", "staging", 7)
        with pytest.raises(ValidationError, match=r"ambiguous"):
            store.set_model_alias("fraud", "latest", 1)

    def test_registering_the_same_model_on_the_same_training_set_returns_its_version(
        self, store: Any
    ) -> None:
        card = {"metrics": {"auc": 0.8}, "training": {"training_set_id": "ts-1"}}
        assert store.register_model_version_once("churn", self._ref(1), card) == (1, True)
        assert store.register_model_version_once(
            "churn", self._ref(1), {**card, "metrics": {"auc": 0.9}}
        ) == (1, False)
        assert store.register_model_version_once(
            "churn", self._ref(1), {"training": {"training_set_id": "ts-2"}}
        ) == (2, True)
        assert store.register_model_version_once("churn", self._ref(2), card) == (3, True)
        assert store.register_model_version_once("churn", self._ref(3), {}) == (
            4,
            True,
        )  # no training set
        assert store.register_model_version_once("churn", self._ref(3), {"metrics": {}}) == (
            4,
            False,
        )
        assert store.register_model_version_once("other", self._ref(1), card) == (
            1,
            True,
        )  # per model name
        assert store.get_model_version("churn", 1)["card"] == card  # the first card stays
        assert [m["version"] for m in store.list_model_versions("churn")] == [4, 3, 2, 1]
