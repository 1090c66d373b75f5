"""The offline engine's DuckDB must not keep state per file read: a long-lived writer (a
stream worker, the server) reads a stream of new, short-lived part files."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from featureline.offline.engines.duckdb import DuckDBEngine


def _cached_bytes(engine: DuckDBEngine) -> int:
    con = engine.connection()
    try:
        (got,) = con.execute(
            "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory() "
            "WHERE tag = 'OBJECT_CACHE'"
        ).fetchone()
        return int(got)
    finally:
        con.close()


def test_reading_many_files_leaves_no_cache_entry_per_file(tmp_path: Path) -> None:
    """Before: DuckDB's external file cache kept ~325 bytes (~1.2 KB of RSS) for every file the
    engine had read, removed files included (300 files: 97,506 bytes)."""
    engine = DuckDBEngine(threads=1)
    for i in range(300):
        path = tmp_path / f"part-{i}.parquet"
        pq.write_table(pa.table({"k": list(range(50)), "v": [float(i)] * 50}), path)
        con = engine.connection()
        try:
            (n,) = con.execute(f"SELECT count(*) FROM read_parquet('{path}')").fetchone()
        finally:
            con.close()
        assert n == 50
        path.unlink()
    assert _cached_bytes(engine) < 10_000
