"""The DuckDB offline engine (embedded, the default): ASOF joins over Parquet parts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from featureline._sql import CREATED_TS, EVENT_TS, INGESTED_AT, SEQ, lit, q
from featureline.definitions import FeatureView
from featureline.offline._pit import (
    JoinSpec,
    PartRef,
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

    def profile(self, view: FeatureView, parts: list[PartRef]) -> dict[str, Any]:
        out: dict[str, Any] = {"rows": 0, "features": {}}
        if not parts:
            return out
        files = "[" + ", ".join(lit(p.path) for p in parts) + "]"
        present = set().union(*(p.columns or [f.name for f in view.features] for p in parts))
        stat_features = [f for f in view.features if f.name in present]
        keys = ", ".join(q(k) for k in view.join_keys)
        exprs = [
            "count(*) AS n",
            f"min({EVENT_TS}) AS tmin",
            f"max({EVENT_TS}) AS tmax",
            f"count(DISTINCT ({keys}, {EVENT_TS})) AS uniq",
        ]
        for i, f in enumerate(stat_features):
            c = q(f.name)
            exprs.append(f"count({c}) AS c{i}")
            exprs.append(f"approx_count_distinct({c}) AS d{i}")
            if not f.dtype.is_array and f.dtype.name != "Bytes":
                exprs += [f"min({c}) AS lo{i}", f"max({c}) AS hi{i}"]
            if f.dtype.name in ("Int64", "Float64"):
                exprs.append(f"avg({c}) AS m{i}")
        con = self.connection()
        try:
            cur = con.execute(
                f"SELECT {', '.join(exprs)} FROM read_parquet({files}, union_by_name = true)"
            )
            row = cur.fetchone()
            names = [d[0] for d in cur.description]
        finally:
            con.close()
        r = dict(zip(names, row or (), strict=True))
        n = int(r["n"])
        # rows that no longer win their (keys, event time): superseded by a correction or a tie
        out.update(
            rows=n, first_event=r["tmin"], last_event=r["tmax"], superseded_rows=n - int(r["uniq"])
        )
        for i, f in enumerate(stat_features):
            nonnull = int(r[f"c{i}"])
            out["features"][f.name] = {
                "dtype": str(f.dtype),
                "null_rate": (n - nonnull) / n if n else 0.0,
                "min": r.get(f"lo{i}"),
                "max": r.get(f"hi{i}"),
                "mean": r.get(f"m{i}"),
                "distinct": min(int(r[f"d{i}"]), nonnull),  # HyperLogLog estimate, capped
            }
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


def _slices(table: pa.Table, chunk_rows: int) -> Iterator[pa.Table]:
    for start in range(0, table.num_rows, chunk_rows):
        yield table.slice(start, chunk_rows)
