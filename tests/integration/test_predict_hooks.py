"""Pre/post-processing hooks stored with a model version (issue 9, item 8): applied by the
predict route and by in-process prediction, stored by value (a process that cannot import the
module that defined them still runs them), and an error inside a hook is a 422 naming the hook."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import featureline as fl
from featureline.errors import ModelHookError
from featureline.models import Predictor
from featureline.server import create_app
from tests.integration.server_kit import SRC, ThreadServer, error

TS = pa.timestamp("us", tz="UTC")
FEATURES = ["m@v1:mcc", "m@v1:amount"]
TRAINING = {
    "features": FEATURES,
    "feature_columns": ["m__mcc", "m__amount"],
    "feature_types": {"m@v1:mcc": "String", "m@v1:amount": "Float64"},
}
LABELS = {0: "ok", 1: "fraud"}


@pytest.fixture
def store(tmp_path: Path) -> fl.FeatureStore:
    repo = tmp_path / "repo"
    fl.init_repo(repo, project="hooks", with_data=False)
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
                "mcc": ["5411", "7995", "5411"],
                "amount": [10.0, 900.0, 50.0],
            }
        ),
    )
    return s


class Threshold:
    """A model that takes a float matrix (what the pre-processing hook makes of the frame)."""

    def predict(self, x: Any) -> Any:
        assert isinstance(x, np.ndarray) and x.shape[1] == 2
        return (x[:, 0] * x[:, 1] > 100).astype(int)


def encode(frame: pd.DataFrame) -> np.ndarray:
    """The hook sees the features frame with the training set's names and dtypes."""
    assert list(frame.columns) == ["m__mcc", "m__amount"] and frame["m__amount"].dtype == float
    risky = (frame["m__mcc"] == "7995").astype(float)
    return np.column_stack([risky + 1, frame["m__amount"]])


def label(predictions: Any) -> list[str]:
    return [LABELS[int(p)] for p in predictions]


def broken_encode(frame: pd.DataFrame) -> Any:
    return frame["no_such_column"]


def one_row_too_many(frame: pd.DataFrame) -> Any:
    return np.zeros((len(frame) + 1, 2))


def _register(store: fl.FeatureStore, name: str, **hooks: Any) -> fl.FeatureStore:
    store.models.register(
        name, Threshold(), features=FEATURES, training=TRAINING, alias="production", **hooks
    )
    return store


def test_hooks_are_applied_by_the_route_and_in_process(store: fl.FeatureStore) -> None:
    _register(store, "fraud", preprocess=encode, postprocess=label)
    mv = store.models.get("fraud")
    assert mv.hooks == {
        "preprocess": f"{__name__}.encode",
        "postprocess": f"{__name__}.label",
    }
    assert isinstance(mv.load(), Threshold)  # load() is the model as registered
    want = ["ok", "fraud", "ok"]  # 1*10, 2*900, 1*50 against 100
    got = Predictor(store, store.models).predict("fraud", {"merchant_id": [1, 2, 3]})
    assert got["predictions"] == want
    with ThreadServer(create_app(store.repo_path)) as url, httpx.Client(base_url=url) as c:
        r = c.post("/models/fraud/predict", json={"entities": {"merchant_id": [1, 2, 3]}})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == want


def test_an_error_in_a_hook_is_a_422_naming_the_hook(store: fl.FeatureStore) -> None:
    _register(store, "broken", preprocess=broken_encode)
    _register(store, "long", preprocess=one_row_too_many)
    with pytest.raises(ModelHookError, match=r"preprocess hook `broken_encode`.*KeyError"):
        Predictor(store, store.models).predict("broken", {"merchant_id": [1]})
    with ThreadServer(create_app(store.repo_path)) as url, httpx.Client(base_url=url) as c:
        r = c.post("/models/broken/predict", json={"entities": {"merchant_id": [1, 2]}})
        error(r, 422, "`broken_encode`", "`broken:1`", "KeyError", "no_such_column")
        assert r.json()["error"] == "ModelHookError"
        r = c.post("/models/long/predict", json={"entities": {"merchant_id": [1, 2]}})
        error(r, 422, "returned 3 rows for 2 rows")


def test_a_hook_that_is_not_a_function_is_refused(store: fl.FeatureStore) -> None:
    with pytest.raises(fl.FeaturelineError, match="`postprocess` of model `x` must be a function"):
        store.models.register("x", Threshold(), features=FEATURES, postprocess="label")  # type: ignore[arg-type]


def test_hooks_are_stored_by_value(store: fl.FeatureStore, tmp_path: Path) -> None:
    """A process that cannot import this test module (a server elsewhere) still runs the hooks."""
    _register(store, "fraud", preprocess=encode, postprocess=label)
    script = (
        "import json, sys\n"
        "import featureline as fl\n"
        "from featureline.models import Predictor\n"
        "assert 'tests' not in sys.modules\n"
        f"s = fl.FeatureStore({str(store.repo_path)!r})\n"
        "print(json.dumps(Predictor(s, s.models).predict('fraud', {'merchant_id': [2, 3]})['predictions']))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == ["fraud", "ok"]
