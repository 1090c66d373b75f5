"""`preview` / `latest_rows(limit=)` over several commits ranks the newest rows by their event
times alone, resolves ties among the candidates by reading their keys and tie order by row
position, and reads the winners' features by row position (DuckDB `file_row_number`). It must
return what resolving ties over every row returns, across random ingests full of overwrites
(the same key and event time again, in one batch and across commits), compactions, and any
as_of (DESIGN §3, bitemporal rows)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featureline.offline._pit import JoinSpec
from tests.helpers import driver_defs, new_store, rows, utc

T0 = utc(2025, 1, 1)
batch = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5)), min_size=1, max_size=10)
step = st.one_of(batch, st.just("compact"))


def _reference(store: Any, view: Any, as_of_us: int | None) -> list[dict[str, Any]]:
    """Every tie winner visible at `as_of_us`, newest first (ties over every row)."""
    spec = JoinSpec(
        store.offline.parts(view.name, view.version, as_of_us),
        view.join_keys,
        [(f.name, f.name) for f in view.features],
        as_of_us=as_of_us,
    )
    full = store.offline.engine._latest(spec, None).to_pylist()
    return sorted(full, key=lambda r: (r["event_timestamp"], r["driver_id"]), reverse=True)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(step, min_size=2, max_size=7),
    st.integers(1, 12),
    st.sampled_from([1, 4]),
    st.integers(0, 10),
)
def test_newest_rows_equal_the_full_tie_resolution(
    tmp_path_factory: Any, steps: list[Any], n: int, overscan: int, as_of_pick: int
) -> None:
    from featureline.offline.engines import duckdb

    duckdb.PREVIEW_OVERSCAN = overscan  # 1: the first candidates are often too few (losers)
    store = new_store(tmp_path_factory.mktemp("p"), *driver_defs(ttl=None))
    try:
        view = store.get_feature_view("driver_stats")
        value, stamps = 0.0, []
        for s in steps:
            if s == "compact":
                store.offline.compact(view)  # no vacuum: every as_of stays readable
                continue
            value += 1
            ids = [k for k, _ in s]
            times = [T0 + timedelta(hours=h) for _, h in s]
            store.ingest(
                "driver_stats",
                rows(ids, times, [value + i / 100 for i in range(len(s))], [int(value)] * len(s)),
            )
            stamps.append(store.offline.commits(view.name, view.version)[-1].ingested_at_us)
        choices = [None, *stamps, *(t - 1 for t in stamps)]
        as_of = choices[as_of_pick % len(choices)]
        every = _reference(store, view, as_of)
        got = store.offline.latest_rows(view, as_of_us=as_of, limit=n)
        assert got.column_names == ["driver_id", "event_timestamp", "rate", "trips"]
        got_rows = got.to_pylist()
        assert len(got_rows) == min(n, len(every))
        times = [r["event_timestamp"] for r in got_rows]
        assert times == sorted(times, reverse=True)  # newest first
        assert times == [r["event_timestamp"] for r in every[:n]]
        winners = {(r["driver_id"], r["event_timestamp"]): r for r in every}
        for r in got_rows:  # each one is the winner of its key and time
            assert winners[(r["driver_id"], r["event_timestamp"])] == r
        assert len({(r["driver_id"], r["event_timestamp"]) for r in got_rows}) == len(got_rows)
        if len({r["event_timestamp"] for r in every}) == len(every):  # no order left open
            assert got_rows == every[:n]
    finally:
        duckdb.PREVIEW_OVERSCAN = 4
        store.close()


def test_features_are_read_only_from_the_winners_parts(tmp_path: Any) -> None:
    store = new_store(tmp_path, *driver_defs(ttl=None))
    hours = lambda *h: [T0 + timedelta(hours=x) for x in h]  # noqa: E731
    for c in range(6):  # six commits, each one newest row (hour 100 + c) among old ones
        store.ingest(
            "driver_stats", rows([1, 2, 3], hours(c, c + 10, 100 + c), [c, c + 0.5, c + 0.9])
        )
    engine = store.offline.engine
    read: list[set[int]] = []
    real = engine._read_by_row

    def spy(spec: JoinSpec, part: Any, row: Any, *a: Any, **k: Any) -> Any:
        read.append({int(i) for i in part})
        return real(spec, part, row, *a, **k)

    engine._read_by_row = spy
    try:
        got = store.preview("driver_stats", 2).to_pylist()
    finally:
        engine._read_by_row = real
    assert [r["event_timestamp"] for r in got] == hours(105, 104)
    assert [r["rate"] for r in got] == [5.9, 4.9]
    assert len(read) == 1 and len(read[0]) == 2  # the two newest commits' parts alone
    store.close()
