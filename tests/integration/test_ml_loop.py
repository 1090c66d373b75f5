"""The whole loop: training set -> train -> evaluate -> register -> materialize -> predict over
HTTP -> lineage; and a model whose features are no longer served is refused."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pyarrow as pa
import pytest
from click.testing import CliRunner

import featureline as fl
from featureline.cli import cli
from featureline.pipelines.runner import run
from featureline.server import create_app
from tests.integration.server_kit import ThreadServer

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "drivers"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    sys.path.insert(0, str(EXAMPLES))
    from driver_pipeline import training

    root = tmp_path_factory.mktemp("ml") / "drivers"
    fl.init_repo(root, project="ml")
    with fl.FeatureStore(root) as store:
        store.apply()
        store.ingest("driver_stats")
        result = run(
            training,
            {"repo": str(root), "n": 3000, "drivers": 50, "days": 6},
            executor="inline",
            artifact_root=store.config.artifacts,
            metadata=store.models.metadata,
        )
        assert result.status == "succeeded", result.errors
        store.materialize_incremental()
        yield root, result.run_id
    sys.path.remove(str(EXAMPLES))


def test_model_card_records_lineage(trained: tuple[Path, str]) -> None:
    root, run_id = trained
    with fl.FeatureStore(root) as store:
        mv = store.models.get("driver_quality", "production")
        assert mv.version == 1 and mv.aliases == ["production"]
        card = mv.card
        assert card["features"] == [
            "driver_stats@v1:conv_rate",
            "driver_stats@v1:acc_rate",
            "driver_stats@v1:avg_daily_trips",
        ]
        t = card["training"]
        assert t["feature_service"] == "driver_activity" and t["registry_version"] == 1
        assert t["as_of"].endswith("+00:00")  # "now", resolved to when the step ran
        assert len(t["entity_hash"]) == 64 and t["entity_rows"] == 3000
        from featureline.models.steps import rebuild_training_set

        assert (
            store.models.artifacts.put(rebuild_training_set(store, mv)).id == t["training_set_id"]
        )
        assert card["metrics"]["auc"] >= 0.6
        assert (
            card["params"]["n"] == 3000
            and card["params"]["drivers"] == 50
            and card["run_id"] == run_id
        )
        up = store.models.lineage("model", mv.ref, "up")
        kinds = {(e["src_kind"], e["dst_kind"]) for e in up}
        assert ("feature_view", "training_set") in kinds
        down = store.models.lineage("feature_view", "driver_stats@v1", "down")
        assert any(e["dst_id"] == "driver_quality:1" for e in down)
        assert store.models.metadata.get_run(run_id)["status"] == "succeeded"


def test_predict_over_http_and_logged(trained: tuple[Path, str]) -> None:
    root, _ = trained
    with ThreadServer(create_app(root)) as url, httpx.Client(base_url=url, timeout=15) as c:
        r = c.post(
            "/models/driver_quality/predict", json={"entities": {"driver_id": [1001, 1002, 5]}}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["version"] == 1 and len(body["predictions"]) == 3
        assert (
            body["predictions"][2] is None
            and body["statuses"]["driver_stats@v1:conv_rate"][2] == "NOT_FOUND"
        )
        assert body["predictions"][0] in (0, 1)
        r = c.post("/models/driver_qualty/predict", json={"entities": {"driver_id": [1001]}})
        assert r.status_code == 404 and "Did you mean `driver_quality`" in r.json()["message"]
        r = c.post("/models/driver_quality/predict", json={"entity": {"driver_id": [1001]}})
        assert r.status_code == 400 and "entities" in r.json()["message"]
        r = c.post(  # a bool is not a version number (it passed an int check before)
            "/models/driver_quality/predict",
            json={"entities": {"driver_id": [1001]}, "version": True},
        )
        assert r.status_code == 400 and "`version`" in r.json()["message"]
        assert c.get("/models").json()["models"][0]["aliases"] == ["production"]
    log = (root / "data" / "predictions" / "driver_quality.jsonl").read_text().splitlines()
    first = json.loads(log[0])
    assert first["version"] == 1 and first["features"]["driver_stats@v1:conv_rate"][0] is not None


def test_cli_lineage_models_runs(trained: tuple[Path, str]) -> None:
    root, run_id = trained
    runner = CliRunner()
    out = runner.invoke(cli, ["--repo", str(root), "lineage", "driver_quality"])
    assert out.exit_code == 0, out.output
    assert (
        "feature_view driver_stats@v1" in out.output and "driver_quality@production" in out.output
    )
    out = runner.invoke(cli, ["--repo", str(root), "lineage", "--view", "driver_stats"])
    assert out.exit_code == 0 and "driver_quality:1" in out.output
    out = runner.invoke(cli, ["--repo", str(root), "models", "list"])
    assert out.exit_code == 0 and "driver_quality" in out.output
    out = runner.invoke(cli, ["--repo", str(root), "runs", "show", run_id])
    assert out.exit_code == 0 and "build_training_set" in out.output


def test_cli_rerun_returns_the_registered_version_until_new_data(trained: tuple[Path, str]) -> None:
    root, _ = trained
    args = [
        "--repo",
        str(root),
        "run",
        "driver_pipeline:training",
        "--executor",
        "inline",
        "-p",
        f"repo={root}",
        "-p",
        "n=3000",
        "-p",
        "drivers=50",
        "-p",
        "days=6",
    ]
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 0, out.output
    assert "register_model" in out.output and "succeeded" in out.output
    again = CliRunner().invoke(cli, args)  # cached steps are reused; registering always runs...
    assert again.exit_code == 0 and "cached" in again.output
    with fl.FeatureStore(
        root
    ) as store:  # ... and finds the model it registered on that training set
        assert [m["version"] for m in store.models.versions("driver_quality")] == [1]
        # every row corrected, so the training set changes whatever times the trips were sampled at
        fixed = store.preview("driver_stats", 1_000_000)
        fixed = fixed.set_column(
            fixed.column_names.index("conv_rate"),
            "conv_rate",
            pa.array([0.01] * fixed.num_rows, fixed.schema.field("conv_rate").type),
        )
        created = pa.array([datetime.now(UTC)] * fixed.num_rows, pa.timestamp("us", tz="UTC"))
        store.ingest("driver_stats", fixed.append_column("created", created))
    fresh = CliRunner().invoke(cli, args)
    assert fresh.exit_code == 0, fresh.output
    with fl.FeatureStore(root) as store:  # a corrected batch: a new training set, a new version
        assert [m["version"] for m in store.models.versions("driver_quality")] == [2, 1]
        assert store.models.get("driver_quality", "production").version == 2


def test_refused_when_features_no_longer_served(trained: tuple[Path, str]) -> None:
    root, _ = trained
    with fl.FeatureStore(root) as store:
        from featureline.models import Predictor

        p = Predictor(store, store.models)
        assert p.predict("driver_quality", {"driver_id": [1001]})["predictions"][0] is not None
        entity = store.get_feature_view("driver_stats").entities[0]
        other = fl.FeatureView(
            "other", [entity], [fl.Field("driver_id", fl.Int64), fl.Field("x", fl.Float64)]
        )
        store.apply([entity, other])  # driver_stats is removed from the registry
        with pytest.raises(
            fl.FeaturelineError, match=r"features are no longer served.*driver_stats.*Fix: retrain"
        ):
            Predictor(store, store.models).predict("driver_quality", {"driver_id": [1001]})
