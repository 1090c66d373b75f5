"""The web UI reads the registry's latest snapshot once per registry version: a cheap head check
per request, and an apply (here or from another store on the same repo) invalidates it."""

from __future__ import annotations

import featureline as fl
from featureline.server._ui_data import UiData
from tests.helpers import driver_defs, new_store


def test_catalog_cached_until_an_apply(tmp_path: object) -> None:
    store = new_store(tmp_path, *driver_defs(ttl=None))  # type: ignore[arg-type]
    ui = UiData(store)
    reads = []
    real = store.latest_version

    def counted() -> object:
        reads.append(1)
        return real()

    store.latest_version = counted  # type: ignore[method-assign]
    assert ui.search("driver_stats")["total"] == 1
    assert ui.search("trips_view")["total"] == 0
    ui.search("driver")
    assert len(reads) == 1  # one read of the snapshot for three searches
    driver, _ = driver_defs(ttl=None)
    other = fl.FeatureStore(store.repo_path)  # another writer on the same repo
    other.apply(
        [
            driver,
            fl.FeatureView(
                "trips_view",
                entities=[driver],
                schema=[fl.Field("driver_id", fl.Int64), fl.Field("trips", fl.Int64)],
                source=fl.FileSource(path="data/none.parquet", timestamp_field="event_timestamp"),
            ),
        ]
    )
    other.close()
    assert ui.search("trips_view")["total"] == 1  # the apply invalidated the cache
    assert len(reads) == 2
    assert ui.view("trips_view")["name"] == "trips_view"
    assert len(reads) == 2
    store.close()
