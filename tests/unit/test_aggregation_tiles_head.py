"""Online tiles, head rows (issue 10): a head row keeps, per aggregation, the *finalized* value
of each suffix a window starting within HEAD_SPAN_US of the refresh can begin at (kind FINAL),
or kernel partials when events are dated ahead or a value has no plain encoding (kind PARTIAL);
heads live in their own table. For generated events — ints near the Int64 edge, floats with
NaN / inf / -0.0, strings, bools, events dated ahead — every function read at `t` from the head,
and from the tail alone, equals a one-shot reference over the events in `[start(t), t]`."""

from __future__ import annotations

import contextlib
import math
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import featureline as fl
from featureline.aggregation.kernel import kernel
from featureline.aggregation.offline import column_type
from featureline.aggregation.windows import window_start
from featureline.errors import ValidationError
from featureline.online._codec import key_encoder
from featureline.online.sqlite import SqliteOnlineStore
from featureline.online.tiles import TileReader, heads_table, refresh, tiles_table

S = 1_000_000  # µs
T0 = 1_700_000_000 * S  # the refresh time
USER = fl.Entity("user", ["user_id"])
AGGS: list[tuple[str, str, int | None]] = [  # column, function, window (s)
    ("x", "count", 8),
    ("x", "sum", 8),
    ("x", "mean", 4),
    ("x", "stddev", 8),
    ("x", "min", 8),
    ("x", "max", 4),
    ("x", "last", 8),
    ("i", "sum", 8),
    ("i", "max", None),
    ("i", "mean", 8),
    ("s", "min", 8),
    ("s", "last", None),
    ("b", "max", 4),
    ("b", "count", 8),
]
KEY_TYPES = {"user_id": "Int64"}


def _view(tile_s: int) -> fl.FeatureView:
    from datetime import timedelta

    return fl.FeatureView(
        "ev",
        [USER],
        [
            fl.Field("user_id", fl.Int64),
            fl.Field("x", fl.Float64),
            fl.Field("i", fl.Int64),
            fl.Field("s", fl.String),
            fl.Field("b", fl.Bool),
        ],
        tile=timedelta(seconds=tile_s),
        aggregations=[
            fl.Aggregation(c, f, None if w is None else timedelta(seconds=w)) for c, f, w in AGGS
        ],
    )


