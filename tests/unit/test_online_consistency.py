"""Online = offline at now (DESIGN §3): for generated data, every online store returns exactly
what the point-in-time join returns for (key, now) — TTL edges, ties, corrections, missing keys."""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import featureline as fl
from featureline.online._read import read_online, table_name
from tests.helpers import TS

USER = fl.Entity("user", ["user_id"])


def _view(ttl_s: int | None) -> fl.FeatureView:
    return fl.FeatureView(
        "v",
        [USER],
        [
            fl.Field("user_id", fl.Int64),
            fl.Field("x", fl.Float64),
            fl.Field("tag", fl.String),
            fl.Field("n", fl.Int64),
        ],
        source=fl.FileSource("data/v.parquet", "event_timestamp", "created"),
        ttl=timedelta(seconds=ttl_s) if ttl_s else None,
    )


row = st.fixed_dictionaries(
    {
        "user_id": st.integers(0, 4),
        "ago": st.integers(0, 6),  # event time = NOW - ago seconds
        "created": st.one_of(st.none(), st.integers(0, 2)),
        "x": st.floats(allow_nan=False, allow_infinity=False, width=32),
        "tag": st.one_of(st.none(), st.text(max_size=3)),
    }
)
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _us(t: datetime) -> int:
    return int(t.timestamp()) * 1_000_000 + t.microsecond


def _batch(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array([r["user_id"] for r in rows], pa.int64()),
            "event_timestamp": pa.array([NOW - timedelta(seconds=r["ago"]) for r in rows], TS),
            "created": pa.array(
                [
                    None if r["created"] is None else NOW + timedelta(seconds=r["created"])
                    for r in rows
                ],
                TS,
            ),
            "x": pa.array([r["x"] for r in rows], pa.float64()),
            "tag": pa.array([r["tag"] for r in rows], pa.string()),
            "n": pa.array(list(range(len(rows))), pa.int64()),
        }
    )


def _store(root: Path, online: dict[str, Any], ttl_s: int | None) -> fl.FeatureStore:
    fl.init_repo(root, project="p" + uuid.uuid4().hex[:8], with_data=False)
    (root / "definitions.py").unlink()
    cfg = (root / "featureline.yaml").read_text().split("online_store:")[0]
    body = "".join(f"\n  {k}: {v}" for k, v in online.items())
    # reads happen at a simulated NOW in 2030: let writes carry such event times
    (root / "featureline.yaml").write_text(
        cfg + "writes: {max_future_seconds: null}\nonline_store:" + body + "\n"
    )
    s = fl.FeatureStore(root)
    s.apply([USER, _view(ttl_s)])
    return s


