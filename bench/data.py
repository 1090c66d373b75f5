"""Deterministic benchmark data for point-in-time training sets (written to bench/.data/).

* features.parquet: 100,000 entities x 100 events = 10,000,000 rows, plus about 10% of the
  (entity, event time) pairs repeated with a different created time (a correction that may win
  or lose the tie) -> about 11,000,000 rows; 5 float features, no nulls; ordered by event time.
* entities.parquet: 1,000,000 entity rows whose times span the data and beyond (some before the
  first event, some long after the last), with about 5% of the keys absent from the features.

Run `python bench/data.py` (or let the benchmarks call `ensure_data()`); existing files are
reused when they were generated with the same parameters.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DATA_DIR = Path(__file__).resolve().parent / ".data"
TS = pa.timestamp("us", tz="UTC")
START_US = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z
SECOND = 1_000_000
DAY = 86_400 * SECOND


@dataclass(frozen=True)
class Params:
    entities: int = 100_000
    rows_per_entity: int = 100
    dup_share: float = 0.10
    entity_rows: int = 1_000_000
    absent_share: float = 0.05
    features: int = 5
    span_days: int = 365
    seed: int = 20_240_101
    version: int = 1  # bump when the generator changes


def _features(p: Params, rng: np.random.Generator) -> pa.Table:
    n, k = p.entities, p.rows_per_entity
    # strictly increasing event times per entity: gaps of 1 s .. 2 * (span / k), averaging span / k
    mean_gap_s = p.span_days * 86_400 // k
    gaps = rng.integers(1, 2 * mean_gap_s, size=(n, k), dtype=np.int64) * SECOND
    event = START_US + np.cumsum(gaps, axis=1).ravel()
    key = np.repeat(np.arange(n, dtype=np.int64), k)
    created = event + rng.integers(0, 3_600, size=n * k, dtype=np.int64) * SECOND

    dup = np.flatnonzero(rng.random(n * k) < p.dup_share)
    # a different created time, earlier or later (never equal): the later one wins the tie
    shift = rng.integers(1, 86_400, size=dup.size, dtype=np.int64) * SECOND
    shift *= np.where(rng.random(dup.size) < 0.5, -1, 1)
    key = np.concatenate([key, key[dup]])
    event = np.concatenate([event, event[dup]])
    created = np.concatenate([created, created[dup] + shift])

    order = np.argsort(event, kind="stable")
    cols: dict[str, pa.Array] = {
        "entity_id": pa.array(key[order]),
        "event_timestamp": pa.array(event[order], TS),
        "created": pa.array(created[order], TS),
    }
    total = key.size
    for i in range(p.features):
        cols[f"f{i}"] = pa.array(rng.random(total)[order])
    return pa.table(cols)


def _entities(p: Params, rng: np.random.Generator, first_us: int, last_us: int) -> pa.Table:
    m = p.entity_rows
    absent = rng.random(m) < p.absent_share
    keys = np.where(
        absent,
        rng.integers(p.entities, 2 * p.entities, size=m),
        rng.integers(0, p.entities, size=m),
    )
    # from 30 days before the first event to 60 days after the last (beyond a 30-day TTL)
    lo, hi = first_us - 30 * DAY, last_us + 60 * DAY
    times = rng.integers(lo, hi, size=m, dtype=np.int64)
    return pa.table(
        {
            "entity_id": pa.array(keys.astype(np.int64)),
            "event_timestamp": pa.array(times, TS),
            "label": pa.array(rng.integers(0, 2, size=m, dtype=np.int64)),
        }
    )


def paths(data_dir: Path = DATA_DIR) -> tuple[Path, Path]:
    return data_dir / "features.parquet", data_dir / "entities.parquet"


def ensure_data(
    p: Params = Params(), data_dir: Path = DATA_DIR, quiet: bool = False
) -> tuple[Path, Path]:
    """Generate the data unless files made with the same parameters exist; return their paths."""
    features, entities = paths(data_dir)
    meta = data_dir / "meta.json"
    if (
        features.exists()
        and entities.exists()
        and meta.exists()
        and json.loads(meta.read_text()) == asdict(p)
    ):
        return features, entities
    data_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rng = np.random.default_rng(p.seed)
    ft = _features(p, rng)
    first, last = ft.column("event_timestamp")[0].value, ft.column("event_timestamp")[-1].value
    pq.write_table(ft, features, row_group_size=1 << 20, compression="zstd")
    et = _entities(p, rng, first, last)
    pq.write_table(et, entities, row_group_size=1 << 20, compression="zstd")
    meta.write_text(json.dumps(asdict(p)))
    if not quiet:
        print(
            f"generated {ft.num_rows:,} feature rows ({p.entities:,} entities) and {et.num_rows:,} entity rows "
            f"in {time.perf_counter() - t0:.1f} s -> {data_dir}"
        )
    return features, entities


SMALL = Params(entities=1_000, entity_rows=10_000)  # a quick smoke run of the benchmarks


def for_size(small: bool) -> tuple[Params, Path]:
    """Parameters and data folder: the full size, or a small smoke-test size in its own folder."""
    return (SMALL, DATA_DIR / "small") if small else (Params(), DATA_DIR)


def small_driver_repo(prefix: str, project: str) -> Any:
    """A fresh repo in a temp folder with one `driver_stats` view (rate, trips; TTL one day),
    applied: the set-up the push and fault benchmarks share. Returns the FeatureStore."""
    import tempfile
    from datetime import timedelta

    import featureline as fl

    repo = Path(tempfile.mkdtemp(prefix=prefix)) / "repo"
    fl.init_repo(repo, project=project, with_data=False)
    (repo / "definitions.py").unlink()
    store = fl.FeatureStore(repo)
    driver = fl.Entity("driver", ["driver_id"])
    schema = [
        fl.Field("driver_id", fl.Int64),
        fl.Field("rate", fl.Float64),
        fl.Field("trips", fl.Int64),
    ]
    store.apply(
        [
            driver,
            fl.FeatureView("driver_stats", entities=[driver], ttl=timedelta(days=1), schema=schema),
        ]
    )
    return store


if __name__ == "__main__":
    ensure_data(*for_size("--small" in sys.argv))
