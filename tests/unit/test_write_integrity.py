"""Writes are counted once and never un-acknowledged (issue 7: idempotency keys, failures after
the commit point, a quote in the repo path, the future bound, compaction compare-and-swap)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import featureline as fl
from featureline.errors import PartialWriteError, ValidationError
from featureline.offline import store as offline_store
from featureline.offline._log import CommitConflict
from tests.helpers import driver_defs, new_store, rows, utc


def _n(store: fl.FeatureStore) -> int:
    return int(store.describe("driver_stats")["rows"])


def test_same_idempotency_key_twice_is_one_commit(tmp_path: Path) -> None:
    store = new_store(tmp_path, *driver_defs())
    batch = rows([1, 2], [utc(2025, 1, 1)] * 2, [0.1, 0.2])
    first = store.ingest("driver_stats", batch, idempotency_key="batch-7")
    again = store.ingest("driver_stats", batch, idempotency_key="batch-7")
    assert (again.commit, again.ingested_at, again.replayed) == (
        first.commit,
        first.ingested_at,
        True,
    )
    assert _n(store) == 2
    other = store.ingest("driver_stats", batch, idempotency_key="batch-8")
    assert other.commit == first.commit + 1 and _n(store) == 4


def test_idempotency_key_survives_compaction_and_push_replay_reaches_online(tmp_path: Path) -> None:
    store = new_store(tmp_path, *driver_defs(ttl=timedelta(days=1)))
    now = datetime.now(UTC)
    first = store.push("driver_stats", rows([5], [now], [0.5]), idempotency_key="k")
    store.push("driver_stats", rows([6], [now], [0.6]))
    assert store.offline.compact(store.get_feature_view("driver_stats")) is not None
    again = store.push("driver_stats", rows([5], [now], [0.5]), idempotency_key="k")
    assert again.commit == first.commit and again.replayed
    assert _n(store) == 2
    assert store.get_online_features(["driver_stats:rate"], {"driver_id": [5, 6]}).to_dict()[
        "rate"
    ] == [0.5, 0.6]


def test_push_to_offline_only_leaves_online_untouched(tmp_path: Path) -> None:
    store = new_store(tmp_path, *driver_defs(ttl=timedelta(days=1)))
    store.push("driver_stats", rows([1], [datetime.now(UTC)], [0.1]), to="offline")
    assert _n(store) == 1
    assert store.get_online_features(["driver_stats:rate"], {"driver_id": [1]}).statuses[
        "rate"
    ] == ["NOT_FOUND"]
    with pytest.raises(ValidationError, match="not a push target"):
        store.push("driver_stats", rows([1], [datetime.now(UTC)], [0.1]), to="ofline")


def test_failure_after_commit_is_not_a_failed_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = new_store(tmp_path, *driver_defs())

    def broken(*a: object, **k: object) -> None:
        raise OSError("merge failed (simulated)")

    monkeypatch.setattr(offline_store.OfflineStore, "_compact", broken)
    for i in range(offline_store.COMPACT_AFTER + 2):  # automatic compaction runs and fails
        r = store.ingest("driver_stats", rows([i], [utc(2025, 1, 1)], [0.1]))
        assert r.commit == i + 1
    assert _n(store) == offline_store.COMPACT_AFTER + 2


def test_online_apply_failure_names_the_commit_and_a_keyed_retry_completes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = new_store(tmp_path, *driver_defs(ttl=timedelta(days=1)))
    now = datetime.now(UTC)
    real = store.online.write

    def down(*a: object, **k: object) -> None:
        raise OSError("online store down (simulated)")

    monkeypatch.setattr(store.online, "write", down)
    with pytest.raises(PartialWriteError, match="committed offline") as e:
        store.push("driver_stats", rows([1], [now], [0.1]), idempotency_key="p1")
    assert e.value.commit == 1 and _n(store) == 1
    monkeypatch.setattr(store.online, "write", real)
    assert store.push("driver_stats", rows([1], [now], [0.1]), idempotency_key="p1").replayed
    assert _n(store) == 1
    assert store.get_online_features(["driver_stats:rate"], {"driver_id": [1]}).to_dict()[
        "rate"
    ] == [0.1]


def test_repo_path_with_a_quote_compacts(tmp_path: Path) -> None:
    store = new_store(tmp_path / "it's here", *driver_defs())
    for i in range(offline_store.COMPACT_AFTER):
        store.ingest("driver_stats", rows([i], [utc(2025, 1, 1)], [0.1 * i]))
    assert len(store.offline.commits("driver_stats", 1)) == 1  # merged automatically
    assert _n(store) == offline_store.COMPACT_AFTER


def test_event_times_far_in_the_future_are_refused(tmp_path: Path) -> None:
    store = new_store(tmp_path, *driver_defs())
    with pytest.raises(
        ValidationError,
        match=r"1 row\(s\) have an event time more than 300 s in the future.*max_future_seconds",
    ):
        store.push(
            "driver_stats",
            rows([1, 2], [datetime.now(UTC), datetime(9999, 1, 1, tzinfo=UTC)], [0.1, 0.2]),
        )
    assert store.offline.commits("driver_stats", 1) == []
    store.push(
        "driver_stats", rows([1], [datetime.now(UTC) + timedelta(seconds=60)], [0.1])
    )  # within the bound
    assert _n(store) == 1


def test_a_stale_compaction_commits_nothing(tmp_path: Path) -> None:
    store = new_store(tmp_path, *driver_defs())
    for i in range(3):
        store.ingest("driver_stats", rows([i], [utc(2025, 1, 1)], [0.1]))
    log = store.offline.log("driver_stats", 1)
    chosen = [c.seq for c in log.live_commits()]
    assert store.offline.compact(store.get_feature_view("driver_stats")) is not None
    files = set((log.root / "parts").iterdir())
    with pytest.raises(CommitConflict):  # a second compactor that chose the same commits loses
        log.commit(
            lambda: [offline_store.Part("parts/x.parquet", 3, compacted=True)], replaces=chosen
        )
    assert set((log.root / "parts").iterdir()) == files
    assert _n(store) == 3


def test_vacuum_reclaims_superseded_and_orphaned_files_and_keeps_every_as_of_answer(
    tmp_path: Path,
) -> None:
    import os
    import time

    store = new_store(tmp_path, *driver_defs(ttl=None))
    cuts = []
    for i in range(6):  # corrections of the same keys: every cut has its own answer
        store.ingest(
            "driver_stats", rows([1, 2, 3], [utc(2025, 1, 1)] * 3, [i + 0.1, i + 0.2, i + 0.3])
        )
        cuts.append(datetime.now(UTC))
    ent = {"driver_id": [1, 2, 3], "event_timestamp": [utc(2025, 1, 2)] * 3}

    def answers() -> list[list[float]]:
        return [
            store.get_training_set(ent, ["driver_stats:rate"], as_of=t)
            .to_arrow()
            .column("rate")
            .to_pylist()
            for t in cuts
        ]

    before = answers()
    assert before[0] == [0.1, 0.2, 0.3] and before[-1] == [5.1, 5.2, 5.3]
    parts = tmp_path / "repo" / "data" / "offline" / "driver_stats" / "v1" / "parts"
    orphan = parts / "part-killed.parquet.tmp"
    orphan.write_bytes(b"half a file")
    young = parts / "part-inflight.parquet.tmp"
    young.write_bytes(b"being written")
    old = time.time() - 7200
    os.utime(orphan, (old, old))
    assert store.compact("driver_stats") is not None
    assert len(list(parts.glob("*.parquet"))) == 7  # superseded parts kept for readers in flight
    assert not orphan.exists() and young.exists()  # the automatic vacuum took the old leftover only
    results = store.vacuum("driver_stats", grace_seconds=0)
    assert results[0].files_removed == 6  # the six superseded parts
    assert sorted(p.name for p in parts.iterdir()) == sorted(
        [young.name, *(p.name for p in parts.glob("*.parquet"))]
    )
    assert len(list(parts.glob("*.parquet"))) == 1
    assert answers() == before
    with pytest.raises(ValidationError, match="negative"):
        store.vacuum("driver_stats", grace_seconds=-1)


def test_undeclared_columns_and_non_finite_values_are_reported(tmp_path: Path) -> None:
    import pyarrow as pa

    store = new_store(tmp_path, *driver_defs())
    t = rows([1, 2, 3], [utc(2025, 1, 1)] * 3, [float("nan"), float("inf"), 0.5])
    t = t.append_column("note", pa.array(["a", "b", "c"]))
    r = store.ingest("driver_stats", t)
    assert r.ignored_columns == ("note",) and r.non_finite == {"rate": 2}
    assert "ignored column(s) not in the view: note" in str(r) and "rate 2" in str(r)
    clean = store.ingest("driver_stats", rows([4], [utc(2025, 1, 1)], [0.1]))
    assert clean.ignored_columns == () and clean.non_finite == {}
