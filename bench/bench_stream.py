"""Stream worker throughput and event-to-servable latency (issue 10, item 4 / Performance).

    PYTHONPATH=src python bench/bench_stream.py [--events 300000] [--keys 10000]
        [--online sqlite,redis] [--rate 20000] [--seconds 10] [--aggregations]

Two phases per online store (the embedded SQLite store and Redis), one worker, events on a
Redis stream (127.0.0.1:6379 unless FEATURELINE_BENCH_REDIS_URL):

1. sustained: `--events` JSON events are published first, then one worker drains them;
   events/s = events / time to drain (every event parsed, checked, committed offline and
   applied online, then acknowledged).
2. latency: a publisher in another process publishes `--rate` events/s for `--seconds`
   while the worker runs; publish -> servable is the time from the broker's publish time
   (the Redis entry id, ms resolution) to the moment the push holding the event returned
   (it is readable online then), p50/p99 over every event. A reader checks a sample online.

`--aggregations` gives the view two aggregation features (sum and count over 1 h, 1-minute
tiles), recomputed online for the keys each push touches. Not a test: prints figures only.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import featureline as fl
from featureline.stream import StreamWorker, open_broker

REDIS = os.environ.get("FEATURELINE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
USER = fl.Entity("user", ["user_id"])


def _repo(online: str, stream: str, aggregations: bool) -> fl.FeatureStore:
    root = Path(tempfile.mkdtemp(prefix="fl-stream-")) / "repo"
    fl.init_repo(root, project="b" + uuid.uuid4().hex[:8], with_data=False)
    (root / "definitions.py").unlink()
    cfg = (root / "featureline.yaml").read_text().split("online_store:")[0]
    if online == "redis":
        cfg += f"online_store:\n  type: redis\n  url: {REDIS}\n"
    else:
        cfg += "online_store:\n  type: sqlite\n  path: data/online.db\n"
    cfg += f"streams:\n  redis: {{url: '{REDIS}'}}\n"
    (root / "featureline.yaml").write_text(cfg)
    view = fl.FeatureView(
        "tx",
        [USER],
        [fl.Field("user_id", fl.Int64), fl.Field("amount", fl.Float64), fl.Field("tag", fl.String)],
        tile=timedelta(minutes=1) if aggregations else timedelta(0),
        aggregations=[
            fl.Aggregation("amount", "sum", timedelta(hours=1)),
            fl.Aggregation("amount", "count", timedelta(hours=1)),
        ]
        if aggregations
        else [],
        stream_source=fl.StreamSource("redis", stream, timestamp_field="ts"),
    )
    store = fl.FeatureStore(root)
    store.apply([USER, view])
    return store


def _payloads(n: int, keys: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    return [
        json.dumps(
            {
                "user_id": rng.randrange(keys),
                "ts": (now - timedelta(microseconds=rng.randrange(600_000_000))).isoformat(),
                "amount": round(rng.uniform(0, 100), 2),
                "tag": "abc"[i % 3],
            }
        ).encode()
        for i in range(n)
    ]


def _publisher(stream: str, rate: int, seconds: float, keys: int, ready: object) -> None:
    """Publish `rate` events/s for `seconds`, in 5 ms slices (another process)."""
    import redis

    r = redis.Redis.from_url(REDIS)
    rng = random.Random(11)
    slice_s = 0.005
    per = max(1, int(rate * slice_s))
    ready.set()  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    k = 0
    while time.perf_counter() - t0 < seconds:
        pipe = r.pipeline(transaction=False)
        now = datetime.now(UTC).isoformat()
        for _ in range(per):
            pipe.xadd(
                stream,
                {
                    "data": json.dumps(
                        {"user_id": rng.randrange(keys), "ts": now, "amount": 1.0, "tag": "x"}
                    )
                },
            )
        pipe.execute()
        k += 1
        wait = t0 + k * slice_s - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
    r.close()


def _cleanup(stream: str) -> None:
    import redis

    r = redis.Redis.from_url(REDIS)
    r.delete(stream, f"{stream}:dead")
    r.close()


class _GcPauses:
    """The cyclic collector's pauses (seconds) per generation, while installed (gc.callbacks)."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._t = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self._t)

    def __enter__(self) -> _GcPauses:
        import gc

        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        import gc

        gc.callbacks.remove(self)

    def line(self) -> str:
        return ", ".join(
            f"gen{g} {len(p)} ({sum(p) * 1e3:.0f} ms, max {max(p, default=0) * 1e3:.1f} ms)"
            for g, p in self.pauses.items()
        )


