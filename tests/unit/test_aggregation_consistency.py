"""Aggregation features: online = offline (issue 10 item 7, DESIGN §3 "Sliding-window
aggregations"). For generated event streams — out of order, duplicated, late, on tile
boundaries and window edges, some dated ahead — every function read online at `t` (tiles merged
at read time, on SQLite and Redis) equals the training-set value at `t`, which equals a plain
reference over the events; `as_of` before a late batch equals the value without it."""

from __future__ import annotations

import math
import shutil
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import featureline as fl
from featureline.online._read import read_online
from tests.helpers import TS

USER = fl.Entity("user", ["user_id"])
S = timedelta(seconds=1)


def _view(tile_s: int) -> fl.FeatureView:
    return fl.FeatureView(
        "tx",
        [USER],
        [
            fl.Field("user_id", fl.Int64),
            fl.Field("amount", fl.Float64),
            fl.Field("n", fl.Int64),
            fl.Field("tag", fl.String),
        ],
        source=fl.FileSource("data/tx.parquet", "event_timestamp", "created"),
        tile=tile_s * S,
        aggregations=[
            fl.Aggregation("amount", "count", 8 * S),
            fl.Aggregation("amount", "sum", 8 * S),
            fl.Aggregation("amount", "mean", 4 * S),
            fl.Aggregation("n", "sum", 8 * S),
            fl.Aggregation("n", "min", 4 * S),
            fl.Aggregation("amount", "max", 8 * S),
            fl.Aggregation("amount", "stddev", 8 * S),
            fl.Aggregation("tag", "last", None),
            fl.Aggregation("n", "count", None),
        ],
    )


FEATURES = [
    "tx:amount_count_8s",
    "tx:amount_sum_8s",
    "tx:amount_mean_4s",
    "tx:n_sum_8s",
    "tx:n_min_4s",
    "tx:amount_max_8s",
    "tx:amount_stddev_8s",
    "tx:tag_last_lifetime",
    "tx:n_count_lifetime",
]

event = st.fixed_dictionaries(
    {
        "user_id": st.integers(0, 3),
        "at_ms": st.integers(-20_000, 2_500),  # ms from BASE (the write time): some ahead
        "created": st.one_of(st.none(), st.integers(0, 1)),
        "amount": st.one_of(st.none(), st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False)),
        "n": st.one_of(st.none(), st.integers(-(2**40), 2**40)),
        "tag": st.one_of(st.none(), st.sampled_from(["a", "b", "c"])),
    }
)


def _batch(rows: list[dict[str, Any]], base: datetime) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array([r["user_id"] for r in rows], pa.int64()),
            "event_timestamp": pa.array(
                [base + timedelta(milliseconds=r["at_ms"]) for r in rows], TS
            ),
            "created": pa.array(
                [None if r["created"] is None else base + r["created"] * S for r in rows], TS
            ),
            "amount": pa.array([r["amount"] for r in rows], pa.float64()),
            "n": pa.array([r["n"] for r in rows], pa.int64()),
            "tag": pa.array([r["tag"] for r in rows], pa.string()),
        }
    )


def _store(root: Path, online: dict[str, Any], tile_s: int) -> fl.FeatureStore:
    fl.init_repo(root, project="p" + uuid.uuid4().hex[:8], with_data=False)
    (root / "definitions.py").unlink()
    cfg = (root / "featureline.yaml").read_text().split("online_store:")[0]
    body = "".join(f"\n  {k}: {v}" for k, v in online.items())
    (root / "featureline.yaml").write_text(cfg + "online_store:" + body + "\n")
    s = fl.FeatureStore(root)
    s.apply([USER, _view(tile_s)])
    return s


def _us(t: datetime) -> int:
    return int(t.timestamp()) * 1_000_000 + t.microsecond


