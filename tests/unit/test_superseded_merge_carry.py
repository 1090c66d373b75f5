"""A merge carries the superseded-rows count over (issue 12, the statistics page): pushes onto a
large view record no `supersedes` figure (their lookup is left to the readers), the page looks
each one's pairs up, and the housekeeper then merges them. A merge keeps every row of the
commits it replaces — tie losers too, each row with its own ingested time —, so the rows and
their distinct (keys, event time) pairs stay what they were: when every commit it replaced was
counted, the count is unchanged and `OfflineStore.superseded_rows` answers without a lookup.
Before, it answered None (a merge among the commits since the count) and the page probed the
new rows' pairs again (`new_pairs`: 697 ms of a 781 ms page on 10M rows)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from featureline.offline import store as offline_store
from featureline.server._ui_data import UiData
from tests.helpers import driver_defs, new_store, rows, utc
from tests.unit.test_superseded_figures import _exact


def _batch(spec: list[tuple[int, int, int]]) -> pa.Table:
    return rows(
        [k for k, _, _ in spec],
        [utc(2025, 1, 1) + timedelta(days=d) for _, d, _ in spec],
        [float(v) for _, _, v in spec],
    )


def _truth(ingested: list[pa.Table]) -> int:
    t = pa.concat_tables(ingested).select(["driver_id", "event_timestamp"])
    return t.num_rows - t.group_by(t.column_names).aggregate([]).num_rows


@pytest.fixture
def unbounded_merges() -> Any:
    """No automatic merge at ingest (the test merges when it says so); a push records no
    figure: it looks up at most 2 stored rows per row of the batch, never more."""
    with (
        mock.patch.object(offline_store, "COMPACT_AFTER", 10**6),
        mock.patch.object(offline_store, "LOOKUP_FREE_ROWS", 0),
        mock.patch.object(offline_store, "LOOKUP_PER_ROW", 2),
    ):
        yield


def _merge(store: Any, fv: Any) -> Any:
    """An automatic merge of one size tier (the housekeeper's), from 2 commits."""
    with mock.patch.object(offline_store, "COMPACT_AFTER", 2):
        return store.offline.compact(fv, max_rows=offline_store.COMPACT_ROWS)


def test_a_merge_of_counted_pushes_keeps_the_count_without_a_lookup(
    tmp_path: Path, unbounded_merges: None
) -> None:
    store = new_store(tmp_path, *driver_defs(ttl=None))
    try:
        fv = store.get_feature_view("driver_stats")
        base = _batch([(k, d, 0) for k in range(20) for d in range(5)])  # 100 rows, a figure
        store.ingest("driver_stats", base)
        ingested = [base]
        ui = UiData(store)
        assert ui._stats_for(fv)["superseded_rows"] == 0
        for i in range(3):  # pushes onto more rows than they look up: no figure
            push = _batch([(i, i, 1), (i, i, 2), (7, 1, 3)])  # a tie, and two corrections
            store.ingest("driver_stats", push)
            ingested.append(push)
            assert "supersedes" not in store.offline.commits("driver_stats", 1)[-1].meta
            assert store.offline.superseded_rows(fv) == _truth(ingested)  # looked up
        merged = _merge(store, fv)
        assert merged is not None and set(merged.replaces) >= {2, 3, 4}
        assert "supersedes" not in merged.meta  # its pushes had no figure in the log
        with (
            mock.patch.object(offline_store, "_stored_pairs", side_effect=AssertionError),
            mock.patch.object(store.offline.engine, "new_pairs", side_effect=AssertionError),
            mock.patch.object(store.offline.engine, "_pairs_scan", side_effect=AssertionError),
        ):
            assert store.offline.superseded_rows(fv) == _truth(ingested) == 9
            assert ui._stats_for(fv)["superseded_rows"] == 9  # the page: no lookup either
        # a push after the merge: its pairs alone looked up, the merge counted
        push = _batch([(7, 1, 9), (30, 9, 9)])
        store.ingest("driver_stats", push)
        ingested.append(push)
        assert store.offline.superseded_rows(fv) == _truth(ingested) == 10
        assert _exact(store) == (sum(t.num_rows for t in ingested), 10)
    finally:
        store.close()


def test_a_merge_of_an_uncounted_commit_is_not_carried(
    tmp_path: Path, unbounded_merges: None
) -> None:
    """A push merged before it was looked up: its rows are in the merge, uncounted — no figure
    from the log alone (the page probes them: `new_pairs`)."""
    store = new_store(tmp_path, *driver_defs(ttl=None))
    try:
        fv = store.get_feature_view("driver_stats")
        base = _batch([(k, d, 0) for k in range(20) for d in range(5)])
        store.ingest("driver_stats", base)
        ui = UiData(store)
        ui._stats_for(fv)
        store.ingest("driver_stats", _batch([(1, 1, 1)]))
        assert store.offline.superseded_rows(fv) == 1
        store.ingest("driver_stats", _batch([(2, 2, 1)]))  # not looked up before the merge
        assert _merge(store, fv) is not None
        assert store.offline.superseded_rows(fv) is None
        assert ui._stats_for(fv)["superseded_rows"] == 2
        assert store.offline.superseded_rows(fv) == 2  # noted by the page
    finally:
        store.close()


_row = st.tuples(st.integers(0, 4), st.integers(0, 5), st.integers(0, 9))
_step = st.one_of(
    # mostly 1 row: two commits of a size tier (fan-in 2 in the test) fill it for a merge
    st.tuples(st.just("ingest"), st.lists(_row, min_size=1, max_size=1)),
    st.tuples(st.just("ingest"), st.lists(_row, min_size=1, max_size=3)),
    st.tuples(st.just("look"), st.just([])),  # the store's count (a page)
    st.tuples(st.just("merge"), st.just([])),  # an automatic merge of one size tier
    st.tuples(st.just("compact"), st.just([])),  # a full compaction
)
_steps = st.lists(
    st.tuples(_step, st.booleans()), min_size=1, max_size=16
).map(  # each step followed by a count, or not
    lambda xs: [s for step, look in xs for s in ([step, ("look", [])] if look else [step])]
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(_steps)
@example(
    steps=[
        ("ingest", [(0, 0, 0), (0, 0, 1), (1, 1, 1), (2, 2, 2)]),
        ("look", []),
        ("ingest", [(0, 0, 2)]),
        ("look", []),
        ("ingest", [(1, 1, 2)]),
        ("look", []),
        ("merge", []),  # the two 1-row commits
        ("ingest", [(1, 1, 3), (3, 3, 3)]),
        ("look", []),
        ("merge", []),  # the merged 2 rows and the new 2
    ]
)
def test_the_carried_count_equals_the_full_lookup(
    tmp_path_factory: Any, steps: list[tuple[str, list[tuple[int, int, int]]]]
) -> None:
    """Random ingests (ties in a batch, corrections of stored rows), counts, automatic merges
    and full compactions: whenever `superseded_rows` answers, it is the exact keys' scan (rows
    - distinct pairs); and it answers after a merge of commits it had all counted."""
    base = tmp_path_factory.mktemp("carry")
    with (
        mock.patch.object(offline_store, "COMPACT_AFTER", 10**6),
        mock.patch.object(offline_store, "LOOKUP_FREE_ROWS", 0),
        mock.patch.object(offline_store, "LOOKUP_PER_ROW", 1),
    ):
        store = new_store(base, *driver_defs(ttl=None))
        try:
            fv = store.get_feature_view("driver_stats")
            ingested: list[pa.Table] = []
            counted_all = False  # the last count covered every live commit
            for kind, spec in steps:
                if kind == "ingest":
                    t = _batch(spec)
                    store.ingest("driver_stats", t)
                    ingested.append(t)
                    counted_all = False
                    continue
                if kind == "merge":
                    if _merge(store, fv) is None:
                        continue
                elif kind == "compact":
                    if store.offline.compact(fv) is None:
                        continue
                    counted_all = True  # every row merged: its marked rows are the figure
                if not ingested:
                    continue
                truth = _truth(ingested)
                assert _exact(store)[1] == truth
                got = store.offline.superseded_rows(fv)
                assert got in (truth, None), (got, truth)
                if kind == "look" and got is None:
                    store.offline.note_superseded(fv, store.offline.parts("driver_stats", 1), truth)
                    got = truth
                if kind == "merge" and counted_all:
                    event("a merge of counted commits")
                    assert got == truth  # carried over: no lookup of the merged rows
                counted_all = got is not None
        finally:
            store.close()
