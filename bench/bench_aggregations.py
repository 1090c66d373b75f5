"""Benchmark: aggregation features (issue 10), measured in one run.

  (a) plain DuckDB ASOF LEFT JOIN of the entity rows to the events (the bar), as bench_training_set;
  (g) featureline `get_training_set` with 5 aggregation features (1 h, 1 day, 7 days) over the
      same events, with exact semantics (tiles of 1 minute);
  (o) online read of 5 aggregation features over a 1-day window with 1-minute tiles, 1 key per
      call, in-process (SQLite), after materializing `--online-keys` keys x 1,440 events.

    PYTHONPATH=src python bench/bench_aggregations.py [--entity-rows N] [--online-keys K] [--calls C]
        [--skip-online] [--skip-training] [--repeat R]

`--repeat R` measures (a) and (g) alternately R times on the one ingested repo (a shared
machine's load changes: compare each (g) with the (a) just before it). Peak RSS is the
process's ru_maxrss so far (it includes (a), which runs in this process too).

Uses bench/.data (bench/data.py: ~11M events of 100,000 keys over a year, 1M entity rows);
`--entity-rows` takes the first N entity rows.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import bench_training_set as bts  # noqa: E402  (bench/ is not a package)
from data import ensure_data  # noqa: E402

import featureline as fl  # noqa: E402

MIN = timedelta(minutes=1)
AGGS = [
    fl.Aggregation("f0", "sum", timedelta(hours=1)),
    fl.Aggregation("f0", "mean", timedelta(days=1)),
    fl.Aggregation("f1", "max", timedelta(days=7)),
    fl.Aggregation("f2", "count", timedelta(days=7)),
    fl.Aggregation("f3", "stddev", timedelta(days=7)),
]


def _repo(root: Path, source: str) -> fl.FeatureStore:
    fl.init_repo(root, project="aggbench", with_data=False)
    store = fl.FeatureStore(root)
    entity = fl.Entity("entity", join_keys=["entity_id"])
    view = fl.FeatureView(
        "events",
        entities=[entity],
        schema=[
            fl.Field("entity_id", fl.Int64),
            *(fl.Field(f"f{i}", fl.Float64) for i in range(5)),
        ],
        source=fl.FileSource(source, "event_timestamp", "created"),
        tile=MIN,
        aggregations=AGGS,
    )
    store.apply([entity, view])
    return store


def training(entity_rows: int, work: Path, repeat: int = 1) -> None:
    features, entities = ensure_data()
    ents = pq.read_table(entities).slice(0, entity_rows)
    ent_path = work / "entities.parquet"
    pq.write_table(ents, ent_path)
    a_sql = bts.asof_sql(features, ent_path)
    store = _repo(work / "repo", str(features))
    t0 = time.perf_counter()
    store.ingest("events")
    print(
        f"ingest of {pq.ParquetFile(features).metadata.num_rows:,} events: {time.perf_counter() - t0:.1f} s"
    )
    refs = [f"events:{a.name}" for a in AGGS]
    ratios = []
    for run in range(1, repeat + 1):  # (a) then (g), alternately: both see the same load
        t0 = time.perf_counter()
        bts.run_duckdb(a_sql)
        a = time.perf_counter() - t0
        print(f"[{run}] (a) plain DuckDB ASOF LEFT JOIN, {entity_rows:,} entity rows: {a:.2f} s")
        t0 = time.perf_counter()
        out = store.get_training_set(str(ent_path), refs).to_arrow()
        g = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"[{run}] (g) get_training_set, 5 aggregation features: {g:.2f} s; {out.num_rows:,} rows; "
            f"peak RSS so far {rss:,.0f} MiB"
        )
        print(f"[{run}]     (g) / (a) = {g / a:.2f}x")
        ratios.append(g / a)
        nonnull = {c: out.num_rows - out.column(c).null_count for c in [a.name for a in AGGS]}
        print(f"    non-null per feature: {nonnull}")
        del out
    if repeat > 1:
        print(
            f"(g) / (a) over {repeat} runs: median {statistics.median(ratios):.2f}x, "
            f"min {min(ratios):.2f}x, max {max(ratios):.2f}x"
        )
    store.close()


def online(keys: int, calls: int, work: Path) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    n = keys * 1440
    rng = np.random.default_rng(7)
    ev = np.repeat(np.arange(1440, dtype=np.int64), keys)
    table = pa.table(
        {
            "entity_id": pa.array(np.tile(np.arange(keys, dtype=np.int64), 1440)),
            "event_timestamp": pa.array(
                [now - timedelta(minutes=int(m)) for m in ev], pa.timestamp("us", tz="UTC")
            ),
            "created": pa.nulls(n, pa.timestamp("us", tz="UTC")),
            **{f"f{i}": pa.array(rng.random(n)) for i in range(5)},
        }
    )
    src = work / "online_events.parquet"
    pq.write_table(table, src)
    store = _repo(work / "repo_online", str(src))
    store.ingest("events")
    t0 = time.perf_counter()
    store.materialize()
    print(f"materialize {keys:,} keys x 1,440 events into tiles: {time.perf_counter() - t0:.1f} s")
    refs = [f"events:{a.name}" for a in AGGS]
    store.get_online_features(refs, [{"entity_id": 0}])
    lat = []
    for i in range(calls):
        t = time.perf_counter()
        store.get_online_features(refs, [{"entity_id": i % keys}])
        lat.append(time.perf_counter() - t)
    lat.sort()
    p50, p99 = statistics.median(lat) * 1e6, lat[int(len(lat) * 0.99)] * 1e6
    print(
        f"(o) online read, 1 key x 5 aggregation features (1-day window, 1-minute tiles): p50 {p50:.0f} us, p99 {p99:.0f} us over {calls:,} calls"
    )
    store.close()


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entity-rows", type=int, default=1_000_000)
    ap.add_argument("--online-keys", type=int, default=200)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--skip-training", action="store_true")
    ap.add_argument("--skip-online", action="store_true")
    ap.add_argument("--repeat", type=int, default=1, help="(a) and (g) this many times each")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="aggbench-"))
    try:
        if not args.skip_online:
            online(args.online_keys, args.calls, work)
        if not args.skip_training:
            training(args.entity_rows, work, args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
