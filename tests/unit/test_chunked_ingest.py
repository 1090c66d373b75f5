"""Large files are ingested in chunks with bounded memory, with exactly the same result."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from featureline.errors import ValidationError
from featureline.offline import chunked
from tests.helpers import TS, driver_defs, new_store, utc


def _data(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    base = int(utc(2025, 1, 1).timestamp()) * 1_000_000
    ev = (
        base + rng.integers(0, 50, n) * 3_600_000_000
    )  # few distinct times: many ties across chunks
    return pa.table(
        {
            "driver_id": pa.array(rng.integers(0, 20, n), pa.int64()),
            "event_timestamp": pa.array(ev, TS),
            "rate": rng.random(n),
            "trips": pa.array(np.arange(n), pa.int64()),
        }
    )


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_chunked_file_equals_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    data = _data(3_000, seed=1)
    path = tmp_path / f"batch.{fmt}"
    pq.write_table(data, path) if fmt == "parquet" else pacsv.write_csv(data, path)
    driver, view = driver_defs(ttl=timedelta(hours=5))
    streamed = new_store(tmp_path / "a", driver, view)
    in_memory = new_store(tmp_path / "b", driver, view)
    monkeypatch.setattr(chunked, "LARGE_FILE_ROWS", 0)
    monkeypatch.setattr(chunked, "CHUNK_ROWS", 250)
    if fmt == "csv":  # CSV row counts are unknown without reading: call the chunked path directly
        r1 = chunked.ingest_chunks(
            streamed.offline,
            streamed.get_feature_view("driver_stats"),
            chunked.file_batches(str(path)),
        )
    else:
        r1 = streamed.ingest("driver_stats", str(path))
    r2 = in_memory.ingest("driver_stats", data)
    assert r1.rows == r2.rows == 3_000 and r1.shadowed_in_batch == r2.shadowed_in_batch > 0
    ent = pa.table(
        {
            "driver_id": pa.array(np.arange(25), pa.int64()),
            "event_timestamp": pa.array([utc(2025, 1, 2, 3)] * 25, TS),
        }
    )
    a = streamed.get_training_set(ent, ["driver_stats:rate", "driver_stats:trips"]).to_arrow()
    b = in_memory.get_training_set(ent, ["driver_stats:rate", "driver_stats:trips"]).to_arrow()
    assert a.equals(b)


def test_bad_chunk_writes_nothing(tmp_path: Path) -> None:
    driver, view = driver_defs()
    store = new_store(tmp_path, driver, view)
    good, bad = _data(100, 1), _data(100, 2)
    bad = bad.set_column(2, "rate", pa.array(["x"] * 100))
    fv = store.get_feature_view("driver_stats")
    with pytest.raises(ValidationError, match="column `rate` has type String"):
        chunked.ingest_chunks(store.offline, fv, iter([good, bad]))
    assert store.offline.commits("driver_stats", 1) == []
    assert not list((store.offline.log("driver_stats", 1).root / "parts").glob("*.parquet"))
    with pytest.raises(ValidationError, match="empty"):
        chunked.ingest_chunks(store.offline, fv, iter([]))
