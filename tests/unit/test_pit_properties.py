"""Point-in-time training sets equal the plain-Python reference (tests/reference.py) on generated data.

Each hypothesis example builds its own feature repo, applies a few views, ingests several
batches and asks for training sets now and as of cuts between (and exactly at) batches. The
key and time domains are tiny so that ties, TTL edges and late corrections happen often.
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

import featureline
from featureline import Entity, FeatureStore, FeatureView, Field, FileSource, Float64, Int64, String
from tests.reference import RefBatch, RefView, point_in_time_join, winner

TS = pa.timestamp("us", tz="UTC")
BASE = datetime(2024, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)

USER = Entity("user", join_keys=["user_id"])
REGION = Entity("region", join_keys=["region"])
ENTITY_COLUMNS = ["user_id", "region", "event_timestamp", "label"]

# view template name -> entities (keys): one Int64 key, a composite Int64 + String key, one String key
TEMPLATES: dict[str, list[Entity]] = {
    "by_user": [USER],
    "by_pair": [USER, REGION],
    "by_region": [REGION],
}


def make_view(name: str, ttl: timedelta | None) -> FeatureView:
    entities = TEMPLATES[name]
    keys = [Field("user_id", Int64)] * (USER in entities) + [Field("region", String)] * (
        REGION in entities
    )
    return FeatureView(
        name=name,
        entities=entities,
        schema=[*keys, Field("x", Float64), Field("n", Int64), Field("tag", String)],
        source=FileSource(
            path=f"data/{name}.parquet",
            timestamp_field="event_timestamp",
            created_timestamp_field="created",
        ),
        ttl=ttl,
    )


TEMPLATES_KEYS = {n: make_view(n, None).join_keys for n in TEMPLATES}


def new_store(root: str | Path, objects: list[Any]) -> tuple[FeatureStore, datetime]:
    featureline.init_repo(root, with_data=False)
    store = FeatureStore(root)
    rv = store.apply(objects)
    assert rv is not None
    return store, rv.applied_at


def batch_table(view: RefView, rows: list[dict[str, Any]]) -> pa.Table:
    cols: dict[str, pa.Array] = {}
    if "user_id" in view.keys:
        cols["user_id"] = pa.array([r["user_id"] for r in rows], pa.int64())
    if "region" in view.keys:
        cols["region"] = pa.array([r["region"] for r in rows], pa.string())
    cols["event_timestamp"] = pa.array([r["event_timestamp"] for r in rows], TS)
    cols["created"] = pa.array([r["created"] for r in rows], TS)
    cols["x"] = pa.array([r["x"] for r in rows], pa.float64())
    cols["n"] = pa.array([r["n"] for r in rows], pa.int64())
    cols["tag"] = pa.array([r["tag"] for r in rows], pa.string())
    return pa.table(cols)


def entity_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array([r["user_id"] for r in rows], pa.int64()),
            "region": pa.array([r["region"] for r in rows], pa.string()),
            "event_timestamp": pa.array([r["event_timestamp"] for r in rows], TS),
            "label": pa.array([r["label"] for r in rows], pa.int64()),
        }
    )


def exact(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with floats replaced by their bit patterns, so -0.0 != 0.0 and nothing is rounded."""
    return [
        {k: ("float", struct.pack("<d", v)) if isinstance(v, float) else v for k, v in r.items()}
        for r in rows
    ]


# -- generated scenarios -------------------------------------------------------------------------


@dataclass
class Scenario:
    unit_us: int  # spacing of the entity times
    views: dict[str, timedelta | None]  # name -> ttl
    requested: list[tuple[str, str]]  # (view, feature), grouped by view
    batches: list[
        tuple[str, list[dict[str, Any]], bool]
    ]  # (view, rows in write order, compact after)
    entities: list[dict[str, Any]]
    full_feature_names: bool
    cuts: list[int]  # which as_of cuts to query (indexes into the list built at run time)


UNITS_US = [1, 83, 1_000_000, 3_600_000_001]
N_ENTITY_TIMES = 4


