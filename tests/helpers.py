"""Small builders shared by tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

import featureline as fl

TS = pa.timestamp("us", tz="UTC")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def driver_defs(ttl: timedelta | None = timedelta(hours=2)) -> tuple[fl.Entity, fl.FeatureView]:
    driver = fl.Entity("driver", ["driver_id"])
    view = fl.FeatureView(
        "driver_stats",
        entities=[driver],
        schema=[
            fl.Field("driver_id", fl.Int64),
            fl.Field("rate", fl.Float64),
            fl.Field("trips", fl.Int64),
        ],
        ttl=ttl,
    )
    return driver, view


def new_store(tmp: Path, *objects: object) -> fl.FeatureStore:
    repo = tmp / "repo"
    fl.init_repo(repo, project="t", with_data=False)
    (repo / "definitions.py").unlink()
    store = fl.FeatureStore(repo)
    if objects:
        store.apply(list(objects))
    return store


def rows(
    ids: list[int], times: list[datetime], rate: list[float], trips: list[int] | None = None
) -> pa.Table:
    return pa.table(
        {
            "driver_id": pa.array(ids, pa.int64()),
            "event_timestamp": pa.array(times, TS),
            "rate": pa.array(rate, pa.float64()),
            "trips": pa.array(trips if trips is not None else list(range(len(ids))), pa.int64()),
        }
    )
