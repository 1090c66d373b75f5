"""Superseded rows from the commit log (issue 12, the statistics page): each commit records the
rows it made superseded when it landed (`supersedes`: its in-batch ties plus one per (keys, event
time) a live row already held), merges carry the sum, so the live rows' superseded count is a
sum over the log — the same number as the exact keys' scan (rows - distinct pairs), over any
sequence of ingests, overwrites, automatic and full merges. Commits without the figure (older
logs) fall back to the scan."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pyarrow as pa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from featureline.offline import store as offline_store
from featureline.offline.engines.duckdb import _pairs_scan
from featureline.server._ui_data import UiData
from tests.helpers import TS, driver_defs, new_store, rows, utc

# (key, day, value): few keys and days, so batches overwrite earlier rows and tie in themselves
_row = st.tuples(st.integers(0, 3), st.integers(0, 4), st.integers(0, 9))
_step = st.one_of(
    st.tuples(st.just("ingest"), st.lists(_row, min_size=1, max_size=8)),
    st.tuples(st.just("merge"), st.just([])),  # an automatic merge (one size tier)
    st.tuples(st.just("compact"), st.just([])),  # a full compaction
)


def _exact(store: Any) -> tuple[int, int]:
    """(live rows, superseded rows) by the exact keys' scan over the live parts."""
    parts = store.offline.parts("driver_stats", 1)
    src = "read_parquet([" + ", ".join(f"'{p.path}'" for p in parts) + "], union_by_name = true)"
    con = store.offline.engine.connection()
    try:
        (n,) = con.execute(f"SELECT count(*) FROM {src}").fetchall()[0]
        return int(n), _pairs_scan(con, src, ["driver_id"], None, int(n))[0]
    finally:
        con.close()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(_step, min_size=1, max_size=12), st.booleans())
@example(
    steps=[("ingest", [(0, 0, 0), (0, 0, 1)]), ("ingest", [(0, 0, 2)]), ("compact", [])],
    bounded=False,
)
@example(
    steps=[("ingest", [(0, 0, 0)]), ("ingest", [(0, 0, 1)]), ("ingest", [(0, 1, 1)])],
    bounded=True,
)
def test_recorded_figures_equal_the_exact_scan(
    tmp_path_factory: Any, steps: list[tuple[str, list[tuple[int, int, int]]]], bounded: bool
) -> None:
    """`bounded`: an ingest looks up at most 2 stored rows per batch row, so some commits carry
    no figure (a push onto a large view): the page's count then comes from a scan, or from the
    lookup of those commits' pairs alone after a count this process made."""
    base = tmp_path_factory.mktemp("s")
    with (
        mock.patch.object(offline_store, "COMPACT_AFTER", 2),  # merges from few commits
        mock.patch.object(offline_store, "LOOKUP_FREE_ROWS", 0 if bounded else 10**6),
        mock.patch.object(offline_store, "LOOKUP_PER_ROW", 2 if bounded else 4),
    ):
        store = new_store(base, *driver_defs(ttl=timedelta(days=40)))
        try:
            fv = store.get_feature_view("driver_stats")
            ingested: list[pa.Table] = []
            for kind, batch in steps:
                if kind == "ingest":
                    t = rows(
                        [k for k, _, _ in batch],
                        [utc(2025, 1, 1 + d) for _, d, _ in batch],
                        [float(v) for _, _, v in batch],
                    )
                    store.ingest("driver_stats", t)  # merges automatically from 2 commits
                    ingested.append(t)
                elif kind == "merge":
                    store.offline.compact(fv, max_rows=offline_store.COMPACT_ROWS)
                else:
                    store.offline.compact(fv)
                if not ingested:
                    assert store.offline.superseded_rows(fv) == 0
                    continue
                everything = pa.concat_tables(ingested)
                distinct = (
                    everything.select(["driver_id", "event_timestamp"])
                    .group_by(["driver_id", "event_timestamp"])
                    .aggregate([])
                    .num_rows
                )
                n, superseded = _exact(store)
                assert (
                    n
                    == everything.num_rows
                    == sum(c.rows for c in store.offline.commits("driver_stats", 1))
                )
                assert superseded == everything.num_rows - distinct
                figured = all(
                    "supersedes" in c.meta for c in store.offline.commits("driver_stats", 1)
                )
                assert store.offline.superseded_rows(fv) in (
                    (superseded,) if figured or not bounded else (superseded, None)
                )
                page = UiData(store)._stats_for(fv)
                assert (page["rows"], page["superseded_rows"]) == (n, superseded)
                assert page["rows"] - page["superseded_rows"] == distinct  # the live rows
        finally:
            store.close()