@pytest.fixture(params=["sqlite", "redis"])
def online_cfg(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "sqlite":
        return {"type": "sqlite", "path": "data/online.db"}
    return {"type": "redis", "url": request.getfixturevalue("redis_url")}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(st.lists(row, min_size=1, max_size=8), min_size=1, max_size=3),
    ttl_s=st.sampled_from([None, 0, 2, 4]),
    materialize_after=st.integers(0, 2),
    use_push=st.booleans(),
)
def test_online_equals_training_set_at_now(
    online_cfg: dict[str, Any],
    batches: list[list[dict[str, Any]]],
    ttl_s: int | None,
    materialize_after: int,
    use_push: bool,
) -> None:
    root = Path(tempfile.mkdtemp())
    try:
        store = _store(root / "repo", online_cfg, ttl_s)
        for i, b in enumerate(batches):
            if use_push:
                store.push("v", _batch(b))
            else:
                store.ingest("v", _batch(b))
                if i == materialize_after:
                    store.materialize_incremental()
        store.materialize_incremental()
        keys = [0, 1, 2, 3, 4, 99]
        ent = pa.table(
            {
                "user_id": pa.array(keys, pa.int64()),
                "event_timestamp": pa.array([NOW] * len(keys), TS),
            }
        )
        feats = ["v:x", "v:tag", "v:n"]
        offline = store.get_training_set(ent, feats).to_arrow()
        cat = store.catalog()
        resolved = cat.resolve(feats)
        key_types = store.offline.key_types("v", 1)
        now_us = int(NOW.timestamp()) * 1_000_000
        got = read_online(store.online, resolved, {"user_id": keys}, key_types, now_us=now_us)
        for f in ("x", "tag", "n"):
            assert got.values[f] == offline.column(f).to_pylist(), f
        for i, _k in enumerate(keys):
            present = got.values["n"][i] is not None
            assert (got.statuses["n"][i] == "PRESENT") == present
        store.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_statuses_and_facade(tmp_path: Path) -> None:
    store = _store(tmp_path / "repo", {"type": "sqlite", "path": "data/online.db"}, 3600)
    now = datetime.now(UTC)
    t = pa.table(
        {
            "user_id": pa.array([1, 2], pa.int64()),
            "event_timestamp": pa.array(
                [now - timedelta(seconds=10), now - timedelta(hours=2)], TS
            ),
            "created": pa.array([None, None], TS),
            "x": [0.5, 0.7],
            "tag": ["a", None],
            "n": pa.array([1, 2], pa.int64()),
        }
    )
    store.ingest("v", t)
    r0 = store.get_online_features(["v:x"], [{"user_id": 1}])
    assert r0.statuses["x"] == ["NOT_FOUND"]  # not materialized yet
    res = store.materialize_incremental()
    assert res[0].keys_written == 2
    r = store.get_online_features(
        ["v:x", "v:tag"], [{"user_id": 1}, {"user_id": 2}, {"user_id": 3}]
    )
    assert r.to_dict() == {"user_id": [1, 2, 3], "x": [0.5, None, None], "tag": ["a", None, None]}
    assert r.statuses == {
        "x": ["PRESENT", "EXPIRED", "NOT_FOUND"],
        "tag": ["PRESENT", "EXPIRED", "NOT_FOUND"],
    }
    assert r.to_arrow().schema.field("x").type == pa.float64()
    assert len(r.to_pandas()) == 3
    # batch form and full names
    r2 = store.get_online_features(["v:x"], {"user_id": [1, 1]}, full_feature_names=True)
    assert r2.to_dict() == {"user_id": [1, 1], "v__x": [0.5, 0.5]}
    # a second run with nothing new writes nothing; a push is readable at once
    assert store.materialize_incremental()[0].keys_written == 0
    store.push(
        "v", [{"user_id": 3, "event_timestamp": now, "created": None, "x": 9.0, "tag": "z", "n": 3}]
    )
    assert store.get_online_features(["v:x"], [{"user_id": 3}]).to_dict()["x"] == [9.0]
    with pytest.raises(
        fl.FeaturelineError, match=r"join key `user_id` has value `'1'` of type str; expected Int64"
    ):
        store.get_online_features(["v:x"], [{"user_id": "1"}])
    with pytest.raises(fl.FeaturelineError, match=r"Did you mean `x`"):
        store.get_online_features(["v:xx"], [{"user_id": 1}])
    store.close()


def test_hot_path_is_fast(tmp_path: Path) -> None:
    """Not a benchmark (see bench/): a guard that reads do not hit the registry every call."""
    store = _store(tmp_path / "repo", {"type": "sqlite", "path": "data/online.db"}, None)
    store.push(
        "v",
        [
            {
                "user_id": 1,
                "event_timestamp": datetime.now(UTC),
                "created": None,
                "x": 1.0,
                "tag": "a",
                "n": 1,
            }
        ],
    )
    store.get_online_features(["v:x"], [{"user_id": 1}])
    t0 = time.perf_counter()
    for _ in range(200):
        store.get_online_features(["v:x", "v:tag", "v:n"], [{"user_id": 1}])
    assert (time.perf_counter() - t0) / 200 < 0.005
    store.close()


