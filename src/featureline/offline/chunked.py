"""Chunked file ingestion: a large file in bounded memory. Validate and stage it chunk by
chunk, then resolve ties over the whole batch in DuckDB (which spills to disk) while writing
the one part. The write path (`featureline.write`) takes this road for files of more than
`LARGE_FILE_ROWS` rows. (Not stream ingestion: that is a worker reading a broker.)"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from featureline.definitions import FeatureView
from featureline.errors import NotFoundError, ValidationError
from featureline.offline._log import PARTS, Part, write_atomically
from featureline.offline._pit import CREATED_TS, EVENT_TS, SEQ, SHADOWED_UNTIL, lit, q
from featureline.offline.batch import NEVER_VISIBLE, batch_stats, prepare_batch

if TYPE_CHECKING:
    import duckdb

    from featureline.offline._log import Commit, ViewLog
    from featureline.offline.store import IngestResult, OfflineStore
    from featureline.quality.constraints import KeysAcross

_log = logging.getLogger("featureline.offline")

LARGE_FILE_ROWS = (
    16_000_000  # files with more rows than this are ingested in chunks (bounded memory)
)
CHUNK_ROWS = 1_000_000
MEMORY_LIMIT = "1GB"  # DuckDB's budget for resolving ties; beyond it, it spills to disk


def file_rows(path: str) -> int | None:
    """Total rows of Parquet file(s) from their footers (None for CSV: unknown without reading)."""
    files = sorted(glob.glob(path)) if any(c in path for c in "*?[") else [path]
    if not files or any(f.lower().endswith((".csv", ".csv.gz")) for f in files):
        return None
    import pyarrow.parquet as pq

    try:
        return sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    except (OSError, pa.ArrowInvalid):
        return None  # the normal reader reports it with a clear message


def file_batches(
    path: str, rows: int | None = None, columns: list[str] | None = None
) -> Iterator[pa.Table]:
    """Chunks of about `rows` (default CHUNK_ROWS) rows, read sequentially: memory stays flat.
    With `columns`, only those are read (those of them the file has)."""
    import pyarrow.parquet as pq

    rows = rows or CHUNK_ROWS
    files = sorted(glob.glob(path)) if any(c in path for c in "*?[") else [path]
    if not files or not all(os.path.exists(f) for f in files):
        raise NotFoundError(f"No file matches `{path}`. Fix: check the path or the glob pattern.")
    pool = pa.default_memory_pool()
    for f in files:
        if f.lower().endswith((".csv", ".csv.gz")):
            import pyarrow.csv as pacsv

            convert = pacsv.ConvertOptions(include_columns=columns, include_missing_columns=False)
            with pacsv.open_csv(
                f, read_options=pacsv.ReadOptions(block_size=64 << 20), convert_options=convert
            ) as reader:
                for batch in reader:
                    yield pa.Table.from_batches([batch])
            continue
        pf = pq.ParquetFile(f, buffer_size=1 << 20, pre_buffer=False)
        names = None if columns is None else [c for c in columns if c in pf.schema_arrow.names]
        for batch in pf.iter_batches(batch_size=rows, columns=names):
            yield pa.Table.from_batches([batch])
            pool.release_unused()  # hand freed chunks back, so RSS tracks the chunk size


@contextmanager
def unique_across(store: OfflineStore, view: FeatureView, path: str) -> Iterator[KeysAcross | None]:
    """The view's unique key over the whole file, not chunk by chunk (issue 11).

    A first pass reads only the join keys and event time of every chunk into a `KeysAcross`
    (DuckDB, in a directory next to the view's parts, grouping within MEMORY_LIMIT and
    spilling beyond it). Yields it: gate each chunk of the second pass with it (`across=`)
    (its unique mask is then "keys and event time occur more than once in the file", as for
    the file ingested as one frame) and call `finish()` after the last chunk, before the
    commit (it refuses a file that changed between the passes). Memory cost: see
    `KeysAcross` (no row held in Python; per row, its keys and event time in DuckDB, on
    disk). A view without a unique check gets None (no first pass)."""
    from featureline.quality.constraints import KeysAcross

    if not any(c.kind == "unique" for c in view.checks):
        yield None
        return
    root = store.log(view.name, view.version).root / PARTS
    directory = root / f".staging-keys-{uuid.uuid4().hex}"
    directory.mkdir(parents=True)
    keys = None
    try:
        keys = KeysAcross(view, str(directory), MEMORY_LIMIT, what=f"the file `{path}`")
        for b in file_batches(path, columns=keys.columns):
            keys.add(b)
        keys.freeze()
        yield keys
    finally:
        if keys is not None:
            keys.close()
        shutil.rmtree(directory, ignore_errors=True)


def ingest_chunks(
    store: OfflineStore,
    view: FeatureView,
    batches: Iterator[pa.Table],
    before_commit: Any = None,
    idempotency_key: str | None = None,
    max_future_seconds: float | None = None,
) -> IngestResult:
    """One atomic commit from many chunks, with memory bounded by the chunk size."""
    import duckdb
    import pyarrow.parquet as pq

    from featureline.offline.store import IngestResult, us_to_dt

    log = store.log(view.name, view.version)
    staging = log.root / PARTS / f".staging-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    figure: _Supersedes | None = None
    try:
        key_types = store.key_types(view.name, view.version)
        rows, lo, hi = 0, None, None
        for i, chunk in enumerate(batches):
            if chunk.num_rows == 0:
                continue
            stored, key_types = prepare_batch(
                view,
                chunk,
                key_types,
                seq_offset=rows,
                shadow=False,
                max_future_seconds=max_future_seconds,
            )
            st = batch_stats(stored, view)
            lo = st["min_event_us"] if lo is None else min(lo, st["min_event_us"])
            hi = st["max_event_us"] if hi is None else max(hi, st["max_event_us"])
            pq.write_table(
                stored, staging / f"{i:06d}.parquet", compression="none", use_dictionary=False
            )
            rows += stored.num_rows
        if rows == 0:
            raise ValidationError(
                f"The batch for feature view `{view.name}` is empty (0 rows). Fix: pass at least one row; nothing was written."
            )
        part_by = ", ".join([*(q(k) for k in view.join_keys), EVENT_TS])
        select = (
            f"SELECT * EXCLUDE ({SHADOWED_UNTIL}), CASE WHEN row_number() OVER (PARTITION BY {part_by} "
            f"ORDER BY {CREATED_TS} DESC NULLS LAST, {SEQ} DESC) > 1 THEN {NEVER_VISIBLE}::BIGINT END AS {SHADOWED_UNTIL} "
            f"FROM read_parquet({lit(str(staging / '*.parquet'))})"
        )

        written: list[Path] = []

        def write_parts() -> list[Part]:
            rel, path = log.new_part_path()
            con = duckdb.connect(
                config={"memory_limit": MEMORY_LIMIT, "temp_directory": str(staging / "spill")}
            )
            con.execute("SET enable_progress_bar = false")

            def copy(tmp: Path) -> None:
                con.execute(
                    f"COPY ({select}) TO {lit(str(tmp))} (FORMAT parquet, COMPRESSION lz4, ROW_GROUP_SIZE 1048576)"
                )

            try:
                write_atomically(path, copy)
            finally:
                con.close()
            written.append(path)
            return [Part(rel, rows)]

        batch_id = uuid.uuid4().hex
        meta = {
            "key_types": key_types,
            "columns": [f.name for f in view.features],
            "min_event_us": lo,
            "max_event_us": hi,
            "streamed": True,  # the commit-log key keeps its name: existing logs hold it
            "batch_id": batch_id,
        }
        # the batch's pairs looked up among the stored rows before the writer lock; under it,
        # only among the commits landed since (as `OfflineStore.ingest_stored` does)
        figure = _Supersedes(view, log, staging, rows, int(lo or 0), int(hi or 0))
        if idempotency_key is None or log.find_key(idempotency_key) is None:
            figure.early()

        def before_append() -> Any:
            extra = before_commit() if before_commit is not None else None
            figures = figure.under_lock(written[-1])
            return {**figures, **extra} if isinstance(extra, dict) else figures

        c = log.commit(
            write_parts, meta=meta, before_append=before_append, idempotency_key=idempotency_key
        )
    finally:
        if figure is not None:
            figure.close()  # before its spill folder goes
        shutil.rmtree(staging, ignore_errors=True)
    replayed = c.meta.get("batch_id") != batch_id
    try:  # after the commit point nothing may fail the write
        own = None if replayed else figure.own
        shadowed = own if own is not None else _count_shadowed(log.root / c.parts[0].file)
    except Exception:
        shadowed = 0
    if not replayed:
        store.after_commit(view)
    return IngestResult(
        view.name, view.version, c.rows, c.seq, us_to_dt(c.ingested_at_us), shadowed, replayed
    )


class _Supersedes:
    """The `supersedes` figure of a chunked ingest (`store.SUPERSEDES`: the rows it makes
    superseded when it lands, as `OfflineStore._supersedes_figure` records for a batch in
    memory), computed by DuckDB in bounded memory: the batch's own ties (rows - distinct
    (keys, event time) of the staged files: the rows the part written marks as losing a tie,
    from its footer, rather than a second grouping of every row) plus the distinct staged
    pairs a live row holds already. Those are kept in a table (`__found`) of a connection
    within MEMORY_LIMIT that spills to the staging folder, never in Python.

    `early` looks the pairs up among the live commits whose event times overlap the batch's,
    before the writer lock; `under_lock`, under it, among the commits landed since (a merge of
    commits looked at already moved rows seen; one that replaced a commit landed meanwhile
    makes it look at every live commit again). No figure ({}; the statistics scan instead)
    when the stored rows to look at exceed max(LOOKUP_FREE_ROWS, LOOKUP_PER_ROW x rows), or
    when a lookup fails: logged, never failing the write. `close` before the staging folder
    is removed."""

    def __init__(
        self, view: FeatureView, log: ViewLog, staging: Path, rows: int, lo: int, hi: int
    ) -> None:
        self.view, self.log, self.rows, self.lo, self.hi = view, log, rows, lo, hi
        self.staging = staging
        self.cols = ", ".join([*(q(k) for k in view.join_keys), EVENT_TS])
        self.staged = f"read_parquet({lit(str(staging / '*.parquet'))})"
        self.con: duckdb.DuckDBPyConnection | None = None
        self.own: int | None = None  # the batch's own ties, once counted
        self.seen: frozenset[int] | None = None  # live commits looked at; None: no figure

    def early(self) -> None:
        """The staged pairs the live commits hold (before the writer lock)."""
        import duckdb

        try:
            self.con = duckdb.connect(
                config={
                    "memory_limit": MEMORY_LIMIT,
                    "temp_directory": str(self.staging / "spill-pairs"),
                }
            )
            self.con.execute("SET enable_progress_bar = false")
            self.con.execute(
                f"CREATE TABLE __found AS SELECT {self.cols} FROM {self.staged} LIMIT 0"
            )
            live = self.log.live_commits()
            if self._look_up(live, None):
                self.seen = frozenset(c.seq for c in live)
        except Exception as e:
            self._failed(e)

    def under_lock(self, part: Path) -> dict[str, int]:
        """`{SUPERSEDES: n}` with the commits landed since `early` looked at, or {}; `part`:
        the file written (its marks are the batch's own ties)."""
        from featureline.offline.store import SUPERSEDES, _marked_rows

        if self.seen is None or self.con is None:
            return {}
        try:
            live = self.log.live_commits()
            new = [c for c in live if c.seq not in self.seen]
            if any(set(c.replaces) - self.seen for c in new):  # a merge of an unseen commit
                self.con.execute("DELETE FROM __found")
                ok = self._look_up(live, None)
            else:  # a merge of seen commits holds rows seen
                since = {c.seq for c in new if not c.replaces}
                ok = not since or self._look_up(live, since)
            if not ok:
                return {}
            self.own = _marked_rows(part)
            return {SUPERSEDES: self.own + self._one("SELECT count(*) FROM __found")}
        except Exception as e:
            self._failed(e)
            return {}

    def _look_up(self, live: list[Commit], only: set[int] | None) -> bool:
        """Add to `__found` the distinct staged pairs that the rows of the `live` commits (those
        in `only`, when given) overlapping the batch's event times hold; False when those hold
        more rows than an ingest looks up among."""
        from featureline.offline import store

        near = [c for c in store.near_commits(live, self.lo, self.hi, only) if c.parts]
        if not store.within_lookup(near, self.rows):
            return False
        if not near:
            return True
        files = ", ".join(lit(str(self.log.root / p.file)) for c in near for p in c.parts)
        stored = (
            f"SELECT {self.cols} FROM read_parquet([{files}], union_by_name = true) WHERE "
            f"{EVENT_TS} BETWEEN make_timestamptz({self.lo}::BIGINT) AND "
            f"make_timestamptz({self.hi}::BIGINT)"
        )
        self._db().execute(
            f"INSERT INTO __found SELECT {self.cols} FROM {self.staged} SEMI JOIN ({stored}) "
            f"USING ({self.cols}) EXCEPT SELECT {self.cols} FROM __found"
        )
        return True

    def _one(self, sql: str) -> int:
        row = self._db().execute(sql).fetchone()
        return int(row[0]) if row else 0

    def _db(self) -> duckdb.DuckDBPyConnection:
        if self.con is None:
            raise RuntimeError("the lookup's connection is closed")
        return self.con

    def _failed(self, e: Exception) -> None:
        _log.warning(
            "superseded-rows lookup of %s failed (the write goes on, with no figure): %s",
            self.view.name,
            e,
        )
        self.seen = None
        self.close()

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None


def _count_shadowed(path: Path) -> int:
    import pyarrow.parquet as pq

    col = pq.read_table(path, columns=[SHADOWED_UNTIL]).column(0)
    return int(len(col) - col.null_count)


__all__ = [
    "CHUNK_ROWS",
    "LARGE_FILE_ROWS",
    "file_batches",
    "file_rows",
    "ingest_chunks",
    "unique_across",
]