class _Source:
    """window_events as the offline store gives them: sorted by key, then event time."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        rows = sorted(rows, key=lambda r: (r["user_id"], r["__event_us"]))
        self.table = pa.Table.from_pylist(
            rows,
            schema=pa.schema(
                [
                    ("user_id", pa.int64()),
                    ("__event_us", pa.int64()),
                    ("x", pa.float64()),
                    ("i", pa.int64()),
                    ("s", pa.string()),
                    ("b", pa.bool_()),
                ]
            ),
        )

    def window_events(
        self, view: Any, keys: Any = None, start_us: int | None = None, as_of_us: Any = None
    ) -> tuple[pa.Table, int]:
        t = self.table
        if start_us is not None:
            t = t.filter(pa.compute.greater_equal(t.column("__event_us"), start_us))
        return t, 1


class _NoHeads:
    """A store whose head rows are all missing: every read takes the tail."""

    def __init__(self, store: Any, view: fl.FeatureView) -> None:
        self.store, self.heads = store, heads_table(view)

    def read(self, table: str, keys: list[bytes], now_us: int) -> list[bytes | None]:
        if table == self.heads:
            return [None] * len(keys)
        out: list[bytes | None] = self.store.read(table, keys, now_us)
        return out


def _reference(view: fl.FeatureView, rows: list[dict[str, Any]], key: int, t: int) -> list[Any]:
    """Each aggregation over the key's events in [start(t), t], with one kernel `add` (and by
    hand for the plain functions); an Int64 sum out of range is the ValidationError class."""
    out: list[Any] = []
    mine = sorted((r for r in rows if r["user_id"] == key), key=lambda r: r["__event_us"])
    for a in view.aggregations:
        lo = window_start(t, a.window_us, view.tile_us)
        inside = [r for r in mine if lo <= r["__event_us"] <= t]
        ct = column_type(view, a)
        k = kernel(a.function, ct)
        arrow = {"Float64": pa.float64(), "Int64": pa.int64(), "String": pa.string()}
        vals = pa.array([r[a.column] for r in inside], arrow.get(ct, pa.bool_()))
        orders = np.zeros((len(inside), 4), np.int64)
        orders[:, 0] = [r["__event_us"] for r in inside]
        try:
            got = k.finalize(k.add(k.empty(), vals, orders))
        except ValidationError:
            got = ValidationError
        present = [r[a.column] for r in inside if r[a.column] is not None]
        if a.function == "count":
            assert got == len(present)
        elif a.function in ("min", "max") and ct in ("String", "Int64", "Bool"):
            assert got == ((min if a.function == "min" else max)(present) if present else None)
        elif a.function == "last":
            assert _same(got, present[-1] if present else None)
        elif a.function == "sum" and ct == "Float64" and all(map(math.isfinite, present)):
            with contextlib.suppress(OverflowError):  # fsum's overflow: the kernel gives inf
                assert got == (math.fsum(present) if present else None)
        out.append(got)
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (a == b and math.copysign(1, a) == math.copysign(1, b)) or (a != a and b != b)
    return bool(a == b) and type(a) is type(b)


def _read(reader: TileReader, store: Any, keys: Sequence[int], t: int) -> Any:
    """The reader's (values, found), or the ValidationError class when it raises."""
    enc = key_encoder(["user_id"], KEY_TYPES)
    try:
        return reader.read(store, [enc(k) for k in keys], t)
    except ValidationError:
        return ValidationError


floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, 1e308, -1e308, 5e-324]),
    st.none(),
)
ints = st.one_of(
    st.integers(-1000, 1000),
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([2**62, 2**63 - 1, -(2**63), 0, -1]),
    st.none(),
)
event = st.fixed_dictionaries(
    {
        "user_id": st.integers(0, 2),
        "at_ms": st.integers(-12_000, 3_000),  # some dated ahead of the refresh
        "x": floats,
        "i": ints,
        "s": st.one_of(st.text(max_size=4), st.none()),
        "b": st.one_of(st.booleans(), st.none()),
    }
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteOnlineStore]:
    s = SqliteOnlineStore(tmp_path / f"{uuid.uuid4().hex}.db")
    yield s
    s.close()


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    events=st.lists(event, max_size=25),
    tile_s=st.sampled_from([0, 1, 2]),
    span_s=st.sampled_from([1, 3, 3600]),
    data=st.data(),
)
def test_head_and_tail_equal_the_reference_at_t(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    events: list[dict[str, Any]],
    tile_s: int,
    span_s: int,
    data: st.DataObject,
) -> None:
    from featureline.online import tiles

    monkeypatch.setattr(tiles, "HEAD_SPAN_US", span_s * S)
    view = _view(tile_s)
    rows, seen = [], set()
    for e in events:  # one event per (key, event time), as the offline store keeps
        ev = T0 + e["at_ms"] * 1000
        if (e["user_id"], ev) not in seen:
            seen.add((e["user_id"], ev))
            rows.append({**{k: v for k, v in e.items() if k != "at_ms"}, "__event_us": ev})
    keys = [0, 1, 2, 7]
    with SqliteOnlineStore(tmp_path / f"{uuid.uuid4().hex}.db") as store:  # one per example
        _check(view, store, rows, keys, data)


