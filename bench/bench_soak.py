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


def _smaps() -> str:
    """Anonymous and file-backed RSS (MB) from /proc/self/smaps_rollup."""
    got: dict[str, float] = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("Anonymous", "Rss"):
                got[name] = int(rest.split()[0]) / 1024
    return f"anon {got.get('Anonymous', 0):6.1f}"


def _duckdb_mb(store: object) -> float:
    """MB the merge engine's DuckDB holds (duckdb_memory()), 0 before its first merge."""
    engine = getattr(getattr(store, "offline", None), "_merge_engine", None)
    if engine is None or not hasattr(engine, "connection"):
        return 0.0
    con = engine.connection()
    try:
        (got,) = con.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchone()
        return (got or 0) / 2**20
    except Exception:
        return -1.0
    finally:
        con.close()


def _trace_merges(t0: list[float]) -> None:
    """Print each automatic merge of 100,000 rows or more (start, end, rows, seconds), and
    count the merges and vacuums of each interval with their time (`--trace`)."""
    from featureline.offline import store as offline_store

    compact = offline_store.OfflineStore.compact

    def traced(self, view, max_rows=None, wait=True, engine=None):  # type: ignore[no-untyped-def]
        start = time.monotonic()
        got = compact(self, view, max_rows, wait, engine)
        if got is not None:
            rows = got.rows
            _MERGES[0] += 1
            _MERGES[1] += time.monotonic() - start
        if got is not None and rows >= 100_000:
            print(
                f"    merge t={start - t0[0]:6.1f}..{time.monotonic() - t0[0]:6.1f} s "
                f"{rows:,} rows ({time.monotonic() - start:.2f} s) rss {_rss_mb():.1f} MB",
                flush=True,
            )
        return got

    offline_store.OfflineStore.compact = traced  # type: ignore[method-assign]
    vacuum = offline_store.OfflineStore.vacuum

    def timed_vacuum(self, view, *a, **k):  # type: ignore[no-untyped-def]
        start = time.monotonic()
        try:
            return vacuum(self, view, *a, **k)
        finally:
            _MERGES[2] += 1
            _MERGES[3] += time.monotonic() - start

    offline_store.OfflineStore.vacuum = timed_vacuum  # type: ignore[method-assign]


def _print_growth(first: object, last: object) -> None:
    """The source lines whose traced Python allocations grew most between two snapshots."""
    diff = last.compare_to(first, "lineno")  # type: ignore[attr-defined]
    grown = sum(d.size_diff for d in diff)
    print(f"python allocations grew {grown / 2**20:+.1f} MB since the first sample; top lines:")
    for d in diff[:15]:
        print(f"  {d.size_diff / 2**20:+7.2f} MB {d.count_diff:+8,} blocks  {d.traceback}")


_MERGES = [0, 0.0, 0, 0.0]  # merges, their seconds, vacuums, their seconds (of an interval)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=16_000)
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--every", type=float, default=10)
    ap.add_argument("--keys", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--online", default="sqlite")
    ap.add_argument(
        "--trace", action="store_true", help="print big merges; anon RSS, merge and vacuum time"
    )
    ap.add_argument(
        "--tracemalloc",
        action="store_true",
        help="at the end, the 15 source lines whose Python allocations grew most since the first"
        " sample, and the traced total (slows the worker: compare RSS growth, not rates)",
    )
    args = ap.parse_args()
    clock = [time.monotonic()]
    if args.trace:
        _trace_merges(clock)
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
    samples: list[tuple[float, float, int, float, int, float]] = []
    t0 = time.monotonic()
    if args.tracemalloc:
        import tracemalloc

        tracemalloc.start(1)
    snaps: list[object] = []

    def sample(all_stats: list) -> None:  # type: ignore[type-arg]  # on the worker's thread
        (stats,) = all_stats
        q = stats.latency_quantiles((0.99,)) or {}
        stats.reset_latency()
        lag = broker.lag().total or 0
        merging = _duckdb_mb(store)  # the merge in flight's DuckDB memory: a transient
        row = (
            time.monotonic() - t0,
            _rss_mb(),
            lag,
            q.get(0.99, 0.0) * 1e3,
            stats.written,
            merging,
        )
        samples.append(row)
        if args.tracemalloc and not snaps:
            snaps.append(tracemalloc.take_snapshot())
        extra = ""
        if args.trace:
            m, ms, v, vs = _MERGES
            _MERGES[:] = [0, 0.0, 0, 0.0]
            extra = (
                f"  {_smaps()}  merges {m} ({ms:.1f} s) vacuums {v} ({vs:.2f} s)"
                f"  duckdb {merging:.1f} MB"
            )
        print(
            f"  t={row[0]:6.0f} s  rss {row[1]:7.1f} MB  lag {row[2]:7,}  "
            f"p99 {row[3]:8.1f} ms  written {row[4]:,}{extra}",
            flush=True,
        )

    print(f"{os.cpu_count()} cores; {args.rate:,} events/s offered for {args.seconds:.0f} s")
    try:
        pub.start()
        ready.wait(30)
        t0 = clock[0] = time.monotonic()
        worker.run(max_seconds=args.seconds + 2, progress=sample, progress_every=args.every)
        pub.join()
        worker.run(once=True)
        per_min = max(1, int(60 // args.every))
        first, last = samples[:per_min], samples[-per_min:]
        (stats,) = worker.stats

        def avg(rows: list[tuple[float, float, int, float, int, float]], i: int) -> float:
            return sum(r[i] for r in rows) / len(rows)

        print(
            f"first minute: rss {avg(first, 1):.1f} MB (without the merge engine's "
            f"{avg(first, 5):.1f}: {avg(first, 1) - avg(first, 5):.1f}), lag {avg(first, 2):,.0f}; "
            f"last minute: rss {avg(last, 1):.1f} MB (without the merge engine's "
            f"{avg(last, 5):.1f}: {avg(last, 1) - avg(last, 5):.1f}), lag {avg(last, 2):,.0f}; "
            f"max lag {max(r[2] for r in samples):,}; worst interval p99 "
            f"{max(r[3] for r in samples):.1f} ms; {stats.written:,} events written"
        )
        if args.tracemalloc and snaps:
            _print_growth(snaps[0], tracemalloc.take_snapshot())
    finally:
        worker.close()
        broker.close()
        bench_stream._cleanup(stream)
        store.close()
        shutil.rmtree(store.repo_path.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