def ttls(unit_us: int) -> st.SearchStrategy[timedelta | None]:
    """None and 0 (no limit), small multiples of the time unit, and odd microsecond counts."""
    return st.sampled_from(
        [
            None,
            0,
            unit_us,
            2 * unit_us,
            3 * unit_us,
            1,
            249,
            1_000_001,
            86_400_000_000,
            2_592_000_000_007,
        ]
    ).map(lambda us: None if us is None else timedelta(microseconds=us))


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    unit_us = draw(st.sampled_from(UNITS_US))
    names = draw(st.lists(st.sampled_from(list(TEMPLATES)), min_size=1, max_size=3, unique=True))
    views = {n: draw(ttls(unit_us), label=f"ttl of {n}") for n in names}

    entity_times = [BASE + i * unit_us * US for i in range(N_ENTITY_TIMES)]
    # a view's events fall on the entity times, exactly on its TTL edges (t - ttl) and just outside
    event_times: dict[str, st.SearchStrategy[datetime]] = {}
    for n, ttl in views.items():
        edges = {t - ttl - d for t in entity_times for d in (timedelta(0), US)} if ttl else set()
        event_times[n] = st.sampled_from(entity_times) | st.sampled_from(
            sorted(edges or entity_times)
        )
    # few created times: ties on (event, created) are frequent, and so are null vs non-null
    createds = [None, BASE, BASE + timedelta(days=1)]

    requested = []
    for n in names:
        feats = draw(
            st.lists(st.sampled_from(["x", "n", "tag"]), min_size=1, max_size=3, unique=True)
        )
        requested += [(n, f) for f in feats]

    batches = []
    for b in range(draw(st.integers(0, 6), label="batches")):
        view = draw(st.sampled_from(names))
        rows = []
        for r in range(draw(st.integers(1, 6))):
            rows.append(
                {
                    "user_id": draw(st.integers(1, 2)),
                    "region": draw(st.sampled_from(["a", "b"])),
                    "event_timestamp": draw(event_times[view]),
                    "created": draw(st.sampled_from(createds)),
                    "x": draw(st.none() | st.floats(allow_nan=False)),
                    "n": draw(st.none() | st.integers(-(2**63), 2**63 - 1)),
                    "tag": f"b{b}r{r}",
                }
            )
        batches.append((view, rows, draw(st.booleans(), label=f"compact {view} after batch {b}")))

    entities = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "user_id": st.integers(1, 3),  # 3 never has feature rows
                    "region": st.sampled_from(["a", "b", "c"]),  # nor does "c"
                    "event_timestamp": st.sampled_from(entity_times),
                    "label": st.integers(-5, 5),
                }
            ),
            min_size=1,
            max_size=8,
        )
    )
    if draw(st.booleans(), label="duplicate an entity row"):
        entities.append(dict(entities[0]))
    if draw(st.booleans(), label="add every (key, time) entity row"):
        # every key combination at every entity time (in a drawn order): each stored row that can
        # win at some entity time is then compared, which makes wrong tie-breaks easy to see
        grid = [
            {"user_id": u, "region": g, "event_timestamp": t, "label": 9}
            for u in (1, 2, 3)
            for g in ("a", "b", "c")
            for t in entity_times
        ]
        entities += draw(st.permutations(grid))
    cuts = draw(st.lists(st.integers(0, 4 * len(batches)), max_size=3, unique=True))
    # the same feature name from two views needs full names (short names would clash)
    clash = len({f for _, f in requested}) < len(requested)
    full_feature_names = clash or draw(st.booleans(), label="full_feature_names")
    return Scenario(unit_us, views, requested, batches, entities, full_feature_names, cuts)


