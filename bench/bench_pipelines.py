"""Benchmark: pipeline runner overhead with trivial steps (not a test).

* a 10-step linear pipeline and a 20-way fan-out with collect (22 tasks) on the `process`
  executor: wall time from the `run()` call to its result, after one warm-up run of the pool;
* per-step overhead with `inline` (a 50-step chain: wall time / steps);
* a fully cached re-run of the 10-step pipeline and of the fan-out.

Each figure is the median of 5 runs, each into a fresh artifact root (no cache) unless it is
the cached re-run. Targets: 0.5 s, 1 s, 10 ms, 0.2 s.

    PYTHONPATH=src python bench/bench_pipelines.py
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from featureline.pipelines.dsl import Pipeline, pipeline, step
from featureline.pipelines.executors.inline import InlineExecutor
from featureline.pipelines.executors.process import ProcessExecutor
from featureline.pipelines.runner import run

RUNS = 5


@step
def inc(x: int) -> int:
    return x + 1


@step
def numbers(n: int) -> list[int]:
    return list(range(n))


@step
def square(x: int) -> int:
    return x * x


@step
def total(xs: list[int]) -> int:
    return sum(xs)


def chain(steps: int) -> Pipeline:
    def body(x: int = 0) -> None:
        h: Any = x
        for _ in range(steps):
            h = inc(h)

    body.__name__ = f"chain{steps}"
    return pipeline(body)


@pipeline
def fan(n: int = 20) -> None:
    total(square.map(items=numbers(n)))


def _timed(
    p: Pipeline, executor: Any, root: Path, params: dict[str, Any] | None = None, cache: bool = True
) -> float:
    t0 = time.perf_counter()
    r = run(p, params, executor=executor, artifact_root=root, cache=cache)
    elapsed = time.perf_counter() - t0
    if r.status != "succeeded":
        raise SystemExit(f"benchmark run failed: {r.errors}")
    return elapsed


def _median(
    p: Pipeline, executor: Any, base: Path, tag: str, params: dict[str, Any] | None = None
) -> float:
    times = [_timed(p, executor, base / f"{tag}{i}", params) for i in range(RUNS)]
    return statistics.median(times)


def _cached(p: Pipeline, executor: Any, base: Path, tag: str) -> float:
    root = base / tag
    _timed(p, executor, root)
    return statistics.median(_timed(p, executor, root) for _ in range(RUNS))


def measure(base: Path) -> dict[str, float]:
    linear10, linear50 = chain(10), chain(50)
    out: dict[str, float] = {}
    with ProcessExecutor() as pe:
        t0 = time.perf_counter()
        _timed(fan, pe, base / "warm")  # warm-up: workers import the steps' module and pyarrow
        out["warmup_s"] = time.perf_counter() - t0
        out["linear_s"] = _median(linear10, pe, base, "lin")
        out["fan_s"] = _median(fan, pe, base, "fan")
        out["cached_linear_s"] = _cached(linear10, pe, base, "clin")
        out["cached_fan_s"] = _cached(fan, pe, base, "cfan")
    inline = InlineExecutor()
    _timed(linear10, inline, base / "iwarm")
    out["inline_step_ms"] = _median(linear50, inline, base, "inl") / 50 * 1000
    return out


def main() -> int:
    print(f"pipeline runner benchmark; Python {platform.python_version()}, {os.cpu_count()} CPUs")
    base = Path(tempfile.mkdtemp(prefix="featureline-bench-"))
    try:
        m = measure(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    rows = [
        ("process: 10-step linear", f"{m['linear_s']:.3f} s", "<= 0.5 s", m["linear_s"] <= 0.5),
        ("process: 20-way fan-out + collect", f"{m['fan_s']:.3f} s", "<= 1 s", m["fan_s"] <= 1.0),
        (
            "inline: per-step overhead",
            f"{m['inline_step_ms']:.2f} ms",
            "<= 10 ms",
            m["inline_step_ms"] <= 10,
        ),
        (
            "cached re-run: 10-step linear",
            f"{m['cached_linear_s']:.3f} s",
            "<= 0.2 s",
            m["cached_linear_s"] <= 0.2,
        ),
        (
            "cached re-run: fan-out",
            f"{m['cached_fan_s']:.3f} s",
            "<= 0.2 s",
            m["cached_fan_s"] <= 0.2,
        ),
    ]
    for name, value, target, ok in rows:
        print(f"  {name:<36} {value:>10}   target {target:<9} {'ok' if ok else 'MISSED'}")
    print(f"  (first run on a fresh pool, untimed above: {m['warmup_s']:.2f} s)")
    return 0 if all(r[3] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
