"""The contract every offline engine passes (see `featureline.offline.engines.OfflineEngine`).

Subclass `OfflineEngineContract` in an engine's tests and override the `engine` fixture to
yield a fresh engine. Each test writes generated batches through the real table (commit log,
parts, compaction) and compares what the engine computes with the plain-Python reference
(`featureline.testing.reference`): point-in-time joins now and as of every cut, TTL edges,
ties, null created times, corrections, compaction; materialization winners; latest rows;
statistics. Values are compared exactly.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featureline.definitions import Entity, FeatureView, Field, FileSource
from featureline.offline.engines import EngineCapabilities, OfflineEngine
from featureline.offline.store import OfflineStore, dt_to_us
from featureline.offline.training import join_training_set
from featureline.testing.reference import RefBatch, RefView, point_in_time_join, winner
from featureline.types import Float64, Int64, String

BASE = datetime(2024, 1, 1, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")
USER = Entity("user", join_keys=["user_id"])
FEATURES = ["x", "tag"]


def _view(ttl: timedelta | None) -> FeatureView:
    return FeatureView(
        name="v",
        entities=[USER],
        schema=[Field("user_id", Int64), Field("x", Float64), Field("tag", String)],
        source=FileSource(
            path="unused.parquet",
            timestamp_field="event_timestamp",
            created_timestamp_field="created",
        ),
        ttl=ttl,
    )


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array([r["user_id"] for r in rows], pa.int64()),
            "event_timestamp": pa.array([r["event_timestamp"] for r in rows], TS),
            "created": pa.array([r["created"] for r in rows], TS),
            "x": pa.array([r["x"] for r in rows], pa.float64()),
            "tag": pa.array([r["tag"] for r in rows], pa.string()),
        }
    )


_row = st.fixed_dictionaries(
    {
        "user_id": st.integers(0, 2),
        "event_timestamp": st.integers(0, 5).map(lambda s: BASE + timedelta(seconds=s)),
        "created": st.one_of(
            st.none(), st.integers(0, 2).map(lambda s: BASE + timedelta(seconds=s))
        ),
        "x": st.floats(-1e6, 1e6, allow_nan=False).map(lambda f: round(f, 3)),
        "tag": st.one_of(st.none(), st.sampled_from(["a", "b"])),
    }
)


def _ingest_all(
    store: OfflineStore,
    view: FeatureView,
    ref: RefView,
    batches: list[list[dict[str, Any]]],
    compact_after: int,
) -> list[datetime]:
    cuts = []
    for i, rows in enumerate(batches):
        r = store.ingest(view, _table(rows))
        ref.batches.append(RefBatch(r.ingested_at, rows))
        cuts += [r.ingested_at - timedelta(microseconds=1), r.ingested_at]
        if i == compact_after:
            store.compact(view)
    return cuts


def _entities() -> list[dict[str, Any]]:
    return [
        {
            "user_id": k,
            "event_timestamp": BASE + timedelta(seconds=s, microseconds=u),
            "label": f"{k}-{s}-{u}",
        }
        for k in (0, 1, 2, 3)
        for s in range(7)
        for u in (0, 1)
    ]


class OfflineEngineContract:
    """Override `engine` to yield a fresh engine of the backend under test."""

    @pytest.fixture
    def engine(self) -> Iterator[OfflineEngine]:
        raise NotImplementedError("override the `engine` fixture")  # pragma: no cover

    def test_declares_capabilities(self, engine: OfflineEngine) -> None:
        assert isinstance(engine.capabilities, EngineCapabilities)
        assert isinstance(engine.name, str) and engine.name

    @settings(
        max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        batches=st.lists(st.lists(_row, min_size=1, max_size=6), min_size=1, max_size=4),
        ttl_s=st.sampled_from([None, 0, 2]),
        compact_after=st.integers(-1, 3),
    )
    def test_point_in_time_join_equals_reference(
        self,
        engine: OfflineEngine,
        batches: list[list[dict[str, Any]]],
        ttl_s: int | None,
        compact_after: int,
    ) -> None:
        ttl = None if ttl_s is None else timedelta(seconds=ttl_s)
        view = _view(ttl)
        ref = RefView("v", ["user_id"], FEATURES, ttl, created_ts="created")
        with tempfile.TemporaryDirectory() as tmp:
            store = OfflineStore(Path(tmp), engine)
            cuts = _ingest_all(store, view, ref, batches, compact_after)
            ents = _entities()
            frame = pa.table(
                {
                    "user_id": pa.array([e["user_id"] for e in ents], pa.int64()),
                    "event_timestamp": pa.array([e["event_timestamp"] for e in ents], TS),
                    "label": [e["label"] for e in ents],
                }
            )
            resolved = [(_ref(f), view) for f in FEATURES]
            for as_of in [None, BASE, *cuts]:
                us = dt_to_us(as_of) if as_of is not None else None
                got, _ = join_training_set(store, frame, resolved, us, False)
                want = point_in_time_join(ents, [(ref, f) for f in FEATURES], as_of=as_of)
                assert got.to_pylist() == want, f"as_of={as_of}"

    @settings(
        max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        batches=st.lists(st.lists(_row, min_size=1, max_size=6), min_size=1, max_size=4),
        compact_after=st.integers(-1, 3),
    )
    def test_winners_latest_rows_and_profile_equal_reference(
        self, engine: OfflineEngine, batches: list[list[dict[str, Any]]], compact_after: int
    ) -> None:
        view = _view(None)
        ref = RefView("v", ["user_id"], FEATURES, None, created_ts="created")
        far = BASE + timedelta(days=1)
        with tempfile.TemporaryDirectory() as tmp:
            store = OfflineStore(Path(tmp), engine)
            _ingest_all(store, view, ref, batches, compact_after)
            parts = store.parts("v", 1)
            # materialization: per key, the greatest (event, created, ingested, seq)
            got = {
                r["user_id"]: r
                for t in engine.winners(view, parts, None, None, None, 2)
                for r in t.to_pylist()
            }
            for k in (0, 1, 2, 3):
                w = winner(ref, {"user_id": k}, far)
                assert (k in got) == (w is not None)
                if w is not None:
                    assert (got[k]["x"], got[k]["tag"], got[k]["__event_us"]) == (
                        w["x"],
                        w["tag"],
                        dt_to_us(w["event_timestamp"]),
                    )
            # with a `now`: the winner among rows that have arrived, plus every row still ahead
            cut = BASE + timedelta(seconds=2)
            cut_us = dt_to_us(cut)
            split = [
                r
                for t in engine.winners(view, parts, None, None, None, 2, cut_us)
                for r in t.to_pylist()
            ]
            arrived = {r["user_id"]: r for r in split if r["__event_us"] <= cut_us}
            assert len(arrived) == sum(1 for r in split if r["__event_us"] <= cut_us)
            for k in (0, 1, 2, 3):
                w = winner(ref, {"user_id": k}, cut)
                assert (k in arrived) == (w is not None)
                if w is not None:
                    assert (arrived[k]["x"], arrived[k]["tag"]) == (w["x"], w["tag"])
            ahead = sorted(
                (r["user_id"], r["__event_us"], r["x"]) for r in split if r["__event_us"] > cut_us
            )
            assert ahead == sorted(
                (r["user_id"], dt_to_us(r["event_timestamp"]), r["x"])
                for b in batches
                for r in b
                if r["event_timestamp"] > cut
            )
            # the winners of one batch in memory (a push's online apply)
            last = _table(batches[-1])
            from featureline.offline.batch import prepare_batch

            stored, _ = prepare_batch(view, last, {"user_id": "Int64"})
            one = RefView(
                "v",
                ["user_id"],
                FEATURES,
                None,
                [RefBatch(BASE, batches[-1])],
                created_ts="created",
            )
            mine = {
                r["user_id"]: r
                for t in engine.batch_winners(view, stored, 5, 1000)
                for r in t.to_pylist()
            }
            for k in (0, 1, 2):
                w = winner(one, {"user_id": k}, far)
                assert (k in mine) == (w is not None)
                if w is not None:
                    assert (mine[k]["x"], mine[k]["tag"], mine[k]["__ingested_us"]) == (
                        w["x"],
                        w["tag"],
                        5,
                    )
            # latest rows: one tie winner per (key, event time), newest first
            rows = store.latest_rows(view).to_pylist()
            pairs = {(r["user_id"], r["event_timestamp"]) for b in batches for r in b}
            assert len(rows) == len(pairs)
            assert [r["event_timestamp"] for r in rows] == sorted(
                (r["event_timestamp"] for r in rows), reverse=True
            )
            for r in rows:
                w = winner(ref, {"user_id": r["user_id"]}, r["event_timestamp"])
                assert w is not None and (r["x"], r["tag"]) == (w["x"], w["tag"])
            # statistics
            prof = store.profile(view)
            total = sum(len(b) for b in batches)
            assert prof["rows"] == total and prof["superseded_rows"] == total - len(pairs)
            assert prof["first_event"] == min(p[1] for p in pairs) and prof["last_event"] == max(
                p[1] for p in pairs
            )


def _ref(feature: str) -> Any:
    from featureline.definitions import FeatureRef

    return FeatureRef("v", feature)
