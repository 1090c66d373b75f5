"""Chunked file ingestion: a large file in bounded memory. Validate and stage it chunk by
chunk, then resolve ties over the whole batch in DuckDB (which spills to disk) while writing
the one part. The write path (`featureline.write`) takes this road for files of more than
`LARGE_FILE_ROWS` rows. (Not stream ingestion: that is a worker reading a broker.)"""

from __future__ import annotations

import glob
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
    from featureline.offline.store import IngestResult, OfflineStore
    from featureline.quality.constraints import KeysAcross

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
        c = log.commit(
            write_parts, meta=meta, before_append=before_commit, idempotency_key=idempotency_key
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    replayed = c.meta.get("batch_id") != batch_id
    try:  # after the commit point nothing may fail the write
        shadowed = _count_shadowed(log.root / c.parts[0].file)
    except Exception:
        shadowed = 0
    if not replayed:
        store.after_commit(view)
    return IngestResult(
        view.name, view.version, c.rows, c.seq, us_to_dt(c.ingested_at_us), shadowed, replayed
    )


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
