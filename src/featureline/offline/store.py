"""The bitemporal offline store: Parquet parts + commit log per view version, queried with DuckDB."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from featureline.definitions import FeatureView
from featureline.offline._ingest import batch_stats, prepare_batch
from featureline.offline._log import Commit, Part, ViewLog, write_atomically
from featureline.offline._pit import (
    CREATED_TS,
    EVENT_TS,
    INGESTED_AT,
    SEQ,
    SHADOWED_UNTIL,
    JoinSpec,
    PartRef,
    column_or_null,
    feature_source_sql,
    lit,
    pit_join_sql,
    q,
)


@dataclass(frozen=True)
class IngestResult:
    view: str
    version: int
    rows: int
    commit: int
    ingested_at: datetime
    shadowed_in_batch: int

    def __str__(self) -> str:
        return f"{self.rows:,} rows into {self.view} v{self.version} (commit {self.commit}, ingested at {self.ingested_at.isoformat()})"


def us_to_dt(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, tz=UTC).replace(microsecond=us % 1_000_000)


def dt_to_us(dt: datetime) -> int:
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _columns(c: Commit) -> tuple[str, ...] | None:
    cols = c.meta.get("columns")
    return tuple(cols) if cols is not None else None


COMPACT_AFTER = 8  # small commits of a view version that trigger a merge of those commits
COMPACT_ROWS = 1_000_000  # a commit up to this size counts as small
_WRITERS = max(1, min(4, os.cpu_count() or 1))
_ROWS_PER_WRITER = 1_000_000


class OfflineStore:
    """Offline store rooted at a folder: `<root>/<view>/v<version>/{_log.jsonl, parts/}`."""

    def __init__(self, root: Path, threads: int | None = None) -> None:
        self.root = Path(root)
        self._threads = threads
        self._con: Any = None
        self._lock = threading.Lock()
        self._logs: dict[tuple[str, int], ViewLog] = {}

    # -- storage -----------------------------------------------------------------------------
    def log(self, view: str, version: int) -> ViewLog:
        key = (view, version)
        if key not in self._logs:
            self._logs[key] = ViewLog(self.root / view / f"v{version}")
        return self._logs[key]

    def key_types(self, view: str, version: int) -> dict[str, str]:
        commits = self.log(view, version).commits()
        return dict(commits[0].meta.get("key_types", {})) if commits else {}

    def ingest(self, view: FeatureView, table: pa.Table, before_commit: Any = None) -> IngestResult:
        """Append one batch atomically; returns when it is visible to readers."""
        import pyarrow.parquet as pq

        log = self.log(view.name, view.version)
        stored, key_types = prepare_batch(view, table, self.key_types(view.name, view.version))
        stats = batch_stats(stored, view)

        dict_cols = [f.name for f in stored.schema if pa.types.is_large_string(f.type) or pa.types.is_string(f.type)]
        n_parts = max(1, min(_WRITERS, stored.num_rows // _ROWS_PER_WRITER))
        size = -(-stored.num_rows // n_parts)

        def write_one(i: int) -> Part:
            rel, path = log.new_part_path()
            chunk = stored.slice(i * size, size)
            write_atomically(
                path,
                lambda tmp: pq.write_table(chunk, tmp, compression="lz4", row_group_size=1 << 20, use_dictionary=dict_cols),
            )
            return Part(rel, chunk.num_rows)

        def write_parts() -> list[Part]:
            if n_parts == 1:
                return [write_one(0)]
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(n_parts) as ex:  # pyarrow releases the GIL while encoding
                return list(ex.map(write_one, range(n_parts)))

        meta = {"key_types": key_types, "columns": [f.name for f in view.features], **stats}
        c = log.commit(write_parts, meta=meta, before_append=before_commit)
        small = [x for x in log.live_commits() if x.rows <= COMPACT_ROWS]
        if len(small) >= COMPACT_AFTER:  # many small commits (pushes): merge them, reads stay fast
            self.compact(view, max_rows=COMPACT_ROWS)
        return IngestResult(view.name, view.version, c.rows, c.seq, us_to_dt(c.ingested_at_us), stats["shadowed_in_batch"])

    def compact(self, view: FeatureView, max_rows: int | None = None) -> Commit | None:
        """Merge live commits of a view version into one part, keeping full history.

        Each row keeps its own ingested time, and gets the system time from which a later tie
        beats it (`__shadowed_until`), so as-of reads at any time stay exact while reads see
        fewer parts (one: the fast path). `max_rows` merges only commits up to that size (the
        small ones that pushes leave behind). Returns None when there is nothing to merge.
        """
        log = self.log(view.name, view.version)
        live = [c for c in log.live_commits() if max_rows is None or c.rows <= max_rows]
        chosen = {c.seq for c in live}
        parts = [p for p in self.parts(view.name, view.version) if p.commit in chosen]
        if len(live) < 2:
            return None
        keys = [q(k) for k in view.join_keys]
        base = ", ".join([*keys, EVENT_TS, CREATED_TS, q(SEQ)])
        union = " UNION ALL ".join(
            f"SELECT {base}, {', '.join(column_or_null(p, f.name) for f in view.features)}, {SHADOWED_UNTIL}, "
            + (f"{INGESTED_AT}" if p.compacted else f"{p.ingested_at_us}::BIGINT AS {INGESTED_AT}")
            + f" FROM read_parquet([{lit(p.path)}])"
            for p in parts
        )
        part_by = ", ".join([*keys, EVENT_TS])
        order = f"{CREATED_TS} ASC NULLS FIRST, {INGESTED_AT}, {q(SEQ)}"
        sql = (
            f"SELECT * EXCLUDE ({SHADOWED_UNTIL}), CASE WHEN {SHADOWED_UNTIL} IS NOT NULL THEN {SHADOWED_UNTIL} "
            f"ELSE min({INGESTED_AT}) OVER (PARTITION BY {part_by} ORDER BY {order} "
            f"ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) END AS {SHADOWED_UNTIL} FROM ({union})"
        )

        def write_parts() -> list[Part]:
            rel, path = log.new_part_path()
            con = self.connection()
            try:
                tmp = path.with_name(path.name + ".tmp")
                con.execute(f"COPY ({sql}) TO '{tmp}' (FORMAT parquet, COMPRESSION lz4, ROW_GROUP_SIZE 1048576)")
            finally:
                con.close()
            write_atomically(path, lambda _t: None)
            return [Part(rel, sum(p.rows for c in live for p in c.parts), compacted=True)]

        meta = {"key_types": self.key_types(view.name, view.version), "compaction": True, "columns": [f.name for f in view.features]}
        return log.commit(write_parts, meta=meta, replaces=[c.seq for c in live])

    def parts(self, view: str, version: int, as_of_us: int | None = None) -> list[PartRef]:
        log = self.log(view, version)
        return [
            PartRef(str(log.root / p.file), c.ingested_at_us, p.compacted, c.seq, _columns(c))
            for c in log.live_commits(as_of_us)
            for p in c.parts
        ]

    def commits(self, view: str, version: int, as_of_us: int | None = None) -> list[Commit]:
        return self.log(view, version).live_commits(as_of_us)

    # -- queries -----------------------------------------------------------------------------
    def connection(self) -> Any:
        """A DuckDB cursor for this thread (one in-memory database per store)."""
        import duckdb

        with self._lock:
            if self._con is None:
                cfg: dict[str, str | bool | int | float | list[str]] = {"threads": self._threads} if self._threads else {}
                self._con = duckdb.connect(config=cfg)
                self._con.execute("SET enable_progress_bar = false")  # never print bars from a library
            return self._con.cursor()

    def join(self, entities: pa.Table, spec: JoinSpec) -> pa.Table:
        """Run the point-in-time join of `entities(__rid, keys, __ts)` for one view version."""
        con = self.connection()
        try:
            con.register("__entities", entities)
            return con.sql(pit_join_sql(spec)).to_arrow_table()
        finally:
            con.close()

    def latest_rows(self, view: FeatureView, as_of_us: int | None = None, limit: int | None = None) -> pa.Table:
        """The tie-winning rows of a view version (what a training set can return), newest first."""
        spec = JoinSpec(
            self.parts(view.name, view.version, as_of_us),
            view.join_keys,
            [(f.name, f.name) for f in view.features],
            as_of_us=as_of_us,
        )
        keys = ", ".join(q(k) for k in view.join_keys)
        sql = f"SELECT {keys}, {EVENT_TS} AS event_timestamp, {', '.join(q(f.name) for f in view.features)} FROM ({feature_source_sql(spec)}) ORDER BY {EVENT_TS} DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        con = self.connection()
        try:
            return con.sql(sql).to_arrow_table()
        finally:
            con.close()

    def profile(self, view: FeatureView) -> dict[str, Any]:
        """Row counts, time range and per-feature statistics over all stored rows."""
        parts = self.parts(view.name, view.version)
        out: dict[str, Any] = {"rows": 0, "commits": len(self.commits(view.name, view.version)), "features": {}}
        if not parts:
            return out
        files = "[" + ", ".join(lit(p.path) for p in parts) + "]"
        present = set().union(*(p.columns or [f.name for f in view.features] for p in parts))
        stat_features = [f for f in view.features if f.name in present]
        keys = ", ".join(q(k) for k in view.join_keys)
        exprs = ["count(*) AS n", f"min({EVENT_TS}) AS tmin", f"max({EVENT_TS}) AS tmax", f"count(DISTINCT ({keys}, {EVENT_TS})) AS uniq"]
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
            cur = con.execute(f"SELECT {', '.join(exprs)} FROM read_parquet({files}, union_by_name = true)")
            row = cur.fetchone()
            names = [d[0] for d in cur.description]
        finally:
            con.close()
        r = dict(zip(names, row or (), strict=True))
        n = int(r["n"])
        # rows that no longer win their (keys, event time): superseded by a correction or a tie
        out.update(rows=n, first_event=r["tmin"], last_event=r["tmax"], superseded_rows=n - int(r["uniq"]))
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
