"""A repo for the web UI's object pages: the UI repo of `ui_kit` (the drivers example, two runs of
its training pipeline, a model with two versions), plus an on-demand view, a constrained view
whose ingestion quarantined rows, a service over two views, and a second apply that changes the
entity and the first service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

import featureline as fl
from tests.ui_kit import ui_repo

MORE = """

from featureline import Check, RequestSource, on_demand_feature_view, String

trip = RequestSource("trip", [Field("distance_km", Float64)])


@on_demand_feature_view(
    sources=[driver_stats, trip],
    schema=[Field("expected_trips", Float64)],
    description="Trips a driver completes on this distance",
)
def expected_trips(inputs):
    return {
        "expected_trips": [
            None if a is None or d is None else a * d
            for a, d in zip(inputs["acc_rate"], inputs["distance_km"])
        ]
    }


payments = FeatureView(
    name="payments",
    entities=[driver],
    schema=[
        Field("driver_id", Int64),
        Field("amount", Float64, constraints=[Check.min(0), Check.not_null()]),
        Field("currency", String, constraints=[Check.isin(["EUR", "USD"])]),
    ],
    source=FileSource(path="data/payments.parquet", timestamp_field="event_timestamp"),
    checks=[Check.sql("amount_ok", "amount < 10000")],
    owner="risk@example.com",
    description="Payments to drivers, checked on ingestion",
)

trip_scoring = FeatureService(
    name="trip_scoring",
    features=["driver_stats:conv_rate", "payments:amount"],
    description="What the trip scorer reads",
)
"""


def _payments(path: Path) -> int:
    """Ten payments, three of which break a constraint; returns how many do."""
    now = datetime.now(UTC).replace(microsecond=0)
    amounts = [10.0, 20.0, -5.0, 30.0, 40.0, 50000.0, 60.0, 70.0, 80.0, 90.0]
    currency = ["EUR", "USD", "EUR", "EUR", "GBP", "EUR", "USD", "EUR", "USD", "EUR"]
    pq.write_table(
        pa.table(
            {
                "driver_id": pa.array([1001 + i % 3 for i in range(10)], pa.int64()),
                "event_timestamp": pa.array(
                    [now - timedelta(hours=i) for i in range(10)], pa.timestamp("us", "UTC")
                ),
                "amount": amounts,
                "currency": currency,
            }
        ),
        path,
    )
    return 3


def pages_repo(root: Path) -> dict[str, Any]:
    info = ui_repo(root)
    defs = root / "definitions.py"
    defs.write_text(defs.read_text() + MORE)
    bad = _payments(root / "data" / "payments.parquet")
    with fl.FeatureStore(root) as store:
        store.apply(message="payments and an on-demand view")
        store.ingest("payments")
    text = defs.read_text()
    text = text.replace(
        'description="A driver of the fleet"', 'description="A driver of the fleet (v2)"'
    )
    text = text.replace(
        'FeatureService(name="driver_activity", features=[driver_stats])',
        'FeatureService(name="driver_activity", features=[driver_stats], owner="ml@example.com")',
    )
    defs.write_text(text)
    with fl.FeatureStore(root) as store:
        store.apply(message="entity and service changed")
    return {**info, "quarantined": bad}