def _check(
    view: fl.FeatureView,
    store: SqliteOnlineStore,
    rows: list[dict[str, Any]],
    keys: list[int],
    data: st.DataObject,
) -> None:
    refresh(_Source(rows), store, view, KEY_TYPES, pa.table({"user_id": keys}), now_us=T0)
    names = [a.name for a in view.aggregations]
    some = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=5, unique=True))
    offsets = data.draw(
        st.lists(st.integers(0, 12_000_000), min_size=1, max_size=4)
    )  # µs after the refresh: inside the head's span, past it, when ahead events come due
    singles = [[n] for n in names]  # each alone: an Int64 sum out of range hides no other
    for picked in [names, some, *singles]:
        reader = TileReader(view, picked)
        idx = [names.index(n) for n in picked]
        for dt in [0, 999_999, *offsets]:
            t = T0 + dt
            want = [_reference(view, rows, k, t) for k in keys]
            expect: Any = (
                ValidationError
                if any(w[i] is ValidationError for w in want for i in idx)
                else ([[w[i] for w in want] for i in idx], [True] * len(keys))
            )
            for via in (store, _NoHeads(store, view)):
                got = _read(reader, via, keys, t)
                if expect is ValidationError:
                    assert got is ValidationError
                    continue
                assert got is not ValidationError
                assert got[1] == expect[1]
                for name, g, w in zip(picked, got[0], expect[0], strict=True):
                    assert all(map(_same, g, w)), (name, dt, g, w)
            if len(picked) == 1:
                continue
            for k in keys:  # one key at a time: the read's single-key path
                one = _read(reader, store, [k], t)
                if expect is ValidationError:
                    assert one is ValidationError or any(
                        want[keys.index(k)][i] is not ValidationError for i in idx
                    )
                    continue
                assert one is not ValidationError
                assert all(
                    _same(col[0], w[keys.index(k)])
                    for col, w in zip(one[0], expect[0], strict=True)
                )


def test_heads_have_their_own_table(store: SqliteOnlineStore) -> None:
    view = _view(1)
    rows = [
        {"user_id": 0, "__event_us": T0 - i * S, "x": float(i), "i": i, "s": "ab", "b": True}
        for i in range(600)
    ]
    refresh(_Source(rows), store, view, KEY_TYPES, None, now_us=T0)
    enc = key_encoder(["user_id"], KEY_TYPES)(0)
    (head,) = store.read(heads_table(view), [enc])
    (tail,) = store.read(tiles_table(view), [enc])
    assert head is not None and tail is not None
    assert len(head) < len(tail)
    assert heads_table(view) in store.tables() and tiles_table(view) in store.tables()


def test_write_tables_is_one_write_per_table(store: SqliteOnlineStore) -> None:
    from featureline.testing.online_contract import value

    assert store.write_tables([("a", [b"k"], [value(2)]), ("b", [b"k", b"j"], [value(1)] * 2)]) == 3
    assert store.write_tables([("a", [b"k"], [value(1)]), ("b", [], [])]) == 0  # older: kept
    assert store.read("a", [b"k"]) == [value(2)] and store.read("b", [b"j"]) == [value(1)]
    with pytest.raises(ValidationError):  # a bad part: nothing of the call is written
        store.write_tables([("a", [b"k"], [value(3)]), ("b", ["x"], [value(3)])])  # type: ignore[list-item]
    assert store.read("a", [b"k"]) == [value(2)]


@pytest.mark.integration
def test_redis_write_tables(redis_url: str) -> None:
    from featureline.online.redis import RedisOnlineStore
    from featureline.testing.online_contract import value

    ns = f"test-tiles-{uuid.uuid4().hex}"
    with RedisOnlineStore(redis_url, ns, chunk_rows=1) as s:
        try:
            parts = [("a", [b"k", b"m"], [value(2)] * 2), ("b", [b"k"], [value(1)])]
            assert s.write_tables(parts) == 3
            assert s.write_tables([("a", [b"k"], [value(1)])]) == 0
            assert s.read("a", [b"k", b"m"]) == [value(2)] * 2 and s.read("b", [b"k"]) == [value(1)]
            with pytest.raises(ValidationError):
                s.write_tables([("a", [b"k"], [value(3)]), ("b", ["x"], [value(3)])])  # type: ignore[list-item]
            assert s.read("a", [b"k"]) == [value(2)]
        finally:
            s.drop_table("a")
            s.drop_table("b")
