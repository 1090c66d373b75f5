"""The DuckDB offline engine (embedded, the default): ASOF joins over Parquet parts."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featureline._sql import (
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
from featureline.offline._pit import (
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


class DuckDBEngine:
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
                cfg: dict[str, str | bool | int | float | list[str]] = {}
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
            return self._newest(spec, int(limit))
        return self._latest(spec, limit)

    def _latest(self, spec: JoinSpec, limit: int | None) -> pa.Table:
        keys = ", ".join(q(k) for k in spec.keys)
        feats = ", ".join(q(out) for _, out in spec.features)
        sql = f"SELECT {keys}, {EVENT_TS} AS event_timestamp, {feats} FROM ({feature_source_sql(spec)}) ORDER BY {EVENT_TS} DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        con = self.connection()
        try:
            return con.sql(sql).to_arrow_table()
        finally:
            con.close()

    def _newest(self, spec: JoinSpec, limit: int) -> pa.Table:
        """The newest `limit` tie winners without resolving ties over every row, nor reading
        more than the event times of every row: first the newest `n` visible rows' event times
        with their part and row position; the rows at the `n`-th newest event time are left
        out (its (keys, event time) groups may have rows beyond the `n`) unless those `n` are
        all the visible rows. A row whose event time no other candidate shares is its group's
        only visible row, so its winner; the others' keys and tie order are read by row
        position and their ties resolved. `n` grows while that leaves fewer than `limit`
        winners; then the winners' keys and features are read by row position (DuckDB reads
        only the row groups and pages that hold them)."""
        n = max(limit, 1) * PREVIEW_OVERSCAN
        union = "\n    UNION ALL ".join(
            f"SELECT epoch_us({EVENT_TS}) AS __t, {i} AS __part, file_row_number AS __row "
            f"FROM read_parquet({lit(p.path)}, file_row_number = true) WHERE {_visible(spec, p)}"
            for i, p in enumerate(spec.parts)
        )
        while True:
            con = self.connection()
            try:
                cand = con.sql(
                    f"SELECT * FROM (\n    {union}\n  ) ORDER BY __t DESC LIMIT {n}"
                ).to_arrow_table()
            finally:
                con.close()
            complete = cand.num_rows < n  # every visible row is among them
            if cand.num_rows == 0:
                return self._latest(spec, limit)
            if cand.column("__t").null_count:  # rows without an event time: the full answer
                return self._latest(spec, limit)
            # (few values; ChunkedArray.to_numpy imports pandas)
            t, part, row = (
                np.array(cand.column(c).to_pylist(), dtype=np.int64)
                for c in ("__t", "__part", "__row")
            )
            keep = np.ones(len(t), dtype=bool) if complete else t > t.min()
            t, part, row = t[keep], part[keep], row[keep]
            _, inverse, counts = np.unique(t, return_inverse=True, return_counts=True)
            shared = counts[inverse] > 1
            won = ~shared
            if shared.any():
                won[np.flatnonzero(shared)[self._tie_winners(spec, part[shared], row[shared])]] = (
                    True
                )
            order = np.argsort(-t[won], kind="stable")[:limit]
            if len(order) >= limit or complete:
                return self._fetch_rows(spec, part[won][order], row[won][order], t[won][order])
            n *= 4

    def _read_by_row(
        self,
        spec: JoinSpec,
        part: np.ndarray,
        row: np.ndarray,
        columns: Any,
        where: str = "",
        extra: dict[str, str] | None = None,
    ) -> pa.Table:
        """The rows at (`part` index, file row position) in the columns `columns(part)` (SQL
        terms) after `__part` and `__row`, in the given order, then `extra` (SQL terms over
        `__pos`, each row's 1-based position in that order); `where`: a clause over the union
        of those rows (`QUALIFY ...`) instead, which then come in no given order. (No Arrow
        table registered: DuckDB imports pandas for that.)"""
        by_part: dict[int, list[int]] = {}
        for i, r in zip(part.tolist(), row.tolist(), strict=True):
            by_part.setdefault(int(i), []).append(int(r))
        union = " UNION ALL ".join(
            f"SELECT {i} AS __part, file_row_number AS __row, {', '.join(columns(spec.parts[i]))} "
            f"FROM read_parquet({lit(spec.parts[i].path)}, file_row_number = true) "
            f"WHERE file_row_number IN ({', '.join(str(r) for r in sorted(rows))})"
            for i, rows in sorted(by_part.items())
        )
        sql = f"SELECT * FROM ({union}) {where}"
        if not where:  # in the given order (Table.take would import pandas)
            ids = ", ".join(str((int(i) << 32) + int(r)) for i, r in zip(part, row, strict=True))
            pos = f"list_position([{ids}], (__part::BIGINT << 32) + __row)"
            terms = ", ".join(f"{e} AS {q(name)}" for name, e in (extra or {}).items())
            sql = (
                f"SELECT *{', ' if terms else ''}{terms} FROM "
                f"(SELECT *, {pos} AS __pos FROM ({union})) ORDER BY __pos"
            )
        con = self.connection()
        try:
            return con.sql(sql).to_arrow_table()
        finally:
            con.close()

    def _tie_winners(self, spec: JoinSpec, part: np.ndarray, row: np.ndarray) -> np.ndarray:
        """Of the rows at (`part`, `row`), the positions of those that win their (keys, event
        time) group by the tie order (each group's rows all given)."""

        def columns(p: PartRef) -> list[str]:
            ing = INGESTED_AT if p.compacted else f"{p.ingested_at_us}::BIGINT AS {INGESTED_AT}"
            return [*(q(k) for k in spec.keys), EVENT_TS, CREATED_TS, ing, SEQ]

        keys = ", ".join(q(k) for k in spec.keys)
        won = self._read_by_row(
            spec,
            part,
            row,
            columns,
            f"QUALIFY row_number() OVER (PARTITION BY {keys}, {EVENT_TS} "
            f"ORDER BY {tie_order_sql('DESC')}) = 1",
        )
        at = {(int(i), int(r)): j for j, (i, r) in enumerate(zip(part, row, strict=True))}
        return np.array(
            [
                at[(i, r)]
                for i, r in zip(
                    won.column("__part").to_pylist(), won.column("__row").to_pylist(), strict=True
                )
            ],
            dtype=np.int64,
        )

    def _fetch_rows(
        self, spec: JoinSpec, part: np.ndarray, row: np.ndarray, t: np.ndarray
    ) -> pa.Table:
        """The rows at (`part`, `row`) with event times `t` (µs) as `_latest` returns them
        (keys, event time, features), in the given order."""
        if len(part) == 0:
            return self._latest(spec, 0)
        stored = list(dict.fromkeys(s for s, _ in spec.features))

        def columns(p: PartRef) -> list[str]:
            return [*(q(k) for k in spec.keys), *(column_or_null(p, s) for s in stored)]

        times = ", ".join(str(int(x)) for x in t)  # known: not read again
        when = {"event_timestamp": f"make_timestamptz([{times}][__pos]::BIGINT)"}
        got = self._read_by_row(spec, part, row, columns, extra=when)
        names = [*spec.keys, "event_timestamp"]
        return pa.table(
            [*(got.column(c) for c in names), *(got.column(s) for s, _ in spec.features)],
            names=[*names, *(out for _, out in spec.features)],
        )

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
        out: dict[str, Any] = {"rows": 0, "features": {}}
        if not parts:
            return out
        src = "read_parquet([" + ", ".join(lit(p.path) for p in parts) + "], union_by_name = true)"
        present = set().union(*(p.columns or [f.name for f in view.features] for p in parts))
        feats = [f for f in view.features if f.name in present]
        footer = {EVENT_TS, SHADOWED_UNTIL}
        footer |= {f.name for f in feats if f.dtype.name in _FOOTER_TYPES}
        columns = [EVENT_TS, SHADOWED_UNTIL, *(f.name for f in feats)]
        n, facts, per_commit = _footer_facts(parts, columns, footer)
        # each commit holds one unmarked row per (keys, event time), its ties marked when it was
        # written (ingest, compaction; the read path counts on it too): when no two commits'
        # event times overlap, the marked rows are all the superseded ones — no scan needed
        marks = facts[SHADOWED_UNTIL]
        superseded = n - marks.nulls if marks.known and _disjoint(per_commit) else None
        if superseded_rows is not None:
            superseded = int(superseded_rows)
        numeric = {f.name for f in feats if f.dtype.name in _NUMERIC}
        sampled = n > PROFILE_EXACT_ROWS and bool(numeric) and bool(bins or quantiles)
        con = self.connection()
        try:
            # a histogram's bins and the time buckets need the range before the scan
            _scan_facts(
                con, src, [*(numeric if bins else ()), *([EVENT_TS] if by_time else ())], facts
            )
            exprs: dict[str, str] = {}
            if not facts[EVENT_TS].known:
                exprs.update(tmin=f"min({EVENT_TS})", tmax=f"max({EVENT_TS})")
            edges: dict[str, tuple[float, float, float]] = {}
            groups: dict[str, str] = {}  # column: the bin of each row, counted by GROUP BY
            for i, f in enumerate(feats):
                c, s = q(f.name), facts[f.name]
                if not s.known:
                    exprs[f"c{i}"] = f"count({c})"
                    if not f.dtype.is_array and f.dtype.name != "Bytes":
                        exprs[f"lo{i}"], exprs[f"hi{i}"] = f"min({c})", f"max({c})"
                exprs[f"d{i}"] = f"approx_count_distinct({c})"
                if f.name not in numeric:
                    continue
                exprs[f"m{i}"] = f"avg({c})"
                if quantiles and not sampled:
                    qs = ", ".join(repr(float(x)) for x in quantiles)
                    exprs[f"p{i}"] = f"reservoir_quantile({c}, [{qs}], {PROFILE_SAMPLE})"
                if bins and s.known and _finite(s.lo, s.hi):
                    lo, hi = float(s.lo), float(s.hi)
                    edges[f.name] = (lo, hi, (hi - lo) / bins if hi > lo else 1.0)
                    if hi > lo and not sampled:  # else one bin, or the sample's
                        groups[f.name] = f"floor(({c}::DOUBLE - {lo!r}) / {edges[f.name][2]!r})"
            buckets = _time_buckets(facts[EVENT_TS]) if by_time else None
            if superseded is not None and buckets is not None:  # no keys' scan: buckets here
                groups[EVENT_TS] = f"(epoch_us({EVENT_TS}) - {buckets[1]}) // {buckets[2]}"
            r: dict[str, Any] = {}
            drawn: tuple[int, dict[str, Any], int, int] | None = None
            # alongside the scan of `exprs`: the keys' scan and its sort, and the histograms
            # (a GROUP BY each: DuckDB's histogram() aggregate, next to the others, would
            # materialize the rows — 30% more CPU and twice the memory at 10M rows)
            with ThreadPoolExecutor(3) as pool:
                pairs = None
                if superseded is None:
                    pairs = pool.submit(self._pairs_scan, src, view.join_keys, buckets, n)
                hists = pool.submit(self._group_counts, src, groups) if groups else None
                sample = pool.submit(_row_group_sample, parts, sorted(numeric)) if sampled else None
                if exprs:
                    cur = con.execute(
                        f"SELECT {', '.join(f'{e} AS {a}' for a, e in exprs.items())} FROM {src}"
                    )
                    r = dict(zip([d[0] for d in cur.description], cur.fetchall()[0], strict=True))
                counted = hists.result() if hists is not None else {}
                drawn = sample.result() if sample is not None else None
                per_bucket = {int(k): v for k, v in counted.get(EVENT_TS, {}).items()}
                if pairs is not None:
                    superseded, per_bucket = pairs.result()
        finally:
            con.close()
        ev = facts[EVENT_TS]
        out.update(
            rows=n,
            first_event=ev.lo if ev.known else r.get("tmin"),
            last_event=ev.hi if ev.known else r.get("tmax"),
            # rows that no longer win their (keys, event time): superseded by a correction or a tie
            superseded_rows=int(superseded or 0),
        )
        for i, f in enumerate(feats):
            s = facts[f.name]
            nonnull = n - s.nulls if s.known else int(r[f"c{i}"])
            stat: dict[str, Any] = {
                "dtype": str(f.dtype),
                "null_rate": (n - nonnull) / n if n else 0.0,
                "min": s.lo if s.known else r.get(f"lo{i}"),
                "max": s.hi if s.known else r.get(f"hi{i}"),
                "mean": r.get(f"m{i}"),
                "distinct": min(int(r[f"d{i}"]), nonnull),  # HyperLogLog estimate, capped
            }
            values: Any = None
            if drawn is not None and f.name in numeric:
                values = drawn[1].get(f.name)
            if f.name in numeric and quantiles:
                if drawn is not None:
                    got = _sample_quantiles(values, quantiles, f.dtype.name == "Int64")
                else:
                    got = r.get(f"p{i}") or []
                stat["percentiles"] = {
                    f"p{round(x * 100)}": v for x, v in zip(quantiles, got, strict=False)
                }
            if f.name in edges:
                lo, hi, width = edges[f.name]
                if hi <= lo:
                    counts = [nonnull]
                elif drawn is not None:
                    counts = _sample_bins(values, lo, width, bins, nonnull)
                else:
                    counts = _bin_counts(counted.get(f.name), bins)
                stat["histogram"] = {"lo": lo, "hi": hi, "width": width, "counts": counts}
                if drawn is not None and hi > lo:
                    stat["histogram"]["sample_rows"] = drawn[0]
            out["features"][f.name] = stat
        if buckets is not None:
            out["rows_by_time"] = _rows_by_time(buckets, per_bucket)
        elif by_time:
            out["rows_by_time"] = {"unit": "day", "buckets": []}
        if bins or quantiles or by_time:
            approx = {
                "distinct": "HyperLogLog estimate (DuckDB approx_count_distinct), within a few %"
            }
            if drawn is not None:
                k, groups_read, groups_all = drawn[0], drawn[2], drawn[3]
                of = (
                    f"a sample of {k:,} of the {n:,} rows, drawn at random from {groups_read} of "
                    f"the {groups_all} Parquet row groups"
                )
                if bins:
                    approx["histogram"] = f"bin counts of {of}, scaled to each feature's rows"
                if quantiles:
                    approx["percentiles"] = f"of {of}"
            elif quantiles:
                approx["percentiles"] = (
                    f"of a reservoir sample of {PROFILE_SAMPLE:,} rows per feature"
                )
            out["approximate"] = approx
        return out

    def _pairs_scan(
        self, src: str, keys: list[str], buckets: tuple[str, int, int] | None, rows: int
    ) -> tuple[int, dict[int, int]]:
        con = self.connection()
        try:
            return _pairs_scan(con, src, keys, buckets, rows)
        finally:
            con.close()

    def _group_counts(self, src: str, groups: dict[str, str]) -> dict[str, dict[Any, int]]:
        """{column: {bin: rows}} for each (column, bin expression) of `groups`, in one query."""
        names = list(groups)
        sql = " UNION ALL ".join(
            f"SELECT {i} AS i, {e} AS b, count(*) AS n FROM {src} GROUP BY b"
            for i, e in enumerate(groups.values())
        )
        con = self.connection()
        try:
            rows = con.execute(sql).fetchall()
        finally:
            con.close()
        out: dict[str, dict[Any, int]] = {name: {} for name in names}
        for i, b, count in rows:
            if b is not None:
                out[names[i]][b] = int(count)
        return out

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
_NUMERIC = ("Int64", "Float64")  # features with a mean, percentiles and a histogram
_FOOTER_TYPES = ("Int64", "Float64", "Bool", "Timestamp")  # exact min/max in Parquet statistics
_HOUR_US, _DAY_US = 3_600_000_000, 86_400_000_000
_PAIRS_BATCH = 1 << 20  # rows per Arrow batch of the keys' scan


@dataclass
class _Facts:
    """One column over all parts: its null count and min/max (`known`: for every row group)."""

    known: bool
    nulls: int = 0
    lo: Any = None
    hi: Any = None


def _footer_facts(
    parts: list[PartRef], columns: list[str], footer: set[str]
) -> tuple[int, dict[str, _Facts], dict[int, _Facts]]:
    """The row count of `parts`; for the `columns` in `footer`, the null counts and min/max the
    Parquet footers record per row group (written with every part: ingest and compaction), a
    column not `known` when one of its row groups lacks them; and the event-time range of each
    commit."""
    import pyarrow.parquet as pq

    rows = 0
    facts = {c: _Facts(known=c in footer) for c in columns}
    per_commit: dict[int, _Facts] = {}
    for p in parts:
        md = pq.read_metadata(p.path)
        rows += md.num_rows
        if md.num_row_groups == 0:
            continue
        first = md.row_group(0)
        index = {first.column(j).path_in_schema: j for j in range(md.num_columns)}
        ev = per_commit.setdefault(p.commit, _Facts(known=True))
        for c, s in [*facts.items(), (EVENT_TS, ev)]:
            if not s.known:
                continue
            j = index.get(c)
            if j is None:  # a part written before the column was added: nulls there
                s.nulls += md.num_rows
                continue
            for g in range(md.num_row_groups):
                st = md.row_group(g).column(j).statistics
                if st is None or not st.has_null_count:
                    s.known = False
                    break
                s.nulls += st.null_count
                if st.num_values == 0:  # only nulls: no min/max to take
                    continue
                lo, hi = _footer_range(st)
                if lo is None:
                    s.known = False
                    break
                s.lo = lo if s.lo is None else min(s.lo, lo)
                s.hi = hi if s.hi is None else max(s.hi, hi)
    return rows, facts, per_commit


def _disjoint(ranges: dict[int, _Facts]) -> bool:
    """No two of these event-time ranges share an instant (all known)."""
    if not all(r.known and r.lo is not None for r in ranges.values()):
        return False
    spans = sorted((r.lo, r.hi) for r in ranges.values())
    return all(a[1] < b[0] for a, b in pairwise(spans))


def _footer_range(st: Any) -> tuple[Any, Any]:
    """A row group's (min, max) from its statistics' physical values — pyarrow's own conversion
    of a timestamp imports pandas —, or (None, None) when it has none we can read."""
    if not st.has_min_max or st.physical_type not in ("INT64", "DOUBLE", "BOOLEAN"):
        return None, None
    logical = st.logical_type.type
    if logical == "TIMESTAMP":
        if '"timeUnit":"microseconds"' not in st.logical_type.to_json():
            return None, None
        from featureline._time import from_us

        return from_us(st.min_raw), from_us(st.max_raw)
    if logical == "INT" and '"isSigned":true' not in st.logical_type.to_json():
        return None, None  # an unsigned integer's raw value is not its value
    if logical not in ("NONE", "INT"):  # INT: DuckDB's writer (compaction) names BIGINT so
        return None, None
    return st.min_raw, st.max_raw


def _scan_facts(con: Any, src: str, columns: list[str], facts: dict[str, _Facts]) -> None:
    """Count and min/max, by a scan, of the `columns` whose footers did not tell them."""
    todo = [c for c in dict.fromkeys(columns) if not facts[c].known]
    if not todo:
        return
    exprs = [f"count({q(c)}), min({q(c)}), max({q(c)})" for c in todo]
    (rows, *row) = con.execute(f"SELECT count(*), {', '.join(exprs)} FROM {src}").fetchall()[0]
    for i, c in enumerate(todo):
        nonnull, lo, hi = row[3 * i : 3 * i + 3]
        facts[c] = _Facts(True, int(rows) - int(nonnull), lo, hi)


def _numpy(array: Any) -> Any:
    """A primitive Arrow array (or chunked array) as NumPy, its nulls 0 — over its buffer:
    pyarrow's `to_numpy` imports pandas, a third of a second on a server's first request."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if array.null_count:
        array = pc.fill_null(array, 0)
    if pa.types.is_boolean(array.type):
        bits = np.frombuffer(array.buffers()[1], np.uint8)
        return np.unpackbits(bits, bitorder="little")[
            array.offset : array.offset + len(array)
        ].astype(bool)
    dtype = np.dtype(array.type.to_pandas_dtype())
    return np.frombuffer(array.buffers()[1], dtype, len(array), array.offset * dtype.itemsize)


def _row_group_sample(
    parts: list[PartRef], columns: list[str]
) -> tuple[int, dict[str, Any], int, int]:
    """A sample of about `PROFILE_SAMPLE_ROWS` rows of `columns`: rows drawn at random (a fixed
    seed: the same parts give the same sample) from `PROFILE_SAMPLE_GROUPS` row groups evenly
    spread over all the parts' row groups (in commit order), only those row groups read. Returns
    (rows sampled, {column: its non-null sampled values as NumPy}, row groups read, row groups)."""
    import pyarrow.parquet as pq

    groups: list[tuple[str, int, int]] = []  # (path, row group, rows)
    for p in parts:
        md = pq.read_metadata(p.path)
        groups += [(p.path, g, md.row_group(g).num_rows) for g in range(md.num_row_groups)]
    groups = [g for g in groups if g[2] > 0]
    count = min(PROFILE_SAMPLE_GROUPS, len(groups))
    chosen = [groups[(2 * i + 1) * len(groups) // (2 * count)] for i in range(count)]
    per = max(PROFILE_SAMPLE_ROWS // max(count, 1), 1)
    rng = np.random.default_rng(0x5EED)
    found: dict[str, list[Any]] = {c: [] for c in columns}
    rows = 0
    for path, g, num in chosen:
        f = pq.ParquetFile(path)
        present = [c for c in columns if c in f.schema_arrow.names]
        table = f.read_row_group(g, columns=present)
        # the rows picked by NumPy indexing: no NumPy array handed to pyarrow (whose conversion
        # imports pandas — a third of a second on a first request)
        pick = np.sort(rng.choice(num, per, replace=False)) if num > per else slice(None)
        rows += min(num, per)
        for c in present:
            col = table.column(c)
            x = _numpy(col)[pick]
            found[c].append(x[_numpy(pc.is_valid(col))[pick]] if col.null_count else x)
    values = {c: np.concatenate(v) if v else np.zeros(0) for c, v in found.items()}
    return rows, values, count, len(groups)


def _sample_quantiles(values: Any, quantiles: Sequence[float], integer: bool) -> list[Any]:
    """The `quantiles` of a sample's values (NaN left out): values of the sample (the smallest
    with at least that share of the sample at or below it); [] for no values."""
    if values is None:
        return []
    x = values[~np.isnan(values)] if values.dtype.kind == "f" else values
    if not x.size:
        return []
    got = np.quantile(x, list(quantiles), method="inverted_cdf")
    return [int(v) for v in got] if integer else [float(v) for v in got]


def _sample_bins(values: Any, lo: float, width: float, bins: int, nonnull: int) -> list[int]:
    """A histogram of a sample's values — the bins `_bin_counts` counts — scaled to the
    feature's `nonnull` rows (NaN in no bin)."""
    if values is None or not values.size:
        return [0] * bins
    x = values.astype(np.float64, copy=False)
    b = np.floor((x[~np.isnan(x)] - lo) / width)
    b = np.clip(b[np.isfinite(b)], 0, bins - 1).astype(np.int64)
    scale = nonnull / values.size
    return [round(int(c) * scale) for c in np.bincount(b, minlength=bins)]


def _finite(*values: Any) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


def _bin_counts(found: dict[float, int] | None, bins: int) -> list[int]:
    """{floor((x - lo) / width): rows} as `bins` counts: x = max lands in the last bin, NaN in
    none."""
    counts = [0] * bins
    for b, n in (found or {}).items():
        if b is not None and math.isfinite(b):
            counts[min(max(int(b), 0), bins - 1)] += int(n)
    return counts


def _time_buckets(ev: _Facts) -> tuple[str, int, int] | None:
    """(unit, origin µs, step µs) of rows by event time: hours up to 10 days, days up to 400 (and
    for months, rolled up from days); None without a time range."""
    from featureline._time import to_us

    if not ev.known or not isinstance(ev.lo, datetime) or not isinstance(ev.hi, datetime):
        return None
    days = (ev.hi - ev.lo).total_seconds() / 86400
    unit = "hour" if days <= 10 else "day" if days <= 400 else "month"
    step = _HOUR_US if unit == "hour" else _DAY_US
    return unit, to_us(ev.lo) // step * step, step  # from the origin on, // floors


def _rows_by_time(buckets: tuple[str, int, int], counts: dict[int, int]) -> dict[str, Any]:
    from featureline._time import from_us

    unit, origin, step = buckets
    rows: dict[datetime, int] = {}
    for k, n in sorted(counts.items()):
        start = from_us(origin + k * step)
        if unit == "month":
            start = start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        rows[start] = rows.get(start, 0) + n
    return {"unit": unit, "buckets": [{"start": t, "rows": n} for t, n in rows.items()]}


def _pairs_scan(
    con: Any, src: str, keys: list[str], buckets: tuple[str, int, int] | None, rows: int
) -> tuple[int, dict[int, int]]:
    """One scan of the keys and event times: the superseded rows, and with `buckets` the rows
    per time bucket ({bucket number: rows}).

    Superseded rows are those that are not the only row of their (keys, event time), exactly:
    rows - distinct pairs. NumPy sorts a 64-bit hash of every row's pair (10M in a fraction of a
    second, where DuckDB's count(DISTINCT) of the pairs takes seconds) to find the repeated
    hashes; only the rows of those are then counted pair by pair, so a hash collision costs time,
    never a wrong count."""
    pair = ", ".join([*(q(k) for k in keys), EVENT_TS])
    cols = [f"hash({pair}) AS h"]
    if buckets is not None:  # from the origin on: // floors
        cols.append(f"((epoch_us({EVENT_TS}) - {buckets[1]}) // {buckets[2]})::INTEGER AS b")
    h = np.empty(rows, np.uint64)  # filled batch by batch: no second copy of the result
    per_bucket = np.zeros(0, np.int64)
    at = 0
    for batch in con.sql(f"SELECT {', '.join(cols)} FROM {src}").to_arrow_reader(_PAIRS_BATCH):
        k = batch.num_rows
        if at + k > h.size:  # more rows than `rows` (a caller's estimate): grow
            h = np.concatenate([h[:at], np.empty(max(k, 2 * h.size - at), np.uint64)])
        h[at : at + k] = _numpy(batch.column(0))
        if buckets is not None:
            found = np.bincount(_numpy(batch.column(1)))
            if found.size > per_bucket.size:
                per_bucket = np.concatenate(
                    [per_bucket, np.zeros(found.size - per_bucket.size, np.int64)]
                )
            per_bucket[: found.size] += found
        at += k
    h = h[:at]
    h.sort()
    repeated = h[1:][h[1:] == h[:-1]]
    del h
    counts = {int(k): int(per_bucket[k]) for k in np.flatnonzero(per_bucket)}
    if not repeated.size:
        return 0, counts
    unique = np.unique(repeated)  # as an Arrow buffer: pa.array(NumPy) would import pandas
    con.register(
        "__repeated",
        pa.table(
            {"h": pa.Array.from_buffers(pa.uint64(), len(unique), [None, pa.py_buffer(unique)])}
        ),
    )
    try:
        row = con.execute(
            f"SELECT count(*) - count(DISTINCT ({pair})) FROM {src} "
            f"WHERE hash({pair}) IN (SELECT h FROM __repeated)"
        ).fetchall()[0]
    finally:
        con.unregister("__repeated")
    return int(row[0]), counts