def _strip(log: Path, seqs: set[int] | None = None) -> None:
    """The log as an older writer left it: no `supersedes` figure (in commits `seqs`, or all)."""
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    for d in lines:
        if seqs is None or d["seq"] in seqs:
            d["meta"].pop("supersedes", None)
    log.write_text("".join(json.dumps(d) + "\n" for d in lines))


def test_a_commit_without_the_figure_falls_back_to_the_scan(tmp_path: Path) -> None:
    store = new_store(tmp_path, *driver_defs(ttl=None))
    try:
        fv = store.get_feature_view("driver_stats")
        days = [utc(2025, 1, 1), utc(2025, 1, 2)]
        store.ingest("driver_stats", rows([1, 1, 2], [days[0], days[0], days[0]], [1, 2, 3]))
        store.ingest("driver_stats", rows([1, 2, 3], [days[0], days[1], days[1]], [4, 5, 6]))
        commits = store.offline.commits("driver_stats", 1)
        # the first: its in-batch tie; the second: key 1 on day 0 was stored already
        assert [c.meta["supersedes"] for c in commits] == [1, 1]
        assert store.offline.superseded_rows(fv) == 2
        _strip(store.offline.log("driver_stats", 1).log_path, {commits[1].seq})
        assert store.offline.superseded_rows(fv) == 2  # what this process counted last
        store.offline._superseded.clear()  # another process: only the log
        assert store.offline.superseded_rows(fv) is None
        assert UiData(store)._stats_for(fv)["superseded_rows"] == 2  # the scan's
        assert store.describe("driver_stats")["superseded_rows"] == 2
        # a full compaction counts the rows it marked (they lose a tie): the figure is back
        store.offline.compact(fv)
        (merged,) = store.offline.commits("driver_stats", 1)
        assert merged.meta["supersedes"] == 2
    finally:
        store.close()


def test_a_push_onto_many_rows_leaves_the_lookup_to_the_stats(tmp_path: Path) -> None:
    """A batch whose event times reach more stored rows than the ingest looks up records no
    figure (the writer lock is not held for a scan); the first statistics scan, the next ones
    look up only the pairs of the commits since. Before: every first load scanned the keys."""
    store = new_store(tmp_path, *driver_defs(ttl=None))
    try:
        fv = store.get_feature_view("driver_stats")
        days = [utc(2025, 1, 1) + timedelta(days=d) for d in range(10)]
        store.ingest("driver_stats", rows(list(range(10)), days, [1.0] * 10))
        engine = store.offline.engine
        real = engine._pairs_scan  # type: ignore[attr-defined]
        scans: list[int] = []

        def counted(*args: Any) -> Any:
            scans.append(1)
            return real(*args)

        with (
            mock.patch.object(offline_store, "LOOKUP_FREE_ROWS", 0),
            mock.patch.object(offline_store, "LOOKUP_PER_ROW", 2),
            mock.patch.object(engine, "_pairs_scan", side_effect=counted),
        ):
            store.ingest("driver_stats", rows([3], [days[3]], [2.0]))  # overwrites a row
            assert "supersedes" not in store.offline.commits("driver_stats", 1)[-1].meta
            assert UiData(store)._stats_for(fv)["superseded_rows"] == 1
            assert scans == [1]
            store.ingest("driver_stats", rows([3, 4], [days[3], days[5]], [3.0, 3.0]))
            store.ingest("driver_stats", rows([5], [days[5]], [4.0]))  # the row before it too
            page = UiData(store)._stats_for(fv)
            assert (page["rows"], page["superseded_rows"]) == (14, 3)
            assert scans == [1]  # the two commits' pairs looked up, no scan
    finally:
        store.close()


