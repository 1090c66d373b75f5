"""Aggregation kernel speed (a benchmark, not a test).

Add throughput (values/s) of 1,000,000 Float64 values in one call for count, sum, mean, stddev,
min, max (and the sketches), the cost of one small add (1 and 16 values: the stream worker's
case), and per-partial costs: merge + finalize of two sum partials, merging many tile partials
into one and finalizing once (the online read), encode and decode. Best of --repeat runs.
Prints plain text.

    python bench/bench_kernel.py
    python bench/bench_kernel.py --values 200000 --repeat 3
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from featureline.aggregation import kernel


def best(fn: Callable[[], Any], repeat: int, number: int = 1) -> float:
    """The best time of one call (seconds), over `repeat` runs of `number` calls."""
    out = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        out = min(out, (time.perf_counter() - t0) / number)
    return out


def fresh_add(k: Any, values: Any) -> Any:
    return k.add(k.empty(), values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--values", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--tiles", type=int, default=1440, help="partials merged per online read")
    args = ap.parse_args()
    n, rep = args.values, args.repeat
    rng = np.random.default_rng(0)
    x = rng.normal(100.0, 30.0, n)
    arrow = pa.array(x)
    print(f"add of {n:,} Float64 values in one call (best of {rep}):")
    for f, params in (
        ("count", None),
        ("sum", None),
        ("mean", None),
        ("stddev", None),
        ("min", None),
        ("max", None),
        ("approx_count_distinct", None),
        ("approx_percentile", {"q": 0.5}),
    ):
        k = kernel(f, "Float64", params)
        r = rep if k.exact else 1
        t = best(partial(fresh_add, k, x), r)
        ta = best(partial(fresh_add, k, arrow), r)
        print(
            f"  {f:<22} {n / t / 1e6:8.1f} M values/s (numpy)  {n / ta / 1e6:8.1f} M/s (pa.Array)"
        )
    wide = rng.standard_normal(n) * np.exp2(rng.integers(-1000, 1000, n).astype(np.float64))
    k = kernel("stddev", "Float64")
    t = best(lambda: k.add(k.empty(), wide), rep)
    print(f"  stddev, exponents over 2**+-1000 {n / t / 1e6:8.1f} M values/s")

    print("small adds (the stream worker adds an event or a few at a time):")
    one, sixteen = x[:1], pa.array(x[:16])
    for f in ("sum", "stddev", "max", "count"):
        k = kernel(f, "Float64")
        p0 = k.add(k.empty(), x[:100])
        t1 = best(partial(k.add, p0, one), rep, 2000)
        t16 = best(partial(k.add, p0, sixteen), rep, 2000)
        print(
            f"  {f:<7} 1 value (numpy) {t1 * 1e6:6.2f} us   16 values (pa.Array) {t16 * 1e6:6.2f} us"
        )

    print("per partial:")
    k = kernel("sum", "Float64")
    a = k.add(k.empty(), x[:1000])
    b = k.add(k.empty(), x[1000:2000])
    t = best(lambda: k.finalize(k.merge(a, b)), rep, 20000)
    print(f"  sum merge + finalize                {t * 1e6:6.2f} us")
    for f in ("sum", "mean", "stddev", "max", "count"):
        k = kernel(f, "Float64")
        tiles = [k.add(k.empty(), c) for c in np.array_split(x[: args.tiles * 60], args.tiles)]
        blobs = [k.encode(p) for p in tiles]

        def read(k: Any = k, tiles: list[Any] = tiles) -> Any:
            acc = k.empty()
            for p in tiles:
                acc = k.merge(acc, p)
            return k.finalize(acc)

        t = best(read, rep)
        te = best(partial(k.encode, tiles[0]), rep, 5000)
        td = best(partial(k.decode, blobs[0]), rep, 5000)
        size = sum(map(len, blobs)) / len(blobs)
        print(
            f"  {f:<7} merge {args.tiles} tiles + finalize {t * 1e6:8.1f} us "
            f"({t / args.tiles * 1e9:5.0f} ns/tile)   encode {te * 1e6:5.2f} us  "
            f"decode {td * 1e6:5.2f} us  {size:5.1f} bytes/tile"
        )


if __name__ == "__main__":
    main()
