"""Model serving hands the model what it was trained on (issue 9, item 8): a frame with the
training set's column names and dtypes (string features included), predict_proba on request,
NaN for missing values when the model declares it handles them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd
import pyarrow as pa
import pytest

import featureline as fl
from featureline.models import Predictor
from featureline.server import create_app
from tests.integration.server_kit import ThreadServer

TS = pa.timestamp("us", tz="UTC")


@pytest.fixture
def store(tmp_path: Path) -> fl.FeatureStore:
    repo = tmp_path / "repo"
    fl.init_repo(repo, project="pred", with_data=False)
    (repo / "definitions.py").unlink()
    s = fl.FeatureStore(repo)
    merchant = fl.Entity("merchant", ["merchant_id"])
    view = fl.FeatureView(
        "m",
        [merchant],
        [
            fl.Field("merchant_id", fl.Int64),
            fl.Field("mcc", fl.String),
            fl.Field("amount", fl.Float64),
        ],
        ttl=timedelta(days=1),
    )
    s.apply([merchant, view])
    now = datetime.now(UTC) - timedelta(seconds=1)
    s.push(
        "m",
        pa.table(
            {
                "merchant_id": pa.array([1, 2, 3], pa.int64()),
                "event_timestamp": pa.array([now] * 3, TS),
                "mcc": ["5411", "7995", None],
                "amount": [10.0, 900.0, 50.0],
            }
        ),
    )
    return s


def _register(store: fl.FeatureStore, model: object, **card: object) -> None:
    training = {
        "features": ["m@v1:mcc", "m@v1:amount"],
        "feature_columns": ["m__mcc", "m__amount"],
        "feature_types": {"m@v1:mcc": "String", "m@v1:amount": "Float64"},
        **card,
    }
    store.models.register(
        "fraud", model, features=training["features"], training=training, alias="production"
    )


def _pipeline() -> object:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    x = pd.DataFrame(
        {"m__mcc": ["5411", "7995", "5411", "7995"], "m__amount": [5.0, 800.0, 20.0, 950.0]}
    )
    enc = ColumnTransformer(
        [("mcc", OneHotEncoder(handle_unknown="ignore"), ["m__mcc"])], remainder="passthrough"
    )
    return make_pipeline(enc, LogisticRegression()).fit(x, [0, 1, 0, 1])


def test_a_string_feature_reaches_a_pipeline_with_encoders(store: fl.FeatureStore) -> None:
    _register(store, _pipeline())
    with ThreadServer(create_app(store.repo_path)) as url, httpx.Client(base_url=url) as c:
        r = c.post(
            "/models/fraud/predict", json={"entities": {"merchant_id": [1, 2, 3]}, "proba": True}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert (
            body["predictions"][:2] == [0, 1] and body["predictions"][2] is None
        )  # mcc missing: no prediction
        assert (
            body["classes"] == [0, 1]
            and len(body["probabilities"][0]) == 2
            and body["probabilities"][2] is None
        )
        assert abs(sum(body["probabilities"][1]) - 1) < 1e-9
        r = c.post("/models/fraud/predict", json={"entities": {"merchant_id": [1]}, "proba": "yes"})
        assert r.status_code == 400 and "`proba`" in r.json()["message"]


def test_a_model_that_handles_missing_values_sees_nan(store: fl.FeatureStore) -> None:
    class CountsMissing:
        feature_names_in_ = ["m__mcc", "m__amount"]

        def predict(self, x: pd.DataFrame) -> list[int]:
            assert list(x.columns) == self.feature_names_in_ and x["m__amount"].dtype == float
            return [int(pd.isna(v)) for v in x["m__mcc"]]

    _register(store, CountsMissing(), handles_missing=True)
    got = Predictor(store, store.models).predict("fraud", {"merchant_id": [1, 3]})
    assert got["predictions"] == [0, 1]