def record_events(sc: Scenario) -> None:
    """Label what an example exercises (see `pytest --hypothesis-show-statistics`)."""
    batches_of: dict[tuple[Any, ...], list[int]] = {}  # (view, keys, event time) -> batch per row
    for i, (view, rows, _) in enumerate(sc.batches):
        for r in rows:
            key = (view, *(r[k] for k in TEMPLATES_KEYS[view]), r["event_timestamp"])
            batches_of.setdefault(key, []).append(i)
    if any(len(b) > len(set(b)) for b in batches_of.values()):
        event("rows tie within a batch")
    if any(len(set(b)) > 1 for b in batches_of.values()):
        event("rows tie across batches")
    views = {n: RefView(n, TEMPLATES_KEYS[n], [], ttl) for n, ttl in sc.views.items()}
    for n, rows, _ in sc.batches:
        views[n].batches.append(RefBatch(BASE, rows))
    for e in sc.entities:
        for v in views.values():
            w = winner(v, e, e["event_timestamp"])
            if w is not None and v.ttl and w["event_timestamp"] == e["event_timestamp"] - v.ttl:
                event("a winner lies exactly on the TTL edge")
            if w is not None and w["event_timestamp"] == e["event_timestamp"]:
                event("a winner lies exactly at the entity time")
    if any(compact for *_, compact in sc.batches):
        event("compaction")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_training_set_equals_reference(sc: Scenario) -> None:
    record_events(sc)
    with tempfile.TemporaryDirectory() as d:
        store, applied_at = new_store(
            d, [USER, REGION, *(make_view(n, ttl) for n, ttl in sc.views.items())]
        )
        with store:
            ref = {
                n: RefView(n, TEMPLATES_KEYS[n], ["x", "n", "tag"], ttl)
                for n, ttl in sc.views.items()
            }
            # as_of cuts: when the definitions were applied (no batch yet), then for each batch
            # and compaction one microsecond before it and exactly at its system time
            cut_times = [applied_at]
            for name, rows, compact in sc.batches:
                res = store.ingest(name, batch_table(ref[name], rows))
                assert res.rows == len(rows)
                ref[name].batches.append(RefBatch(res.ingested_at, rows))
                cut_times += [res.ingested_at - US, res.ingested_at]
                if compact:
                    c = store.offline.compact(store.get_feature_view(name))
                    if c is not None:
                        at = datetime.fromtimestamp(0, UTC) + c.ingested_at_us * US
                        cut_times += [at - US, at]
            note(
                f"ingested_at: {[(n, b.ingested_at.isoformat()) for n, v in ref.items() for b in v.batches]}"
            )

            entities = entity_table(sc.entities)
            refs = [f"{v}:{f}" for v, f in sc.requested]
            feature_names = [f"{v}__{f}" if sc.full_feature_names else f for v, f in sc.requested]
            for as_of in [None, *(cut_times[i % len(cut_times)] for i in sc.cuts)]:
                got = store.get_training_set(
                    entities, refs, as_of=as_of, full_feature_names=sc.full_feature_names
                )
                table = got.to_arrow()
                expected = point_in_time_join(
                    entities.to_pylist(),
                    [(ref[v], f) for v, f in sc.requested],
                    as_of=as_of,
                    full_feature_names=sc.full_feature_names,
                )
                assert table.column_names == [*ENTITY_COLUMNS, *feature_names], f"as_of={as_of}"
                assert table.select(ENTITY_COLUMNS).equals(entities), (
                    f"input columns changed (as_of={as_of})"
                )
                assert exact(table.to_pylist()) == exact(expected), f"as_of={as_of}"


