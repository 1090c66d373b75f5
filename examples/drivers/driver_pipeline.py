"""The training pipeline of the demo: entity rows -> training set -> train -> evaluate -> register.

Run it with `featureline --repo examples/drivers/repo run driver_pipeline:training` (from this
folder) or from Python: `featureline.pipelines.runner.run(training, {"repo": ...})`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from featureline.models.steps import build_training_set, register_model
from featureline.pipelines.dsl import pipeline, step, when


@step
def sample_trips(n: int, seed: int, drivers: int = 1_000, days: int = 28) -> pa.Table:
    """Trip requests: a driver (1001, 1002, ...) and a time in the last `days` days (the entity rows)."""
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    secs = rng.integers(3_600, days * 86_400, n)
    return pa.table(
        {
            "driver_id": pa.array(rng.integers(1001, 1001 + drivers, n), pa.int64()),
            "event_timestamp": pa.array(
                [now - timedelta(seconds=int(s)) for s in secs], pa.timestamp("us", tz="UTC")
            ),
            "trip_id": pa.array(np.arange(n), pa.int64()),
        }
    )


def _xy(table: pa.Table, columns: list[str], seed: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.column_stack(
        [table.column(c).to_numpy(zero_copy_only=False).astype(float) for c in columns]
    )
    keep = ~np.isnan(x).any(axis=1)
    x = x[keep]
    rng = np.random.default_rng(seed)
    # the outcome we learn: a completed trip, likelier for drivers who accept and complete more
    logit = 4.0 * (x[:, 1] - 0.5) + 2.0 * (x[:, 0] - 0.5) + rng.normal(0, 0.5, len(x))
    return x, (logit > 0).astype(int)


@step(outputs=("model", "auc", "metrics"))
def train(
    training_set: pa.Table, info: dict[str, Any], c: float = 1.0, seed: int = 0
) -> tuple[Any, float, dict[str, float]]:
    """Logistic regression on the features (rows with a missing feature are left out)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    x, y = _xy(training_set, info["feature_columns"], seed)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=seed)
    model = LogisticRegression(C=c).fit(x_tr, y_tr)
    auc = float(roc_auc_score(y_te, model.predict_proba(x_te)[:, 1]))
    acc = float(accuracy_score(y_te, model.predict(x_te)))
    print(f"trained on {len(x_tr)} rows, tested on {len(x_te)}: auc={auc:.3f} accuracy={acc:.3f}")
    return model, auc, {"auc": auc, "accuracy": acc, "train_rows": float(len(x_tr))}


@pipeline(name="driver_quality")
def training(
    repo: str,
    n: int = 5_000,
    seed: int = 7,
    c: float = 1.0,
    service: str = "driver_activity",
    drivers: int = 1_000,
    days: int = 28,
) -> None:
    trips = sample_trips(n, seed, drivers, days)
    ts, info = build_training_set(repo, trips, service)
    model, auc, metrics = train(ts, info, c, seed)
    with when(auc >= 0.6):  # only a model good enough is registered and deployed
        register_model(repo, "driver_quality", model, info, metrics, "production")