def _reference(
    batches: list[list[dict[str, Any]]], base: datetime, key: int, t: datetime, tile_s: int
) -> dict[str, Any]:
    """count / sum / max over the window, by hand: one event per (key, event time), the tie rule."""
    winners: dict[int, tuple[Any, dict[str, Any]]] = {}
    for bi, b in enumerate(batches):
        for si, r in enumerate(b):
            if r["user_id"] != key:
                continue
            ev = _us(base) + r["at_ms"] * 1000
            rank = (-1 if r["created"] is None else r["created"], bi, si)
            if ev not in winners or winners[ev][0] < rank:
                winners[ev] = (rank, r)
    tu, w = _us(t), 8_000_000
    lo = tu - w
    if tile_s:
        s = tile_s * 1_000_000
        lo = -((-lo) // s) * s
    inside = [r for ev, (_, r) in winners.items() if lo <= ev <= tu]
    amounts = [r["amount"] for r in inside if r["amount"] is not None]
    return {
        "amount_count_8s": len(amounts),
        "amount_sum_8s": math.fsum(amounts) if amounts else None,
        "amount_max_8s": max(amounts) if amounts else None,
    }


@pytest.fixture(params=["sqlite", "redis"])
def online_cfg(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "sqlite":
        return {"type": "sqlite", "path": "data/online.db"}
    return {"type": "redis", "url": request.getfixturevalue("redis_url")}


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(st.lists(event, min_size=1, max_size=10), min_size=1, max_size=3),
    tile_s=st.sampled_from([0, 2]),
    use_push=st.booleans(),
)
def test_online_aggregations_equal_training_set_at_t(
    online_cfg: dict[str, Any], batches: list[list[dict[str, Any]]], tile_s: int, use_push: bool
) -> None:
    root = Path(tempfile.mkdtemp())
    try:
        store = _store(root / "repo", online_cfg, tile_s)
        base = datetime.now(UTC)
        keys = [0, 1, 2, 3, 99]
        first_cut: tuple[datetime, pa.Table] | None = None
        for i, b in enumerate(batches):
            (store.push if use_push else store.ingest)("tx", _batch(b, base))
            if i == 0 and len(batches) > 1:  # what the first batch alone gives, for as_of
                t0 = datetime.now(UTC)
                ent0 = pa.table(
                    {
                        "user_id": pa.array(keys, pa.int64()),
                        "event_timestamp": pa.array([t0] * 5, TS),
                    }
                )
                first_cut = (t0, store.get_training_set(ent0, FEATURES).to_arrow())
        if not use_push:
            store.materialize()
        after = datetime.now(UTC)
        resolved = store.catalog().resolve(FEATURES)
        names = [f.split(":")[1] for f in FEATURES]
        for t in sorted(
            {after, after + 1500 * (S / 1000), base + 2600 * (S / 1000), after + 9 * S}
        ):
            t = max(t, after)
            ent = pa.table(
                {"user_id": pa.array(keys, pa.int64()), "event_timestamp": pa.array([t] * 5, TS)}
            )
            offline = store.get_training_set(ent, FEATURES).to_arrow()
            got = read_online(
                store.online, resolved, {"user_id": keys}, {"user_id": "Int64"}, now_us=_us(t)
            )
            for name in names:
                assert got.values[name] == offline.column(name).to_pylist(), (name, t - base)
            for i, k in enumerate(keys):
                ref = _reference(batches, base, k, t, tile_s)
                for name, want in ref.items():
                    assert offline.column(name)[i].as_py() == want, (name, k, t - base)
        if first_cut is not None:  # as_of before the later batches: as if they never came
            t0, before = first_cut
            ent0 = pa.table(
                {"user_id": pa.array(keys, pa.int64()), "event_timestamp": pa.array([t0] * 5, TS)}
            )
            again = store.get_training_set(ent0, FEATURES, as_of=t0).to_arrow()
            assert again.to_pylist() == before.to_pylist()
        store.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_sketch_aggregations_online_equal_training_set(tmp_path: Path) -> None:
    """HLL distinct counts and KLL percentiles (exact below k values) agree online and offline."""
    view = fl.FeatureView(
        "tx",
        [USER],
        [fl.Field("user_id", fl.Int64), fl.Field("amount", fl.Float64), fl.Field("tag", fl.String)],
        tile=S,
        aggregations=[
            fl.Aggregation("tag", "approx_count_distinct", 60 * S),
            fl.Aggregation("amount", "approx_percentile", 60 * S, params={"q": 0.9}),
        ],
    )
    root = tmp_path / "repo"
    fl.init_repo(root, project="sk", with_data=False)
    (root / "definitions.py").unlink()
    store = fl.FeatureStore(root)
    store.apply([USER, view])
    now = datetime.now(UTC)
    rows = [
        {
            "user_id": i % 3,
            "event_timestamp": now - timedelta(milliseconds=300 * i),
            "amount": float(i * 7 % 23),
            "tag": f"t{i % 11}",
        }
        for i in range(150)
    ]
    store.push(
        "tx",
        pa.Table.from_pylist(
            rows,
            schema=pa.schema(
                [
                    ("user_id", pa.int64()),
                    ("event_timestamp", TS),
                    ("amount", pa.float64()),
                    ("tag", pa.string()),
                ]
            ),
        ),
    )
    t = datetime.now(UTC)
    feats = ["tx:tag_approx_count_distinct_1m", "tx:amount_approx_percentile_1m"]
    ent = pa.table(
        {"user_id": pa.array([0, 1, 2, 7], pa.int64()), "event_timestamp": pa.array([t] * 4, TS)}
    )
    offline = store.get_training_set(ent, feats).to_arrow()
    got = read_online(
        store.online,
        store.catalog().resolve(feats),
        {"user_id": [0, 1, 2, 7]},
        {"user_id": "Int64"},
        now_us=_us(t),
    )
    for f in feats:
        name = f.split(":")[1]
        assert got.values[name] == offline.column(name).to_pylist(), name
    assert offline.column("tag_approx_count_distinct_1m").to_pylist()[:3] == [11, 11, 11]
    store.close()


def test_reads_long_after_the_tiles_were_computed_use_the_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key's head row serves windows starting within HEAD_SPAN_US of the refresh; later
    reads (a key not written for a while) fall back to the full tail row, same values."""
    from featureline.online import tiles

    monkeypatch.setattr(tiles, "HEAD_SPAN_US", 2_000_000)
    store = _store(tmp_path / "repo", {"type": "sqlite", "path": "data/online.db"}, 2)
    base = datetime.now(UTC)
    rows = [
        {
            "user_id": i % 3,
            "at_ms": -400 * i,
            "created": None,
            "amount": float(i),
            "n": i,
            "tag": "abc"[i % 3],
        }
        for i in range(60)
    ]
    store.push("tx", _batch(rows, base))
    resolved = store.catalog().resolve(FEATURES)
    names = [f.split(":")[1] for f in FEATURES]
    keys = [0, 1, 2, 99]
    after = datetime.now(UTC)
    for t in (after, after + 1 * S, after + 5 * S, after + 7 * S, after + 30 * S):
        ent = pa.table(
            {"user_id": pa.array(keys, pa.int64()), "event_timestamp": pa.array([t] * 4, TS)}
        )
        offline = store.get_training_set(ent, FEATURES).to_arrow()
        got = read_online(
            store.online, resolved, {"user_id": keys}, {"user_id": "Int64"}, now_us=_us(t)
        )
        for name in names:
            assert got.values[name] == offline.column(name).to_pylist(), (name, t - after)
    store.close()
