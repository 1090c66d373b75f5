"""Push latency while a big background merge runs (issue 10: the soak's p99 spikes).

    PYTHONPATH=src python bench/bench_merge_stall.py [--rows 650000] [--rounds 2]

Each round makes a fresh repo, stores 8 commits of `--rows` rows in `driver_stats` (one full
size tier: the next automatic merge writes 8 x rows), then pushes 400-row batches 50 times a
second (20,000 events/s, as bench_stream's p99 bar) for `--seconds`, and after 2 s asks the
background housekeeper to merge. It prints the push latency p50 / p99 / max while that merge
runs and outside it, with the merge's file flushed as it is written (`_trickle.FLUSH_BYTES`)
and without (0), alternately. Not a test.
"""

from __future__ import annotations

import argparse
import shutil
import time
from datetime import UTC, datetime, timedelta

import data  # bench/ is on sys.path when a script in it runs
import numpy as np
import pyarrow as pa

from featureline.offline import _trickle


def _batch(rng: np.random.Generator, n: int, newest: datetime, spread_s: int) -> pa.Table:
    ids = rng.integers(0, 1_000_000, n)
    ts = np.datetime64(newest.replace(tzinfo=None), "us") - rng.integers(
        0, spread_s * 1_000_000, n
    ).astype("timedelta64[us]")
    return pa.table(
        {
            "driver_id": pa.array(ids, pa.int64()),
            "event_timestamp": pa.array(ts, pa.timestamp("us")).cast(pa.timestamp("us", "UTC")),
            "rate": pa.array(rng.random(n), pa.float64()),
            "trips": pa.array(ids % 97, pa.int64()),
        }
    )


def one_round(rows: int, seconds: float, flush_bytes: int) -> dict[str, object]:
    _trickle.FLUSH_BYTES = flush_bytes
    store = data.small_driver_repo("fl-stall-", "stall")
    view = store.get_feature_view("driver_stats")
    rng = np.random.default_rng(7)
    now = datetime.now(UTC) - timedelta(seconds=1)
    for _ in range(8):  # one full tier, left unmerged
        store.offline.ingest_stored(view, _batch(rng, rows, now, 86_400), housekeeping=False)
    hk = store.offline.housekeep_in_background()
    merged: list[float] = []
    original = store.offline.compact

    def timed(*a, **k):  # type: ignore[no-untyped-def]
        s = time.perf_counter()
        got = original(*a, **k)
        if got is not None and got.rows >= rows:
            merged.extend((s, time.perf_counter()))
        return got

    store.offline.compact = timed  # type: ignore[method-assign]
    lat: list[tuple[float, float]] = []
    t0 = time.perf_counter()
    asked = False
    i = 0
    while time.perf_counter() - t0 < seconds:
        due = t0 + i / 50
        if (pause := due - time.perf_counter()) > 0:
            time.sleep(pause)
        if not asked and time.perf_counter() - t0 >= 2.0:
            hk.request(view)
            asked = True
        s = time.perf_counter()
        store.push("driver_stats", _batch(rng, 400, datetime.now(UTC), 1))
        lat.append((s, time.perf_counter() - s))
        i += 1
    hk.idle(120)
    root = store.repo_path
    store.close()
    shutil.rmtree(root.parent, ignore_errors=True)
    if len(merged) < 2:
        return {"flush_bytes": flush_bytes, "merge": "did not run"}
    start, end = merged[0], merged[1]
    during = np.array([d for s, d in lat if start <= s <= end]) * 1000
    outside = np.array([d for s, d in lat if not start <= s <= end]) * 1000

    def fig(a: np.ndarray) -> str:
        if not len(a):
            return "-"
        return f"{np.percentile(a, 50):.1f} / {np.percentile(a, 99):.1f} / {a.max():.1f} ms (n={len(a)})"

    return {
        "flush_bytes": flush_bytes,
        "merge_s": round(end - start, 2),
        "during p50/p99/max": fig(during),
        "outside p50/p99/max": fig(outside),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=650_000)
    ap.add_argument("--seconds", type=float, default=14.0)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    on = _trickle.FLUSH_BYTES
    for _ in range(args.rounds):
        for fb in (0, on):
            print(one_round(args.rows, args.seconds, fb), flush=True)


if __name__ == "__main__":
    main()