@settings(max_examples=40, deadline=None)
@given(
    ttl_us=st.sampled_from([1, 249, 1_000_001, 3_600_000_001]) | st.integers(1, 10**13),
    offsets=st.lists(st.sampled_from([-1, 0, 1]), min_size=1, max_size=3, unique=True),
    at_entity_time=st.booleans(),
)
def test_ttl_edges_equal_reference(ttl_us: int, offsets: list[int], at_entity_time: bool) -> None:
    """Rows around the TTL edge (t - ttl + offset microseconds), one entity row at t."""
    ttl = timedelta(microseconds=ttl_us)
    at = BASE + timedelta(days=200)
    rows = [
        {
            "user_id": 1,
            "event_timestamp": at - ttl + o * US,
            "created": None,
            "x": float(o),
            "n": o,
            "tag": f"edge{o:+d}",
        }
        for o in offsets
    ]
    if at_entity_time:
        rows.append(
            {"user_id": 2, "event_timestamp": at, "created": None, "x": 9.0, "n": 9, "tag": "at t"}
        )
    ref = RefView("by_user", ["user_id"], ["x", "n", "tag"], ttl)
    with tempfile.TemporaryDirectory() as d:
        store, _ = new_store(d, [USER, REGION, make_view("by_user", ttl)])
        with store:
            for r in rows:  # one batch per row: the latest row is the only candidate that can win
                ref.batches.append(
                    RefBatch(store.ingest("by_user", batch_table(ref, [r])).ingested_at, [r])
                )
            entities = entity_table(
                [{"user_id": u, "region": "a", "event_timestamp": at, "label": u} for u in (1, 2)]
            )
            got = store.get_training_set(entities, ["by_user:tag", "by_user:x"]).to_arrow()
            expected = point_in_time_join(entities.to_pylist(), [(ref, "tag"), (ref, "x")])
            assert exact(got.to_pylist()) == exact(expected)


# -- example-based tests -----------------------------------------------------------------------


def t(i: int) -> datetime:
    return BASE + timedelta(hours=i)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FeatureStore]:
    """A repo with by_user (ttl 2h) and by_pair (no ttl), a few rows each."""
    s, _ = new_store(
        tmp_path / "repo",
        [USER, REGION, make_view("by_user", timedelta(hours=2)), make_view("by_pair", None)],
    )
    user_view = RefView("by_user", ["user_id"], ["x", "n", "tag"])
    pair_view = RefView("by_pair", ["user_id", "region"], ["x", "n", "tag"])

    def rows(specs: list[tuple[int, str, int, float]]) -> list[dict[str, Any]]:
        return [
            {
                "user_id": u,
                "region": g,
                "event_timestamp": t(h),
                "created": None,
                "x": x,
                "n": int(x),
                "tag": f"{u}{g}{h}",
            }
            for u, g, h, x in specs
        ]

    s.ingest(
        "by_user",
        batch_table(user_view, rows([(1, "a", 0, 1.5), (1, "a", 3, 2.5), (2, "a", 1, 3.5)])),
    )
    s.ingest(
        "by_pair",
        batch_table(pair_view, rows([(1, "a", 0, 10.0), (1, "b", 2, 20.0), (2, "b", 5, 30.0)])),
    )
    yield s
    s.close()


REFS = ["by_user:x", "by_user:tag", "by_pair:n"]


def odd_entity_frame() -> pa.Table:
    """Unsorted, duplicated entity rows with extra columns of unusual types."""
    hours = [4, 0, 6, 4, 2, 9, 4]
    users = [1, 1, 2, 1, 3, 2, 1]
    regions = ["a", "b", "b", "a", "a", "b", "a"]
    return pa.table(
        {
            "label": pa.array([True, False, None, True, False, True, True]),
            "user_id": pa.array(users, pa.int64()),
            "nested": pa.array([{"k": [i, i + 1], "s": str(i)} for i in range(7)]),
            "region": pa.array(regions, pa.string()),
            "price": pa.array(
                [
                    Decimal("1.10"),
                    None,
                    Decimal("-3.25"),
                    Decimal("0"),
                    Decimal("9.99"),
                    None,
                    Decimal("1.10"),
                ],
                pa.decimal128(6, 2),
            ),
            "event_timestamp": pa.array([t(h) for h in hours], TS),
            "cat": pa.array(["u", "v", "u", "u", "w", "v", "u"]).dictionary_encode(),
            "local_time": pa.array([t(h).replace(tzinfo=None) for h in hours], pa.timestamp("ns")),
        }
    )