def run(online: str, args: argparse.Namespace) -> None:
    stream = f"bench:stream:{uuid.uuid4().hex[:8]}"
    store = _repo(online, stream, args.aggregations)
    try:
        pub = open_broker("redis", REDIS, stream, "featureline_tx", "bench", f"{stream}:dead")
        payloads = _payloads(args.events, args.keys, seed=1)
        t = time.perf_counter()
        pub.publish(payloads)
        pub_s = time.perf_counter() - t
        worker = StreamWorker(store, consumer="bench", batch_size=args.batch)
        t = time.perf_counter()
        (stats,) = worker.run(once=True)
        drain = time.perf_counter() - t
        assert stats.written == args.events, stats
        print(
            f"[{online}{' +aggregations' if args.aggregations else ''}] sustained: "
            f"{args.events:,} events drained in {drain:.2f} s = {args.events / drain:,.0f} events/s "
            f"({stats.batches} batches of <= {args.batch:,}; publishing took {pub_s:.1f} s); "
            + ", ".join(f"{k} {v:.2f} s" for k, v in stats.seconds.items())
        )
        # latency at a fixed rate, the publisher in another process
        stats.reset_latency()
        ctx = mp.get_context("spawn")
        ready = ctx.Event()
        p = ctx.Process(target=_publisher, args=(stream, args.rate, args.seconds, args.keys, ready))
        p.start()
        ready.wait(30)
        before = stats.written
        t = time.perf_counter()
        with _GcPauses() as gcp:
            worker.run(max_seconds=args.seconds + 0.5)
            worker.run(once=True)
        p.join()
        took = time.perf_counter() - t
        n = stats.written - before
        q = stats.latency_quantiles((0.5, 0.9, 0.99, 0.999), samples=None) or {}
        print(
            f"[{online}{' +aggregations' if args.aggregations else ''}] latency at "
            f"{args.rate:,} events/s offered: {n:,} events in {took:.1f} s "
            f"({n / args.seconds:,.0f}/s), publish->servable p50 {q.get(0.5, 0) * 1e3:.1f} ms, "
            f"p90 {q.get(0.9, 0) * 1e3:.1f} ms, p99 {q.get(0.99, 0) * 1e3:.1f} ms, "
            f"p99.9 {q.get(0.999, 0) * 1e3:.1f} ms ({stats.batches} batches in all)"
        )
        print(f"  collector pauses in the latency run: {gcp.line()}")
        print(
            "  time per phase, both runs: "
            + ", ".join(f"{k} {v:.2f} s" for k, v in stats.seconds.items())
        )
        resp = store.get_online_features(["tx:amount"], [{"user_id": k} for k in range(10)])
        assert all(s == "PRESENT" for s in resp.statuses["amount"]), resp.statuses
        worker.close()
        pub.close()
    finally:
        _cleanup(stream)
        store.close()
        shutil.rmtree(store.repo_path.parent, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--keys", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--online", default="sqlite,redis")
    ap.add_argument("--rate", type=int, default=20_000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--aggregations", action="store_true")
    args = ap.parse_args()
    print(f"{os.cpu_count()} cores; batch size {args.batch:,}; {args.keys:,} keys")
    for online in args.online.split(","):
        run(online.strip(), args)


if __name__ == "__main__":
    main()
