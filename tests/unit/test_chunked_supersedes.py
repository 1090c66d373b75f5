"""A chunked file ingest records its `supersedes` figure as a batch in memory does (issue 12,
the statistics page): its in-file ties plus one per distinct (keys, event time) of the file a
live row held already, looked up by DuckDB over the staged chunks before the writer lock and,
under it, among the commits landed since. So the log's figures still sum to the exact keys'
scan (rows - distinct pairs) once a large file was ingested; before, its commit had none and
every statistics computation of the view fell back to the scan."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import featureline as fl
from featureline.offline import chunked
from featureline.offline import store as offline_store
from tests.helpers import driver_defs, new_store, rows, utc
from tests.unit.test_superseded_figures import _exact  # the exact keys' scan

VIEW = "driver_stats"
Row = tuple[int, int, int]  # (key, day, value)


def _table(batch: list[Row]) -> pa.Table:
    return rows(
        [k for k, _, _ in batch],
        [utc(2025, 1, 1 + d) for _, d, _ in batch],
        [float(v) for _, _, v in batch],
    )


def _file(base: Path, batch: list[Row]) -> str:
    """`batch` as a Parquet file (the chunked way takes it: LARGE_FILE_ROWS is patched)."""
    path = base / f"f{len(list(base.glob('f*.parquet')))}.parquet"
    pq.write_table(_table(batch), path)
    return str(path)


def _figures(store: fl.FeatureStore) -> list[int | None]:
    return [c.meta.get("supersedes") for c in store.offline.commits(VIEW, 1)]


def _assert_log_sums_to_the_scan(store: fl.FeatureStore, ingested: list[pa.Table]) -> None:
    everything = pa.concat_tables(ingested).select(["driver_id", "event_timestamp"])
    distinct = len(set(zip(*everything.to_pydict().values(), strict=True)))
    n, superseded = _exact(store)
    assert (n, superseded) == (everything.num_rows, everything.num_rows - distinct)
    figures = _figures(store)
    assert None not in figures, f"a commit without a `supersedes` figure: {figures}"
    assert sum(f or 0 for f in figures) == superseded, (figures, superseded)
    store.offline._superseded.clear()  # another process: the log alone tells
    assert store.offline.superseded_rows(store.get_feature_view(VIEW)) == superseded


def _no_staging_left(store: fl.FeatureStore) -> None:
    parts = store.offline.log(VIEW, 1).root / "parts"
    assert not list(parts.glob(".staging*"))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[fl.FeatureStore]:
    """A store of the driver view in which every file takes the chunked way, in chunks of 2
    rows (a file's ties fall in different chunks)."""
    s = new_store(tmp_path, *driver_defs(ttl=None))
    try:
        with (
            mock.patch.object(chunked, "LARGE_FILE_ROWS", 0),
            mock.patch.object(chunked, "CHUNK_ROWS", 2),
        ):
            yield s
    finally:
        s.close()


_row = st.tuples(st.integers(0, 3), st.integers(0, 4), st.integers(0, 9))
_step = st.one_of(
    st.tuples(st.just("ingest"), st.lists(_row, min_size=1, max_size=6)),  # a frame
    st.tuples(st.just("file"), st.lists(_row, min_size=1, max_size=10)),  # a chunked file
    st.tuples(st.just("merge"), st.just([])),  # an automatic merge (one size tier)
    st.tuples(st.just("compact"), st.just([])),  # a full compaction
)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(_step, min_size=1, max_size=10))
@example(steps=[("file", [(0, 0, 0), (1, 0, 0), (0, 0, 1)])])  # a tie across two chunks
@example(steps=[("ingest", [(0, 0, 0), (1, 1, 0)]), ("file", [(0, 0, 1), (0, 0, 2), (2, 1, 0)])])
@example(
    steps=[("file", [(0, 0, 0)]), ("file", [(0, 0, 1)]), ("compact", []), ("file", [(0, 0, 2)])]
)
def test_chunked_figures_sum_to_the_exact_scan(
    tmp_path_factory: Any, steps: list[tuple[str, list[Row]]]
) -> None:
    base = tmp_path_factory.mktemp("c")
    with (
        mock.patch.object(chunked, "LARGE_FILE_ROWS", 0),
        mock.patch.object(chunked, "CHUNK_ROWS", 2),
        mock.patch.object(offline_store, "COMPACT_AFTER", 2),  # merges from few commits
    ):
        store = new_store(base, *driver_defs(ttl=timedelta(days=40)))
        try:
            fv = store.get_feature_view(VIEW)
            ingested: list[pa.Table] = []
            for kind, batch in steps:
                if kind == "ingest":
                    store.ingest(VIEW, _table(batch))
                    ingested.append(_table(batch))
                elif kind == "file":
                    r = store.ingest(VIEW, _file(base, batch))
                    assert r.rows == len(batch)
                    ingested.append(_table(batch))
                elif kind == "merge":
                    store.offline.compact(fv, max_rows=offline_store.COMPACT_ROWS)
                else:
                    store.offline.compact(fv)
                if ingested:
                    _assert_log_sums_to_the_scan(store, ingested)
            _no_staging_left(store)
        finally:
            store.close()


def test_a_file_records_its_ties_and_the_stored_pairs_it_overwrites(
    store: fl.FeatureStore, tmp_path: Path
) -> None:
    first = [(1, 0, 1), (2, 0, 1), (3, 1, 1)]
    store.ingest(VIEW, _table(first))
    # key 1 day 0 three times (2 in-file ties, across chunks), stored already (1 more);
    # key 3 day 1 stored already; key 4 day 1 new; key 5 day 4 twice (1 tie)
    batch = [(1, 0, 2), (4, 1, 2), (1, 0, 3), (3, 1, 2), (5, 4, 2), (1, 0, 4), (5, 4, 3)]
    store.ingest(VIEW, _file(tmp_path, batch))
    assert _figures(store) == [0, 3 + 2]
    _assert_log_sums_to_the_scan(store, [_table(first), _table(batch)])
    _no_staging_left(store)