def test_input_order_and_columns_unchanged(store: FeatureStore) -> None:
    entities = odd_entity_frame()
    table = store.get_training_set(entities, REFS).to_arrow()
    assert table.num_rows == entities.num_rows
    assert table.column_names == [*entities.column_names, "x", "tag", "n"]
    assert table.select(entities.column_names).equals(entities)
    assert table.schema.field("nested").type == entities.schema.field("nested").type
    got = [(r["x"], r["tag"], r["n"]) for r in table.to_pylist()]
    # by_user has ttl 2h: (1, t4) sees the t3 row; (1, t0) the t0 row; (1, t6) nothing (t3 < t4);
    # by_pair has no ttl: (1, a) sees t0 always; (1, b) at t0 nothing; (2, b) sees t5 at t6 and t9
    assert got == [
        (2.5, "1a3", 10),
        (1.5, "1a0", None),
        (None, None, 30),
        (2.5, "1a3", 10),
        (None, None, None),
        (None, None, 30),
        (2.5, "1a3", 10),
    ]


def test_frame_kinds_give_the_same_result(store: FeatureStore, tmp_path: Path) -> None:
    entities = odd_entity_frame().select(["user_id", "region", "event_timestamp", "label"])
    path = tmp_path / "entities.parquet"
    pq.write_table(entities, path)
    frames = {
        "pyarrow": entities,
        "pandas": entities.to_pandas(),
        "polars": pl.from_arrow(entities),
        "parquet path": str(path),
        "parquet Path": path,
    }
    assert isinstance(frames["pandas"], pd.DataFrame)
    results = {kind: store.get_training_set(f, REFS).to_arrow() for kind, f in frames.items()}
    expected = results["pyarrow"]
    assert expected.select(entities.column_names).equals(entities)
    for kind, table in results.items():
        assert table.column_names == expected.column_names, kind
        assert (
            table.select(["x", "tag", "n"])
            .cast(expected.select(["x", "tag", "n"]).schema)
            .equals(expected.select(["x", "tag", "n"]))
        ), kind
        assert table.to_pylist() == expected.to_pylist(), kind


def test_full_feature_names(store: FeatureStore) -> None:
    entities = odd_entity_frame()
    short = store.get_training_set(entities, REFS).to_arrow()
    full = store.get_training_set(entities, REFS, full_feature_names=True).to_arrow()
    assert full.column_names == [*entities.column_names, "by_user__x", "by_user__tag", "by_pair__n"]
    for s, f in [("x", "by_user__x"), ("tag", "by_user__tag"), ("n", "by_pair__n")]:
        assert full.column(f).equals(short.column(s))
    # the same feature name in two views needs full names
    both = store.get_training_set(
        entities, ["by_user:x", "by_pair:x"], full_feature_names=True
    ).to_arrow()
    assert both.column_names[-2:] == ["by_user__x", "by_pair__x"]
    with pytest.raises(featureline.FeaturelineError, match="full_feature_names"):
        store.get_training_set(entities, ["by_user:x", "by_pair:x"])


@pytest.mark.parametrize(
    "ttl_us", [1, 248, 249, 250, 251, 489, 1_000_001, 86_400_000_000, 86_400_000_001]
)
def test_ttl_edge_is_exact_to_the_microsecond(tmp_path: Path, ttl_us: int) -> None:
    """A row exactly `ttl` before the entity time is a candidate; one microsecond earlier is not."""
    ttl = timedelta(microseconds=ttl_us)
    s, _ = new_store(tmp_path / "repo", [USER, REGION, make_view("by_user", ttl)])
    with s:
        view = RefView("by_user", ["user_id"], ["x", "n", "tag"], ttl)
        at = BASE + timedelta(days=40)
        rows = [
            {
                "user_id": 1,
                "event_timestamp": at - ttl,
                "created": None,
                "x": 1.0,
                "n": 1,
                "tag": "on edge",
            },
            {
                "user_id": 2,
                "event_timestamp": at - ttl - US,
                "created": None,
                "x": 2.0,
                "n": 2,
                "tag": "just outside",
            },
        ]
        s.ingest("by_user", batch_table(view, rows))
        entities = entity_table(
            [{"user_id": u, "region": "a", "event_timestamp": at, "label": 0} for u in (1, 2)]
        )
        got = s.get_training_set(entities, ["by_user:tag"]).to_arrow().column("tag").to_pylist()
        assert got == ["on edge", None]
