"""The façade methods the server and the pipeline steps use instead of reaching the backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.helpers import driver_defs, new_store, rows


def test_latest_version_and_online_health(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    assert store.latest_version() is None
    store.apply(list(driver_defs()))
    latest = store.latest_version()
    assert latest is not None and latest.version == store.history()[-1].version
    health = store.online_health()
    assert health["ok"] is True and health["backend"]


def test_commits_as_of(tmp_path: Path) -> None:
    store = new_store(tmp_path, *driver_defs())
    now = datetime.now(UTC)
    first = store.ingest("driver_stats", rows([1], [now - timedelta(hours=1)], [0.1]))
    store.ingest("driver_stats", rows([2], [now - timedelta(hours=1)], [0.2]))
    view = store.get_feature_view("driver_stats")
    assert len(store.commits(view)) == len(store.commits("driver_stats")) == 2
    assert len(store.commits(view, first.ingested_at)) == 1
    assert store.commits(view, first.ingested_at - timedelta(seconds=1)) == []


def test_materialize_incremental_stops_at_end(tmp_path: Path) -> None:
    store = new_store(tmp_path, *driver_defs())
    now = datetime.now(UTC).replace(microsecond=0)
    store.ingest("driver_stats", rows([1], [now - timedelta(minutes=20)], [0.1]))
    store.ingest("driver_stats", rows([2], [now - timedelta(minutes=2)], [0.2]))

    def rates() -> list[float | None]:
        got = store.get_online_features(["driver_stats:rate"], [{"driver_id": 1}, {"driver_id": 2}])
        return list(got.to_dict()["rate"])

    store.materialize_incremental(end=now - timedelta(minutes=10))
    assert rates() == [0.1, None]  # dated after `end`: left for a later run
    store.materialize_incremental()
    assert rates() == [0.1, 0.2]
