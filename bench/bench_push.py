"""Push latency and throughput (issue 7): small pushes to one view, offline + online, in-process.

    PYTHONPATH=src python bench/bench_push.py [--pushes 400] [--rows 10]

Prints p50/p99 per push and pushes/s, and the stored row count (each row once). Automatic
compaction runs every 8 small commits, as in production.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

import data  # bench/ is on sys.path when a script in it runs
import numpy as np
import pyarrow as pa


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pushes", type=int, default=400)
    ap.add_argument("--rows", type=int, default=10)
    args = ap.parse_args()
    store = data.small_driver_repo("fl-push-", "push")
    now = datetime.now(UTC) - timedelta(seconds=1)
    lat = []
    t0 = time.perf_counter()
    for i in range(args.pushes):
        ids = np.arange(i * args.rows, (i + 1) * args.rows)
        t = pa.table(
            {
                "driver_id": pa.array(ids, pa.int64()),
                "event_timestamp": pa.array([now] * args.rows, pa.timestamp("us", tz="UTC")),
                "rate": pa.array(ids * 0.5, pa.float64()),
                "trips": pa.array(ids, pa.int64()),
            }
        )
        s = time.perf_counter()
        store.push("driver_stats", t)
        lat.append(time.perf_counter() - s)
    total = time.perf_counter() - t0
    ms = np.array(lat) * 1000
    rows = store.describe("driver_stats")["rows"]
    print(
        f"{args.pushes} pushes x {args.rows} rows: p50 {np.percentile(ms, 50):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms, "
        f"{args.pushes / total:.0f} pushes/s; stored rows {rows} (pushed {args.pushes * args.rows})"
    )


if __name__ == "__main__":
    main()
