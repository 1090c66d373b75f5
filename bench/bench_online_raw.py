"""Raw online store speed, below encoding/TTL/statuses (a benchmark, not a test).

For each backend: read latency (p50/p99) of `read` for 1 key and for 100 random keys with
100,000 keys stored, and write throughput of `write` for 1,000,000 rows of 64-byte values
(a 32-byte order + 32 bytes of payload, 16-byte keys): new keys in one call, the same keys
again with greater orders (updates), a replay (nothing applies), and new keys in calls of
100,000 and of 10,000 rows. Prints plain text.

    python bench/bench_online_raw.py                      # sqlite and redis
    python bench/bench_online_raw.py --backends sqlite --rows 200000
    python bench/bench_online_raw.py --redis-url redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from featureline.online import OnlineStore
from featureline.online.redis import RedisOnlineStore
from featureline.online.sqlite import SqliteOnlineStore


def make_keys(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(16) for _ in range(n)]


def make_values(n: int, base: int) -> list[bytes]:
    payload = os.urandom(32)
    return [(base + i).to_bytes(32, "big") + payload for i in range(n)]


def latencies(fn: Callable[[list[bytes]], object], samples: list[list[bytes]]) -> str:
    for s in samples[:200]:  # warm up: connections, statement caches, page cache
        fn(s)
    out = []
    clock = time.perf_counter_ns
    for s in samples:
        start = clock()
        fn(s)
        out.append(clock() - start)
    out.sort()
    p50, p99 = out[len(out) // 2] / 1000, out[int(len(out) * 0.99)] / 1000
    return f"p50 {p50:8.1f} us   p99 {p99:8.1f} us   mean {statistics.fmean(out) / 1000:8.1f} us"


def throughput(label: str, fn: Callable[[], int], rows: int) -> None:
    start = time.perf_counter()
    applied = fn()
    secs = time.perf_counter() - start
    print(f"  {label:<34} {rows / secs:>10,.0f} rows/s  ({secs:.2f} s, {applied:,} applied)")


def bench(name: str, store: OnlineStore, args: argparse.Namespace) -> None:
    print(f"\n{name}: {store!r}")
    rng = random.Random(1)
    keys = make_keys(args.keys, seed=2)
    store.write("bench_read", keys, make_values(args.keys, base=1))
    one = [[rng.choice(keys)] for _ in range(args.samples)]
    hundred = [rng.sample(keys, 100) for _ in range(args.samples // 2)]
    print(f"  read, {args.keys:,} keys stored")
    print(f"    1 key     {latencies(lambda ks: store.read('bench_read', ks), one)}")
    print(f"    100 keys  {latencies(lambda ks: store.read('bench_read', ks), hundred)}")
    miss = [[b"missing-%d" % i] for i in range(args.samples)]
    print(f"    1 missing {latencies(lambda ks: store.read('bench_read', ks), miss)}")

    n = args.rows
    wkeys = make_keys(n, seed=3)
    vals = make_values(n, base=1)
    print(f"  write, {n:,} rows of 64-byte values")
    throughput("new keys, one call", lambda: store.write("bench_write", wkeys, vals), n)
    newer = make_values(n, base=n + 1)
    throughput(
        "updates (greater order), one call", lambda: store.write("bench_write", wkeys, newer), n
    )
    throughput(
        "replay (nothing applies), one call", lambda: store.write("bench_write", wkeys, newer), n
    )
    for step in (100_000, 10_000):
        table = f"bench_batches_{step}"

        def batches(table: str = table, step: int = step) -> int:
            return sum(
                store.write(table, wkeys[i : i + step], vals[i : i + step])
                for i in range(0, n, step)
            )

        throughput(f"new keys, calls of {step:,}", batches, n)
    for table in store.tables():
        store.drop_table(table)


@contextmanager
def sqlite_store() -> Iterator[OnlineStore]:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteOnlineStore(Path(tmp) / "online.db")
        try:
            yield store
        finally:
            store.close()


@contextmanager
def redis_store(url: str) -> Iterator[OnlineStore]:
    store = RedisOnlineStore(url, f"bench-{uuid.uuid4().hex[:8]}")
    try:
        yield store
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="sqlite,redis")
    parser.add_argument("--keys", type=int, default=100_000, help="keys stored for reads")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per write test")
    parser.add_argument("--samples", type=int, default=5_000, help="timed 1-key reads")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("FEATURELINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    )
    args = parser.parse_args()
    try:
        import hiredis  # noqa: F401

        parser_name = "hiredis"
    except ImportError:
        parser_name = "pure Python (pip install hiredis for faster Redis I/O)"
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, redis-py parser: {parser_name}")
    for name in args.backends.split(","):
        if name == "sqlite":
            with sqlite_store() as store:
                bench("sqlite", store, args)
        elif name == "redis":
            with redis_store(args.redis_url) as store:
                health = store.health()
                if not health["ok"]:
                    print(f"\nredis: skipped: {health['detail']}")
                    continue
                bench("redis", store, args)
        else:
            parser.error(f"unknown backend `{name}`; valid: `sqlite`, `redis`")


if __name__ == "__main__":
    main()
