"""Versioned views and as-of time travel over both rows and definitions (DESIGN §3)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

import featureline as fl
from featureline.errors import ConflictError, NotFoundError, ValidationError
from tests.helpers import TS, driver_defs, new_store, rows, utc


def _entities(ids: list[int], at: list) -> pa.Table:  # type: ignore[type-arg]
    return pa.table({"driver_id": pa.array(ids, pa.int64()), "event_timestamp": pa.array(at, TS)})


def test_breaking_change_refused_then_new_version_keeps_both_readable(tmp_path: Path) -> None:
    driver, v1 = driver_defs(ttl=None)
    store = new_store(tmp_path, driver, v1)
    store.ingest("driver_stats", rows([1], [utc(2025, 1, 1)], [0.5], [7]))

    v2 = fl.FeatureView(
        "driver_stats",
        [driver],
        [
            fl.Field("driver_id", fl.Int64),
            fl.Field("rate", fl.Float64),
            fl.Field("trips", fl.Float64),
        ],
    )
    with pytest.raises(ConflictError, match=r"trips.*Int64 -> Float64.*--new-version driver_stats"):
        store.apply([driver, v2])
    assert store.get_feature_view("driver_stats").version == 1

    rv = store.apply([driver, v2], new_versions=["driver_stats"])
    assert rv is not None
    assert [v.version for v in store.catalog().views["driver_stats"]] == [1, 2]
    new = pa.table(
        {
            "driver_id": [1],
            "event_timestamp": pa.array([utc(2025, 1, 1)], TS),
            "rate": [0.9],
            "trips": [2.5],
        }
    )
    store.ingest("driver_stats", new)

    ent = _entities([1], [utc(2025, 1, 2)])
    latest = store.get_training_set(ent, ["driver_stats:trips", "driver_stats:rate"]).to_arrow()
    assert (
        latest.column("trips").to_pylist() == [2.5]
        and latest.schema.field("trips").type == pa.float64()
    )
    old = store.get_training_set(ent, ["driver_stats@v1:trips"]).to_arrow()
    assert old.column("trips").to_pylist() == [7] and old.schema.field("trips").type == pa.int64()
    with pytest.raises(NotFoundError, match=r"has no version 3; it has v1, v2"):
        store.get_training_set(ent, ["driver_stats@v3:trips"])
    # two versions of one view in one training set: full names carry the version
    both = store.get_training_set(
        ent, ["driver_stats@v1:trips", "driver_stats:trips"], full_feature_names=True
    ).to_arrow()
    assert both.column("driver_stats@v1__trips").to_pylist() == [7]
    assert both.column("driver_stats@v2__trips").to_pylist() == [2.5]
    with pytest.raises(ValidationError, match=r"`trips`.*would clash.*full_feature_names=True"):
        store.get_training_set(ent, ["driver_stats@v1:trips", "driver_stats:trips"])


def test_as_of_uses_the_definitions_of_that_time(tmp_path: Path) -> None:
    driver, v1 = driver_defs(ttl=timedelta(days=1))
    store = new_store(tmp_path, driver, v1)
    first = store.ingest("driver_stats", rows([1], [utc(2025, 1, 1)], [0.5]))
    wider = fl.FeatureView(
        "driver_stats",
        [driver],
        [
            fl.Field("driver_id", fl.Int64),
            fl.Field("rate", fl.Float64),
            fl.Field("trips", fl.Int64),
            fl.Field("new_f", fl.Float64),
        ],
        ttl=timedelta(days=10),
    )
    store.apply([driver, wider])
    t = pa.table(
        {
            "driver_id": [1],
            "event_timestamp": pa.array([utc(2025, 1, 1)], TS),
            "rate": [0.7],
            "trips": [1],
            "new_f": [3.0],
        }
    )
    store.ingest("driver_stats", t)

    ent = _entities([1], [utc(2025, 1, 5)])  # 4 days later: inside the new ttl, outside the old
    now = store.get_training_set(ent, ["driver_stats:rate", "driver_stats:new_f"]).to_arrow()
    assert now.column("rate").to_pylist() == [0.7] and now.column("new_f").to_pylist() == [3.0]
    past = store.get_training_set(ent, ["driver_stats:rate"], as_of=first.ingested_at).to_arrow()
    assert past.column("rate").to_pylist() == [None]  # old ttl (1 day) applies as of then
    inside = store.get_training_set(
        _entities([1], [utc(2025, 1, 1, 12)]), ["driver_stats:rate"], as_of=first.ingested_at
    )
    assert inside.to_arrow().column("rate").to_pylist() == [
        0.5
    ]  # the row known then, not the correction
    with pytest.raises(NotFoundError, match=r"no feature `new_f`"):
        store.get_training_set(ent, ["driver_stats:new_f"], as_of=first.ingested_at)
    with pytest.raises(NotFoundError, match=r"held no definitions at"):
        store.get_training_set(ent, ["driver_stats:rate"], as_of=utc(2000, 1, 1))


def test_compaction_keeps_every_as_of_answer(tmp_path: Path) -> None:
    driver, view = driver_defs(ttl=None)
    store = new_store(tmp_path, driver, view)
    ts = utc(2025, 1, 1)
    cuts = []
    for i in range(4):
        cuts.append(
            store.ingest(
                "driver_stats", rows([1, 2], [ts, ts], [float(i), float(10 + i)])
            ).ingested_at
        )
    ent = _entities([1, 2, 3], [utc(2025, 1, 2)] * 3)
    before = [
        store.get_training_set(ent, ["driver_stats:rate"], as_of=c).to_arrow()
        for c in [*cuts, None]
    ]
    assert store.offline.compact(store.get_feature_view("driver_stats")) is not None
    assert len(store.offline.parts("driver_stats", 1)) == 1
    after = [
        store.get_training_set(ent, ["driver_stats:rate"], as_of=c).to_arrow()
        for c in [*cuts, None]
    ]
    assert before == after
    assert after[-1].column("rate").to_pylist() == [3.0, 13.0, None]
    assert after[0].column("rate").to_pylist() == [0.0, 10.0, None]


def test_both_view_versions_are_served_online(tmp_path: Path) -> None:
    driver, v1 = driver_defs(ttl=None)
    store = new_store(tmp_path, driver, v1)
    store.ingest("driver_stats", rows([1], [utc(2025, 1, 1)], [0.5], [7]))
    v2 = fl.FeatureView(
        "driver_stats",
        [driver],
        [
            fl.Field("driver_id", fl.Int64),
            fl.Field("rate", fl.Float64),
            fl.Field("trips", fl.Float64),
        ],
    )
    store.apply([driver, v2], new_versions=["driver_stats"])
    store.ingest(
        "driver_stats",
        pa.table(
            {
                "driver_id": [1],
                "event_timestamp": pa.array([utc(2025, 1, 1)], TS),
                "rate": [0.9],
                "trips": [2.5],
            }
        ),
    )
    results = store.materialize_incremental()
    assert sorted((r.view, r.version) for r in results) == [
        ("driver_stats", 1),
        ("driver_stats", 2),
    ]
    got = store.get_online_features(
        ["driver_stats@v1:trips", "driver_stats:rate"], {"driver_id": [1]}, full_feature_names=True
    )
    assert got.to_dict()["driver_stats__trips"] == [7] and got.to_dict()["driver_stats__rate"] == [
        0.9
    ]


def test_many_small_commits_are_merged_and_every_answer_kept(tmp_path: Path) -> None:
    from featureline.offline import store as offline_store

    driver, view = driver_defs(ttl=None)
    store = new_store(tmp_path, driver, view)
    cuts = []
    for i in range(20):  # pushes: one tiny commit each
        t = rows([i % 3, 9], [utc(2025, 1, 1, i % 4), utc(2025, 1, 1)], [float(i), float(100 + i)])
        cuts.append(store.ingest("driver_stats", t).ingested_at)
    assert len(store.offline.commits("driver_stats", 1)) < offline_store.COMPACT_AFTER
    ent = _entities([0, 1, 2, 9, 5], [utc(2025, 1, 2)] * 5)
    got = [
        store.get_training_set(ent, ["driver_stats:rate"], as_of=c)
        .to_arrow()
        .column("rate")
        .to_pylist()
        for c in cuts
    ]
    # the expected answers, from the rules: latest event per key, ties -> the latest ingested
    for k, cut in enumerate(cuts):
        best: dict[int, tuple[tuple[int, int], float]] = {}
        for i in range(k + 1):
            for key, hour, val in ((i % 3, i % 4, float(i)), (9, 0, float(100 + i))):
                if key not in best or (hour, i) > best[key][0]:
                    best[key] = ((hour, i), val)
        assert got[k] == [best.get(x, (None, None))[1] for x in (0, 1, 2, 9, 5)], (
            f"as of cut {k} ({cut})"
        )