@pytest.mark.parametrize("between", ["commit", "merge of seen commits", "merge with a new one"])
def test_a_commit_landing_after_the_early_lookup_is_counted(
    store: fl.FeatureStore, tmp_path: Path, between: str
) -> None:
    """A commit (or merge) lands after the file's pairs were looked up and before the writer
    lock is taken (simulated: it lands as the ingest calls the log's `commit`): the figure
    under the lock takes it into account."""
    fv = store.get_feature_view(VIEW)
    log = store.offline.log(VIEW, 1)
    ingested = [_table([(1, 0, 1), (2, 1, 1)]), _table([(6, 3, 1)])]
    for t in ingested:
        store.ingest(VIEW, t)
    meanwhile = _table([(3, 2, 5), (1, 0, 5)])  # key 3 day 2 is in the file, key 1 too
    real = log.commit
    landed: list[int] = []

    def commit(*args: Any, **kw: Any) -> Any:
        if not landed:  # the file's commit: another lands first
            landed.append(1)
            if between != "merge of seen commits":
                store.ingest(VIEW, meanwhile)
                ingested.append(meanwhile)
            if between != "commit":
                store.offline.compact(fv)
        return real(*args, **kw)

    batch = [(1, 0, 2), (2, 1, 2), (3, 2, 2), (3, 2, 3), (4, 2, 2)]
    with mock.patch.object(log, "commit", side_effect=commit):
        store.ingest(VIEW, _file(tmp_path, batch))
    ingested.append(_table(batch))
    assert landed == [1]
    # own tie (key 3 twice) + keys 1 and 2 stored before + key 3 landed in between
    assert store.offline.commits(VIEW, 1)[-1].meta.get("supersedes") == (
        3 if between == "merge of seen commits" else 4
    )
    _assert_log_sums_to_the_scan(store, ingested)


def test_the_lookup_is_made_before_the_lock_and_only_new_commits_under_it(
    store: fl.FeatureStore, tmp_path: Path
) -> None:
    store.ingest(VIEW, _table([(1, 0, 1)]))
    store.ingest(VIEW, _table([(2, 0, 1)]))
    log = store.offline.log(VIEW, 1)
    real_look_up = chunked._Supersedes._look_up
    calls: list[Any] = []

    def look_up(self: Any, live: Any, only: Any) -> Any:
        calls.append(only)
        return real_look_up(self, live, only)

    real_commit = log.commit

    def commit(*args: Any, **kw: Any) -> Any:
        if calls == [None]:  # the file's commit, after its early lookup
            calls.append("landed")
            store.ingest(VIEW, _table([(3, 0, 1)]))
        return real_commit(*args, **kw)

    with (
        mock.patch.object(chunked._Supersedes, "_look_up", look_up),
        mock.patch.object(log, "commit", side_effect=commit),
    ):
        store.ingest(VIEW, _file(tmp_path, [(1, 0, 2), (3, 0, 2)]))
    seqs = [c.seq for c in store.offline.commits(VIEW, 1)]
    # before the lock: every live commit; under it: only the one landed in between
    assert calls == [None, "landed", {seqs[2]}]
    assert _figures(store)[-1] == 2


def test_no_figure_beyond_the_lookup_budget(store: fl.FeatureStore, tmp_path: Path) -> None:
    store.ingest(VIEW, _table([(k, 0, 1) for k in range(5)]))
    with (
        mock.patch.object(offline_store, "LOOKUP_FREE_ROWS", 0),
        mock.patch.object(offline_store, "LOOKUP_PER_ROW", 2),
    ):
        store.ingest(VIEW, _file(tmp_path, [(1, 0, 2), (9, 3, 2)]))  # 5 rows > 2 x 2
        store.ingest(VIEW, _file(tmp_path, [(1, 4, 2), (9, 4, 2), (9, 4, 3)]))  # none near
    assert _figures(store) == [0, None, 1]
    fv = store.get_feature_view(VIEW)
    store.offline._superseded.clear()
    assert store.offline.superseded_rows(fv) is None  # the statistics scan instead
    assert store.describe(VIEW)["superseded_rows"] == _exact(store)[1] == 2


def test_a_failed_lookup_never_fails_the_write(
    store: fl.FeatureStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store.ingest(VIEW, _table([(1, 0, 1)]))

    def broken(*args: Any) -> Any:
        raise OSError("disk full")

    with (
        mock.patch.object(chunked._Supersedes, "_look_up", broken),
        caplog.at_level(logging.WARNING, "featureline.offline"),
    ):
        r = store.ingest(VIEW, _file(tmp_path, [(1, 0, 2), (2, 0, 2)]))
    assert (r.rows, r.replayed) == (2, False)
    assert _figures(store) == [0, None]
    assert "superseded-rows lookup of driver_stats failed" in caplog.text
    assert "disk full" in caplog.text
    _no_staging_left(store)


def test_a_replayed_file_looks_nothing_up(store: fl.FeatureStore, tmp_path: Path) -> None:
    path = _file(tmp_path, [(1, 0, 1), (1, 0, 2)])
    first = store.ingest(VIEW, path, idempotency_key="k")
    with mock.patch.object(chunked._Supersedes, "early", side_effect=AssertionError("looked up")):
        again = store.ingest(VIEW, path, idempotency_key="k")
    assert again.replayed and again.commit == first.commit
    assert _figures(store) == [1]
    _no_staging_left(store)
