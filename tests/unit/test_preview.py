"""`preview` (the newest n tie winners) bounds its search by the n-th newest event time instead
of resolving ties over every row; it must return what the full computation returns, across
commits full of corrections (the same key and event time again), for any n."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import driver_defs, new_store, rows, utc

T0 = utc(2025, 1, 1)
batch = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 4)), min_size=1, max_size=12)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(batch, min_size=1, max_size=6), st.integers(1, 15), st.sampled_from([1, 4]))
def test_preview_equals_the_newest_of_all_winners(
    tmp_path_factory: object, batches: list[list[tuple[int, int]]], n: int, overscan: int
) -> None:
    from featureline.offline.engines import duckdb

    duckdb.PREVIEW_OVERSCAN = overscan  # 1: the first bound is often too tight (losers)
    try:
        _check(tmp_path_factory, batches, n)
    finally:
        duckdb.PREVIEW_OVERSCAN = 4


def _check(tmp_path_factory: object, batches: list[list[tuple[int, int]]], n: int) -> None:
    store = new_store(tmp_path_factory.mktemp("p"), *driver_defs(ttl=None))  # type: ignore[attr-defined]
    value = 0.0
    for b in batches:
        ids = [k for k, _ in b]
        times = [T0 + timedelta(hours=h) for _, h in b]
        value += 1
        store.ingest("driver_stats", rows(ids, times, [value + i / 100 for i in range(len(b))]))
    view = store.get_feature_view("driver_stats")
    full = store.offline.engine._latest(  # type: ignore[attr-defined]
        _spec(store, view), None
    )
    got = store.preview("driver_stats", n)
    key = lambda r: (r["event_timestamp"], r["driver_id"])  # noqa: E731
    every = sorted(full.to_pylist(), key=key, reverse=True)
    assert got.num_rows == min(n, len(every))
    times = [r["event_timestamp"] for r in every[:n]]
    assert sorted((r["event_timestamp"] for r in got.to_pylist()), reverse=True) == times
    winners = {(r["driver_id"], r["event_timestamp"]): r for r in every}
    for r in got.to_pylist():  # each one is the winner of its key and time
        assert winners[(r["driver_id"], r["event_timestamp"])] == r
    store.close()


def _spec(store: object, view: object) -> object:
    from featureline.offline._pit import JoinSpec

    s = store.offline  # type: ignore[attr-defined]
    return JoinSpec(
        s.parts(view.name, view.version),  # type: ignore[attr-defined]
        view.join_keys,  # type: ignore[attr-defined]
        [(f.name, f.name) for f in view.features],  # type: ignore[attr-defined]
    )