def test_parts_read_before_a_commit_do_not_take_its_figure(tmp_path: Path) -> None:
    store = new_store(tmp_path, *driver_defs(ttl=None))
    try:
        fv = store.get_feature_view("driver_stats")
        store.ingest("driver_stats", rows([1], [utc(2025, 1, 1)], [1]))
        parts = store.offline.parts("driver_stats", 1)
        store.ingest("driver_stats", rows([1], [utc(2025, 1, 1)], [2]))
        assert store.offline.superseded_rows(fv, parts) is None  # the parts miss the new commit
        assert store.offline.superseded_rows(fv) == 1
    finally:
        store.close()


def test_statistics_of_overlapping_commits_read_no_keys(tmp_path: Path) -> None:
    """Commits overlapping in event time (the bench's shape): the page's superseded rows come
    from the log; the keys' scan (`_pairs_scan`) is not run. Before: it ran on every first load."""
    store = new_store(tmp_path, *driver_defs(ttl=None))
    try:
        fv = store.get_feature_view("driver_stats")
        t = [utc(2025, 1, 1) + timedelta(hours=h) for h in range(6)]
        store.ingest("driver_stats", rows([1, 2, 3, 1, 2, 3], t, [1.0] * 6))
        store.ingest("driver_stats", rows([1, 2, 4], [t[0], t[5], t[3]], [2.0] * 3))
        engine = store.offline.engine
        with mock.patch.object(engine, "_pairs_scan", side_effect=AssertionError("scanned")):
            page = UiData(store)._stats_for(fv)
        assert (page["rows"], page["superseded_rows"]) == (9, 1)
    finally:
        store.close()


def test_pairs_are_compared_as_stored_timestamps(tmp_path: Path) -> None:
    """A batch's event times in another unit/zone are stored as UTC µs: a correction of a row
    given as a millisecond timestamp matches the stored row."""
    store = new_store(tmp_path, *driver_defs(ttl=None))
    try:
        fv = store.get_feature_view("driver_stats")
        store.ingest("driver_stats", rows([1], [utc(2025, 1, 1)], [1.0]))
        again = pa.table(
            {
                "driver_id": pa.array([1], pa.int64()),
                "event_timestamp": pa.array([utc(2025, 1, 1)], pa.timestamp("ms", "UTC")),
                "rate": [2.0],
                "trips": pa.array([1], pa.int64()),
            }
        )
        store.ingest("driver_stats", again)
        assert store.offline.superseded_rows(fv) == 1
        assert TS is not None
    finally:
        store.close()


def test_commits_landed_after_the_early_lookup_are_looked_at_under_the_lock(
    tmp_path: Path,
) -> None:
    """The ingest looks its pairs up before the writer lock; a commit, or a merge, landing in
    between is taken into account under it: the figure is the one a lookup under the lock gives."""
    from featureline.offline.batch import prepare_batch

    store = new_store(tmp_path, *driver_defs(ttl=None))
    try:
        fv = store.get_feature_view("driver_stats")
        off = store.offline
        log = off.log("driver_stats", 1)
        day = [utc(2025, 1, 1 + d) for d in range(4)]
        off.ingest(fv, rows([1, 2], [day[0], day[1]], [1.0, 1.0]))
        stored, _ = prepare_batch(
            fv, rows([1, 2, 3, 3], [day[0], day[1], day[2], day[2]], [2.0] * 4), {}
        )
        early = off._pairs_stored(fv, log, stored, log.live_commits(), None)
        assert early is not None and early[1].num_rows == 2
        off.ingest(fv, rows([3, 1], [day[2], day[0]], [3.0, 3.0]))  # lands in between
        # own tie (key 3 twice) + keys 1, 2 stored before + key 3 stored in between
        assert off._supersedes_figure(fv, log, stored, early) == {"supersedes": 4}
        off.compact(fv)  # a merge of the seen commit and the one in between
        assert off._supersedes_figure(fv, log, stored, early) == {"supersedes": 4}
        assert off._supersedes_figure(fv, log, stored, None) == {}
    finally:
        store.close()
