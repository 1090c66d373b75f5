"""The DuckDB offline engine (embedded, the default): ASOF joins over Parquet parts."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featureline._sql import (  # noqa: F401
    CREATED_TS,
    EVENT_TS,
    INGESTED_AT,
    SEQ,
    SHADOWED_UNTIL,
    lit,
    q,
    tie_order_sql,
)
from featureline.definitions import FeatureView
from featureline.offline._batch_order import ARROW_MAX_ROWS, firsts, has_nulls
from featureline.offline._pit import (  # noqa: F401
    JoinSpec,
    PartRef,
    _visible,
    column_or_null,
    feature_source_sql,
    merge_parts_sql,
    pit_join_sql,
    scan_winners_sql,
    winners_sql,
)
from featureline.offline.engines._base import EngineCapabilities

# The engine is split by concern: the preview (_duckdb_preview), the statistics of `profile`
# (_duckdb_profile, with the footer facts in _duckdb_facts); the joins, window events, winners
# and merges are here. Every name stays importable from this module (re-exported).
from featureline.offline.engines._duckdb_facts import (  # noqa: F401
    _disjoint,
    _Facts,
    _footer_facts,
    _footer_range,
    _scan_facts,
)
from featureline.offline.engines._duckdb_preview import _Preview
from featureline.offline.engines._duckdb_profile import (  # noqa: F401
    _DAY_US,
    _FOOTER_TYPES,
    _HOUR_US,
    _NUMERIC,
    _PAIRS_BATCH,
    _bin_counts,
    _finite,
    _numpy,
    _pairs_scan,
    _Profile,
    _row_group_sample,
    _rows_by_time,
    _sample_bins,
    _sample_quantiles,
    _Sampling,
    _time_buckets,
)


class DuckDBEngine(_Preview, _Profile):
    """One in-memory DuckDB database per engine; a cursor per call, so threads may share it."""

    name = "duckdb"
    capabilities = EngineCapabilities(
        asof_join=True, streams_results=True, distributed=False, spills_to_disk=True
    )

    def __init__(self, threads: int | None = None, memory_limit: str | None = None) -> None:
        self._threads = threads
        self._memory_limit = memory_limit
        self._con: Any = None
        self._lock = threading.Lock()

    def connection(self) -> Any:
        """A DuckDB cursor for this thread."""
        import duckdb

        with self._lock:
            if self._con is None:
                # its external file cache keeps an entry (~1 KB of RSS) for every file ever
                # read, deleted ones included: a stream writes ~16 part files a second, so a
                # long-lived process grew by it without bound; local files have the page cache
                cfg: dict[str, str | bool | int | float | list[str]] = {
                    "enable_external_file_cache": False
                }
                if self._threads:
                    cfg["threads"] = self._threads
                if self._memory_limit:
                    cfg["memory_limit"] = self._memory_limit
                self._con = duckdb.connect(config=cfg)
                self._con.execute(
                    "SET enable_progress_bar = false"
                )  # never print bars from a library
            return self._con.cursor()

    def point_in_time_join(self, entities: pa.Table, spec: JoinSpec) -> pa.Table:
        con = self.connection()
        try:
            con.register("__entities", entities)
            return con.sql(pit_join_sql(spec)).to_arrow_table()
        finally:
            con.close()

    def latest_rows(self, spec: JoinSpec, limit: int | None = None) -> pa.Table:
        many = len({p.commit for p in spec.parts}) > 1  # one commit has no ties to resolve
        if limit is not None and many and spec.min_event_us is None:
            return self._newest(spec, int(limit), PREVIEW_OVERSCAN)
        return self._latest(spec, limit)

    def window_events(
        self, spec: JoinSpec, keys: pa.Table | None, start_us: int | None
    ) -> pa.Table:
        k = ", ".join(q(x) for x in spec.keys)
        feats = ", ".join(q(out) for _, out in spec.features)
        where = []
        if start_us is not None:
            where.append(f"{EVENT_TS} >= make_timestamptz({int(start_us)}::BIGINT)")
        if keys is not None:
            where.append(f"({k}) IN (SELECT {k} FROM __keys)")
        sql = (
            f"SELECT {k}, epoch_us({EVENT_TS}) AS __event_us, {feats} FROM "
            f"({feature_source_sql(spec)})"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + f" ORDER BY {k}, {EVENT_TS}"
        )
        con = self.connection()
        try:
            if keys is not None:
                con.register("__keys", keys)
            return con.sql(sql).to_arrow_table()
        finally:
            con.close()

    def _stream(
        self, sql: str, chunk_rows: int, register: tuple[str, pa.Table] | None = None
    ) -> Iterator[pa.Table]:
        con = self.connection()
        try:
            if register is not None:
                con.register(*register)
            for batch in con.sql(sql).to_arrow_reader(chunk_rows):
                yield pa.Table.from_batches([batch])
        finally:
            con.close()

    def winners(
        self,
        view: FeatureView,
        parts: list[PartRef],
        since_us: int | None,
        start_us: int | None,
        end_us: int | None,
        chunk_rows: int,
        now_us: int | None = None,
    ) -> Iterator[pa.Table]:
        if not parts:
            return iter(())
        feats = [f.name for f in view.features]
        return self._stream(
            scan_winners_sql(view.join_keys, feats, parts, since_us, start_us, end_us, now_us),
            chunk_rows,
        )

    def batch_winners(
        self,
        view: FeatureView,
        stored: pa.Table,
        ingested_at_us: int,
        chunk_rows: int,
        now_us: int | None = None,
    ) -> Iterator[pa.Table]:
        feats = [f.name for f in view.features]
        keys = view.join_keys
        if stored.num_rows <= ARROW_MAX_ROWS and not has_nulls(stored, keys):  # a push: a sort
            return _slices(_arrow_winners(stored, keys, feats, ingested_at_us, now_us), chunk_rows)
        if stored.select(keys).group_by(keys).aggregate([]).num_rows == stored.num_rows:
            # one row per key (a typical push): every row is its key's winner, also with
            # `now_us` (a row dated ahead comes back as itself); no DuckDB query needed
            return _slices(_as_winners(stored, keys, feats, ingested_at_us), chunk_rows)
        cols = [
            *(q(k) for k in view.join_keys),
            EVENT_TS,
            CREATED_TS,
            f"{int(ingested_at_us)}::BIGINT AS {INGESTED_AT}",
            SEQ,
        ]
        cols += [q(f) for f in feats]
        sql = winners_sql(view.join_keys, feats, f"SELECT {', '.join(cols)} FROM __batch", now_us)
        return self._stream(sql, chunk_rows, ("__batch", stored))

    def merge_parts(self, view: FeatureView, parts: list[PartRef], dest: Path) -> None:
        sql = merge_parts_sql(view.join_keys, [f.name for f in view.features], parts)
        con = self.connection()
        try:
            con.execute(
                f"COPY ({sql}) TO {lit(str(dest))} (FORMAT parquet, COMPRESSION lz4, ROW_GROUP_SIZE 1048576)"
            )
        finally:
            con.close()

    def profile(
        self,
        view: FeatureView,
        parts: list[PartRef],
        *,
        bins: int = 0,
        quantiles: Sequence[float] = (),
        by_time: bool = False,
        superseded_rows: int | None = None,
    ) -> dict[str, Any]:
        """Row count, event-time range, superseded rows (exact) and per-feature statistics: null
        rate, min/max, mean (exact) and a distinct count (a HyperLogLog estimate). With `bins`,
        also a `bins`-bin histogram over [min, max] of each numeric feature; with `quantiles`,
        its percentiles; with `by_time`, the rows per hour, day or month of event time
        (`rows_by_time`, exact); and with any of them, `approximate`: which figures are
        estimates, and of what sample.

        Up to `PROFILE_EXACT_ROWS` rows the histograms are exact (a GROUP BY each) and the
        percentiles those of a reservoir sample of `PROFILE_SAMPLE` rows; above, both come from
        one sample of about `PROFILE_SAMPLE_ROWS` rows drawn at random from
        `PROFILE_SAMPLE_GROUPS` Parquet row groups spread over the parts (the histogram's
        counts scaled to the feature's non-null rows, its `sample_rows` stated), where exact
        bins would cost a pass of their own over every row.

        Row and null counts, the event-time range and the min/max of numeric, boolean and
        timestamp features come from the statistics in the parts' Parquet footers (no scan); the
        rest from one scan of the features computing every aggregate at once, the histograms
        (above), and, unless the footers tell them, the superseded rows from one scan of the keys
        and event times; these run at once (DuckDB's threads on each). `superseded_rows`, when
        the caller knows it (the commit log's figures: `OfflineStore.superseded_rows`), is taken
        as it is: no keys' scan either."""
        limits = _Sampling(
            PROFILE_SAMPLE, PROFILE_EXACT_ROWS, PROFILE_SAMPLE_ROWS, PROFILE_SAMPLE_GROUPS
        )
        return self._profile(view, parts, bins, quantiles, by_time, superseded_rows, limits)

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None


def _as_winners(stored: pa.Table, keys: list[str], feats: list[str], ingested_us: int) -> pa.Table:
    """`stored` in the columns `winners` returns: keys, the order as µs, then the features."""
    n = stored.num_rows
    return pa.table(
        {
            **{k: stored.column(k) for k in keys},
            "__event_us": stored.column(EVENT_TS).cast(pa.int64()),
            "__created_us": stored.column(CREATED_TS).cast(pa.int64()),
            "__ingested_us": pa.array(np.full(n, ingested_us, dtype=np.int64)),
            "__seq": stored.column(SEQ),
            **{f: stored.column(f) for f in feats},
        }
    )


PREVIEW_OVERSCAN = 4  # a preview of n rows first looks at the newest n * this rows


def _arrow_winners(
    stored: pa.Table, keys: list[str], feats: list[str], ingested_us: int, now_us: int | None
) -> pa.Table:
    """`batch_winners` by sorting in memory: the rows `winners_sql` selects, in another order."""
    base = _as_winners(stored, keys, feats, ingested_us)
    order = ["__event_us", "__created_us", "__seq"]  # the ingested time is the batch's own
    if now_us is None:
        return base.take(firsts(base, keys, order))
    ahead = pc.greater(base.column("__event_us"), now_us)
    arrived = base.filter(pc.invert(ahead))
    return pa.concat_tables([arrived.take(firsts(arrived, keys, order)), base.filter(ahead)])


def _slices(table: pa.Table, chunk_rows: int) -> Iterator[pa.Table]:
    for start in range(0, table.num_rows, chunk_rows):
        yield table.slice(start, chunk_rows)


# -- profile ---------------------------------------------------------------------------------------
PROFILE_SAMPLE = 8192  # rows of the reservoir sample that `profile`'s percentiles come from
PROFILE_EXACT_ROWS = 2_000_000  # up to this many rows `profile`'s histograms are exact; above:
PROFILE_SAMPLE_ROWS = 200_000  # histograms and percentiles of a sample of about this many rows
PROFILE_SAMPLE_GROUPS = 4  # drawn from this many Parquet row groups, spread over the parts
# (read at each `profile` call, so a test may set them here)
