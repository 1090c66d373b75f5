"""The DuckDB engine's statistics of a view (`DuckDBEngine.profile`): per-feature figures from
one scan, histograms, percentiles, rows by event time and the superseded rows, exact or from a
sample of Parquet row groups (the sampling limits are the engine module's `PROFILE_*`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, ThreadPoolExecutor
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featureline._sql import EVENT_TS, INGESTED_AT, SHADOWED_UNTIL, lit, q
from featureline.definitions import FeatureView
from featureline.offline import profile_merge as pm
from featureline.offline._pit import PartRef
from featureline.offline.engines._duckdb_facts import (
    _disjoint,
    _Facts,
    _footer_facts,
    _scan_facts,
)

_NUMERIC = ("Int64", "Float64")  # features with a mean, percentiles and a histogram
_FOOTER_TYPES = ("Int64", "Float64", "Bool", "Timestamp")  # exact min/max in Parquet statistics
_HOUR_US, _DAY_US = 3_600_000_000, 86_400_000_000
_PAIRS_BATCH = 1 << 20  # rows per Arrow batch of the keys' scan


class _Sampling(NamedTuple):
    """The sampling limits of `profile` (the engine module's `PROFILE_*`, read at each call)."""

    reservoir: int  # PROFILE_SAMPLE
    exact_rows: int  # PROFILE_EXACT_ROWS
    sample_rows: int  # PROFILE_SAMPLE_ROWS
    sample_groups: int  # PROFILE_SAMPLE_GROUPS


class _Profile:
    """The statistics methods of `DuckDBEngine` (a mixin: it uses the engine's `connection`)."""

    connection: Callable[[], Any]

    def _profile(
        self,
        view: FeatureView,
        parts: list[PartRef],
        bins: int,
        quantiles: Sequence[float],
        by_time: bool,
        superseded_rows: int | None,
        limits: _Sampling,
    ) -> dict[str, Any]:
        """`DuckDBEngine.profile`, with its sampling `limits` given."""
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
        sampled = n > limits.exact_rows and bool(numeric) and bool(bins or quantiles)
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
                    exprs[f"p{i}"] = f"reservoir_quantile({c}, [{qs}], {limits.reservoir})"
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
                sample = (
                    pool.submit(
                        _row_group_sample,
                        parts,
                        sorted(numeric),
                        limits.sample_rows,
                        limits.sample_groups,
                    )
                    if sampled
                    else None
                )
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
                    f"of a reservoir sample of {limits.reservoir:,} rows per feature"
                )
            out["approximate"] = approx
        return out

    def profile_state(
        self,
        view: FeatureView,
        parts: list[PartRef],
        bins: int,
        edges: dict[str, tuple[float, float, float]] | None = None,
        newer_than_us: int | None = None,
        stop: Any = None,
    ) -> pm.ProfileState:
        """The mergeable statistics of the rows of `parts` (`profile_merge.ProfileState`), from
        five scans of them: counts, min/max and sums; rows per hour of event time; the HLL
        registers of every feature; the `bins`-bin histograms of the numeric features (in
        `edges` where given, so that they add to a state's; else over their own range); and the
        KLL sketches of the numeric features (read in batches: no column held whole). With
        `newer_than_us` (compacted parts only), only the rows ingested after it. With `stop`
        (a `threading.Event`), it raises `CancelledError` before its next scan (and its next
        batch of the sketches' read) once `stop` is set: a server shutting down."""
        import datasketches as ds

        def check() -> None:
            if stop is not None and stop.is_set():
                raise CancelledError("the statistics state's build was stopped")

        if not parts:
            return pm.ProfileState(0)
        src = "read_parquet([" + ", ".join(lit(p.path) for p in parts) + "], union_by_name = true)"
        where = "TRUE" if newer_than_us is None else f"{INGESTED_AT} > {int(newer_than_us)}"
        present = set().union(*(p.columns or [f.name for f in view.features] for p in parts))
        feats = [f for f in view.features if f.name in present]
        numeric = [f for f in feats if f.dtype.name in _NUMERIC]
        col = {f.name: _typed(f.name, f.dtype.name) for f in feats}
        exprs = ["count(*)", f"epoch_us(min({EVENT_TS}))", f"epoch_us(max({EVENT_TS}))"]
        for f in feats:
            c = col[f.name]
            exprs.append(f"count({c})")
            ordered = not f.dtype.is_array and f.dtype.name != "Bytes"
            exprs += [f"min({c})", f"max({c})"] if ordered else ["NULL", "NULL"]
            exprs.append(
                "NULL"
                if f.dtype.name not in _NUMERIC
                else f"sum({c})"
                if f.dtype.name == "Int64"
                else f"fsum({c})"
            )
        check()
        con = self.connection()
        try:
            top = con.execute(f"SELECT {', '.join(exprs)} FROM {src} WHERE {where}").fetchall()[0]
            rows = int(top[0])
            if not rows:
                return pm.ProfileState(0)
            check()
            hours = {
                int(h): int(n)
                for h, n in con.execute(
                    f"SELECT epoch_us({EVENT_TS}) // {_HOUR_US} * {_HOUR_US} AS h, count(*) "
                    f"FROM {src} WHERE {where} GROUP BY h"
                ).fetchall()
            }
            check()
            hlls = self._hll(con, src, where, [col[f.name] for f in feats], rows)
            stats = {f.name: top[3 + 4 * i : 7 + 4 * i] for i, f in enumerate(feats)}
            own = {f.name: pm.bin_edges(stats[f.name][1], stats[f.name][2], bins) for f in numeric}
            at = {n: e for n, e in {**own, **(edges or {})}.items() if e is not None and bins}
            at = {n: e for n, e in at.items() if n in own}
            nonnull = {n: int(stats[n][0]) for n in at}
            check()
            counted = self._bins(con, src, where, col, at, bins, nonnull)
            sketches = {f.name: ds.kll_doubles_sketch(pm.KLL_K) for f in numeric}
            if numeric:
                sel = ", ".join(f"{col[f.name]}::DOUBLE AS {q(f.name)}" for f in numeric)
                reader = con.sql(f"SELECT {sel} FROM {src} WHERE {where}")
                for batch in reader.to_arrow_reader(_PAIRS_BATCH):
                    check()
                    for j, f in enumerate(numeric):
                        a = batch.column(j)
                        x = _numpy(a.drop_null() if a.null_count else a)
                        x = x[~np.isnan(x)]
                        if x.size:
                            sketches[f.name].update(np.ascontiguousarray(x, np.float64))
        finally:
            con.close()
        out: dict[str, pm.FeatureState] = {}
        for i, f in enumerate(feats):
            count, lo, hi, total = stats[f.name]
            kll = sketches.get(f.name)
            out[f.name] = pm.FeatureState(
                str(f.dtype),
                int(count),
                lo,
                hi,
                None if total is None else int(total) if f.dtype.name == "Int64" else total,
                hlls[i],
                None if kll is None else bytes(kll.serialize()),
                at.get(f.name),
                None if f.name not in counted else tuple(counted[f.name]),
            )
        return pm.ProfileState(rows, top[1], top[2], hours, out)

    @staticmethod
    def _hll(con: Any, src: str, where: str, columns: list[str], rows: int) -> list[bytes]:
        """The serialized DataSketches HLL sketch of each of `columns`: its exact coupons when at
        most `SET_MAX`, else its registers. Up to `COUPON_ROWS` rows one GROUP BY of the
        coupons of every column (registers derived from them); above, one of the registers
        (4,096 groups a column), then one of the coupons of each column with few registers."""
        if not columns:
            return []
        exprs = [pm.hll_sql(c) for c in columns]
        regs = [np.zeros(1 << pm.HLL_LG_K, np.uint8) for _ in columns]
        coupons: list[list[tuple[int, int]] | None] = [None] * len(columns)
        few = list(range(len(columns)))
        if rows > pm.COUPON_ROWS:
            sql = " UNION ALL ".join(
                f"SELECT {i} AS i, {slot} AS s, max({rank}) FROM {src} "
                f"WHERE {where} AND {c} IS NOT NULL GROUP BY s"
                for i, (c, (slot, _, rank)) in enumerate(zip(columns, exprs, strict=True))
            )
            for i, slot, v in con.execute(sql).fetchall():
                regs[i][slot] = v
            few = [i for i, r in enumerate(regs) if 0 < np.count_nonzero(r) <= pm.SET_MAX]
        if few:
            sql = " UNION ALL ".join(
                f"(SELECT {i} AS i, {exprs[i][1]} AS a, max({exprs[i][2]}) FROM {src} WHERE "
                f"{where} AND {columns[i]} IS NOT NULL GROUP BY a"
                + ("" if rows <= pm.COUPON_ROWS else f" LIMIT {pm.SET_MAX + 1}")
                + ")"
                for i in few
            )
            found: dict[int, list[tuple[int, int]]] = {i: [] for i in few}
            for i, a, v in con.execute(sql).fetchall():
                found[i].append((int(a), int(v)))
            for i, got in found.items():
                if rows <= pm.COUPON_ROWS:  # the registers: each coupon's, the greatest value
                    slot = np.array([a for a, _ in got], np.int64) & ((1 << pm.HLL_LG_K) - 1)
                    np.maximum.at(regs[i], slot, np.array([v for _, v in got], np.uint8))
                coupons[i] = got
        return [
            pm.hll_set_image([a | (v << 26) for a, v in c])
            if c is not None and len(c) <= pm.SET_MAX
            else pm.hll_image(r)
            for r, c in zip(regs, coupons, strict=True)
        ]

    def new_pairs(
        self,
        view: FeatureView,
        old: list[tuple[list[PartRef], str]],
        new: list[tuple[list[PartRef], str]],
    ) -> tuple[int, int]:
        """(rows, distinct (keys, event time) pairs no old row holds) of the new rows: the rows
        of each (parts, SQL condition) of `new`, the old ones those of `old` (probed only over
        the new rows' event times) — so that the superseded rows grow by rows - pairs."""
        pair = ", ".join([*(q(k) for k in view.join_keys), EVENT_TS])

        def rows_of(groups: list[tuple[list[PartRef], str]], extra: str) -> str:
            return " UNION ALL ".join(
                f"SELECT {pair} FROM read_parquet([{', '.join(lit(p.path) for p in refs)}], "
                f"union_by_name = true) WHERE {cond}{extra}"
                for refs, cond in groups
                if refs
            )

        fresh = rows_of(new, "")
        if not fresh:
            return 0, 0
        con = self.connection()
        try:
            n, lo, hi = con.execute(
                f"SELECT count(*), epoch_us(min({EVENT_TS})), epoch_us(max({EVENT_TS})) "
                f"FROM ({fresh})"
            ).fetchall()[0]
            if not n:
                return 0, 0
            within = (
                f" AND {EVENT_TS} BETWEEN make_timestamptz({int(lo)}::BIGINT) AND "
                f"make_timestamptz({int(hi)}::BIGINT)"
            )
            stored = rows_of(old, within)
            probe = f"ANTI JOIN ({stored}) USING ({pair})" if stored else ""
            (found,) = con.execute(
                f"SELECT count(*) FROM (SELECT DISTINCT {pair} FROM ({fresh})) {probe}"
            ).fetchall()[0]
            return int(n), int(found)
        finally:
            con.close()

    def profile_bins(
        self, view: FeatureView, parts: list[PartRef], edges: dict[str, tuple[float, float, float]]
    ) -> dict[str, list[int]]:
        """The histograms of numeric features over every row of `parts`, in the bins `edges`
        ({feature: (lo, hi, width)}; `len` bins: one when hi = lo) — a state's, recounted when
        new rows fell outside its bins."""
        if not parts or not edges:
            return {}
        src = "read_parquet([" + ", ".join(lit(p.path) for p in parts) + "], union_by_name = true)"
        types = {f.name: f.dtype.name for f in view.features}
        col = {n: _typed(n, types[n]) for n in edges}
        con = self.connection()
        try:
            nonnull = dict(
                zip(
                    edges,
                    con.execute(
                        f"SELECT {', '.join(f'count({col[n]})' for n in edges)} FROM {src}"
                    ).fetchall()[0],
                    strict=True,
                )
            )
            bins = {n: round((e[1] - e[0]) / e[2]) if e[1] > e[0] else 1 for n, e in edges.items()}
            out: dict[str, list[int]] = {}
            for n, e in edges.items():
                out |= self._bins(con, src, "TRUE", col, {n: e}, bins[n], nonnull)
            return out
        finally:
            con.close()

    @staticmethod
    def _bins(
        con: Any,
        src: str,
        where: str,
        col: dict[str, str],
        edges: dict[str, tuple[float, float, float]],
        bins: int,
        nonnull: dict[str, int],
    ) -> dict[str, list[int]]:
        """{feature: `bins` counts in its `edges`} (a single bin of all its values when hi = lo)."""
        out = {n: [int(nonnull[n])] for n, e in edges.items() if e[1] <= e[0]}
        spread = [(n, e) for n, e in edges.items() if e[1] > e[0]]
        if not spread:
            return out
        sql = " UNION ALL ".join(
            f"SELECT {i} AS i, floor(({col[n]}::DOUBLE - {e[0]!r}) / {e[2]!r}) AS b, count(*) "
            f"FROM {src} WHERE {where} AND {col[n]} IS NOT NULL GROUP BY b"
            for i, (n, e) in enumerate(spread)
        )
        found: list[dict[float, int]] = [{} for _ in spread]
        for i, b, count in con.execute(sql).fetchall():
            found[i][b] = int(count)
        for (n, _), got in zip(spread, found, strict=True):
            out[n] = _bin_counts(got, bins)
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


def _typed(name: str, dtype: str) -> str:
    """The column as the view's type (parts written with another physical type hash alike)."""
    cast = {"Int64": "::BIGINT", "Float64": "::DOUBLE"}.get(dtype, "")
    return f"{q(name)}{cast}"


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
    parts: list[PartRef], columns: list[str], sample_rows: int, sample_groups: int
) -> tuple[int, dict[str, Any], int, int]:
    """A sample of about `sample_rows` rows of `columns`: rows drawn at random (a fixed
    seed: the same parts give the same sample) from `sample_groups` row groups evenly
    spread over all the parts' row groups (in commit order), only those row groups read. Returns
    (rows sampled, {column: its non-null sampled values as NumPy}, row groups read, row groups)."""
    import pyarrow.parquet as pq

    groups: list[tuple[str, int, int]] = []  # (path, row group, rows)
    for p in parts:
        md = pq.read_metadata(p.path)
        groups += [(p.path, g, md.row_group(g).num_rows) for g in range(md.num_row_groups)]
    groups = [g for g in groups if g[2] > 0]
    count = min(sample_groups, len(groups))
    chosen = [groups[(2 * i + 1) * len(groups) // (2 * count)] for i in range(count)]
    per = max(sample_rows // max(count, 1), 1)
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