def test_online_equals_offline_after_many_pushes_and_merges(tmp_path: Path) -> None:
    store = _store(tmp_path / "repo", {"type": "sqlite", "path": "data/online.db"}, None)
    for i in range(20):  # 20 small commits: merged along the way
        store.push(
            "v",
            _batch(
                [{"user_id": i % 4, "ago": i % 5, "created": None, "x": float(i), "tag": str(i)}]
            ),
        )
    store.materialize_incremental()
    keys = [0, 1, 2, 3, 7]
    ent = pa.table(
        {"user_id": pa.array(keys, pa.int64()), "event_timestamp": pa.array([NOW] * len(keys), TS)}
    )
    offline = store.get_training_set(ent, ["v:x", "v:tag"]).to_arrow()
    resolved = store.catalog().resolve(["v:x", "v:tag"])
    at_now = read_online(
        store.online, resolved, {"user_id": keys}, {"user_id": "Int64"}, now_us=_us(NOW)
    )
    assert at_now.values["x"] == offline.column("x").to_pylist()
    assert at_now.values["tag"] == offline.column("tag").to_pylist()
    # the rows are dated 2030: today they are not served yet (online = offline at today)
    today = store.get_online_features(["v:x", "v:tag"], {"user_id": keys})
    assert today.to_dict()["x"] == [None] * len(keys)
    assert len(store.offline.commits("v", 1)) < 8
    store.close()


ahead_row = st.fixed_dictionaries(
    {
        "user_id": st.integers(0, 4),
        "at": st.integers(-6, 4),  # event time = BASE + at seconds: some are still ahead
        "created": st.one_of(st.none(), st.integers(0, 2)),
        "x": st.floats(allow_nan=False, allow_infinity=False, width=32),
        "tag": st.one_of(st.none(), st.text(max_size=3)),
    }
)


def _ahead_batch(rows: list[dict[str, Any]], base: datetime) -> pa.Table:
    t = _batch([{**r, "ago": 0} for r in rows])
    events = pa.array([base + timedelta(seconds=r["at"]) for r in rows], TS)
    return t.set_column(t.schema.get_field_index("event_timestamp"), "event_timestamp", events)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(st.lists(ahead_row, min_size=1, max_size=8), min_size=1, max_size=3),
    ttl_s=st.sampled_from([None, 3]),
    use_push=st.booleans(),
    promote_at=st.sampled_from([None, 0, 1, 2]),
)
def test_rows_dated_ahead_are_served_from_their_event_time_on(
    online_cfg: dict[str, Any],
    batches: list[list[dict[str, Any]]],
    ttl_s: int | None,
    use_push: bool,
    promote_at: int | None,
) -> None:
    """Issue 9 item 2: a row dated after now is served once its event time arrives, and the
    value it replaces is served until then — the online read at T equals the training set at T
    for every T from the last write on, whether or not due rows were promoted meanwhile."""
    root = Path(tempfile.mkdtemp())
    try:
        store = _store(root / "repo", online_cfg, ttl_s)
        base = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        for b in batches:
            (store.push if use_push else store.ingest)("v", _ahead_batch(b, base))
        if not use_push:
            store.materialize_incremental()
        after_writes = datetime.now(UTC)
        times = sorted(max(after_writes, base + timedelta(seconds=s)) for s in (-1, 1, 2, 3, 5))
        table = table_name(store.catalog().view("v"))
        if promote_at is not None:  # what a later write does first
            times = times[promote_at:]
            store.online.promote(table, _us(times[0]))
        keys = [0, 1, 2, 3, 4, 99]
        resolved = store.catalog().resolve(["v:x", "v:tag", "v:n"])
        for t in times:
            ent = pa.table(
                {
                    "user_id": pa.array(keys, pa.int64()),
                    "event_timestamp": pa.array([t] * len(keys), TS),
                }
            )
            offline = store.get_training_set(ent, ["v:x", "v:tag", "v:n"]).to_arrow()
            got = read_online(
                store.online, resolved, {"user_id": keys}, {"user_id": "Int64"}, now_us=_us(t)
            )
            for f in ("x", "tag", "n"):
                assert got.values[f] == offline.column(f).to_pylist(), (f, t - base)
        store.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
