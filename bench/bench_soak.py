"""Stream soak (issue 10, Performance): one worker under a steady load for minutes; memory must
stay flat and the lag must not grow.

    PYTHONPATH=src python bench/bench_soak.py [--rate 16000] [--seconds 600] [--online sqlite]

A publisher process offers `--rate` events/s (80% of the sustained rate measured by
bench_stream.py) to a Redis stream for `--seconds`; one worker in this process consumes it into
the embedded store (or Redis). Every `--every` seconds it samples the worker's RSS, the group's
lag (unread + unacknowledged, from the broker) and the publish->servable p99 of that interval.
It prints the samples, then RSS and lag of the first and the last minute. Not a test.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import bench_stream  # noqa: E402  (bench/ is not a package)

from featureline.stream import StreamWorker, open_broker  # noqa: E402


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=16_000)
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--every", type=float, default=10)
    ap.add_argument("--keys", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--online", default="sqlite")
    args = ap.parse_args()
    stream = f"bench:soak:{uuid.uuid4().hex[:8]}"
    store = bench_stream._repo(args.online, stream, False)
    broker = open_broker(
        "redis", bench_stream.REDIS, stream, "featureline_tx", "soak-probe", f"{stream}:dead"
    )
    worker = StreamWorker(store, consumer="soak", batch_size=args.batch)
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    pub = ctx.Process(
        target=bench_stream._publisher,
        args=(stream, args.rate, args.seconds, args.keys, ready),
    )
    samples: list[tuple[float, float, int, float, int]] = []
    t0 = time.monotonic()

    def sample(all_stats: list) -> None:  # type: ignore[type-arg]  # on the worker's thread
        (stats,) = all_stats
        q = stats.latency_quantiles((0.99,)) or {}
        stats.reset_latency()
        lag = broker.lag().total or 0
        row = (time.monotonic() - t0, _rss_mb(), lag, q.get(0.99, 0.0) * 1e3, stats.written)
        samples.append(row)
        print(
            f"  t={row[0]:6.0f} s  rss {row[1]:7.1f} MB  lag {row[2]:7,}  "
            f"p99 {row[3]:8.1f} ms  written {row[4]:,}",
            flush=True,
        )

    print(f"{os.cpu_count()} cores; {args.rate:,} events/s offered for {args.seconds:.0f} s")
    try:
        pub.start()
        ready.wait(30)
        t0 = time.monotonic()
        worker.run(max_seconds=args.seconds + 2, progress=sample, progress_every=args.every)
        pub.join()
        worker.run(once=True)
        per_min = max(1, int(60 // args.every))
        first, last = samples[:per_min], samples[-per_min:]
        (stats,) = worker.stats

        def avg(rows: list[tuple[float, float, int, float, int]], i: int) -> float:
            return sum(r[i] for r in rows) / len(rows)

        print(
            f"first minute: rss {avg(first, 1):.1f} MB, lag {avg(first, 2):,.0f}; "
            f"last minute: rss {avg(last, 1):.1f} MB, lag {avg(last, 2):,.0f}; "
            f"max lag {max(r[2] for r in samples):,}; worst interval p99 "
            f"{max(r[3] for r in samples):.1f} ms; {stats.written:,} events written"
        )
    finally:
        worker.close()
        broker.close()
        bench_stream._cleanup(stream)
        store.close()
        shutil.rmtree(store.repo_path.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
