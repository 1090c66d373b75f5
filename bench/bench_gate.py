"""Benchmark: the ingestion gate's cost (issue 11: at most 20% of ingestion throughput with 5
constraints per view), measured in one run on the same batch.

  plain      `store.ingest` of N rows into a view without constraints
  gated      the same rows into a view with 5 constraints (not_null, min, max, isin, one SQL
             check), every row passing
  gated+q    the same, with 1% of the rows violating (they are quarantined: filter + a file)
  gated+7    7 constraints (the 5 plus a regex and the unique key per event time)
  evaluate   the constraint evaluation alone (featureline.quality.evaluate), 5 constraints

Runs alternate (plain, gated, ...) `--repeat` times; the median of each is reported.

    PYTHONPATH=src python bench/bench_gate.py [--rows 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

import featureline as fl
from featureline.quality import evaluate

CITIES = ["ams", "ber", "cdg", "dub", "ewr"]


def _batch(n: int, bad_fraction: float, seed: int = 7) -> pa.Table:
    rng = np.random.default_rng(seed)
    start = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1e6)
    f0 = rng.random(n) * 100
    if bad_fraction:
        f0[rng.random(n) < bad_fraction] = -1.0  # violates min 0
    return pa.table(
        {
            "entity_id": pa.array(rng.integers(0, 100_000, n), pa.int64()),
            # distinct event times: the unique key never fails
            "event_timestamp": pa.array(start + np.arange(n), pa.timestamp("us", tz="UTC")),
            "f0": pa.array(f0),
            "f1": pa.array(rng.random(n) * 1000),
            "f2": pa.array(rng.random(n)),
            "city": pa.array(np.array(CITIES, dtype=object)[rng.integers(0, 5, n)], pa.string()),
        }
    )


def _views() -> tuple[fl.Entity, list[fl.FeatureView]]:
    e = fl.Entity("entity", ["entity_id"])

    def view(name: str, five: bool, extra: bool) -> fl.FeatureView:
        c0 = [fl.Check.not_null(), fl.Check.min(0)] if five else []
        c1 = [fl.Check.max(1_000_000)] if five else []
        city = [fl.Check.isin(CITIES)] if five else []
        if extra:
            city.append(fl.Check.regex("^[a-z]{3}$"))
        checks = [fl.Check.sql("f2_ok", "f2 < f1 + 1")] if five else []
        if extra:
            checks.append(fl.Check.unique())
        return fl.FeatureView(
            name,
            entities=[e],
            schema=[
                fl.Field("entity_id", fl.Int64),
                fl.Field("f0", fl.Float64, constraints=c0),
                fl.Field("f1", fl.Float64, constraints=c1),
                fl.Field("f2", fl.Float64),
                fl.Field("city", fl.String, constraints=city),
            ],
            checks=checks,
            online=False,
        )

    return e, [
        view("plain", False, False),
        view("gated", True, False),
        view("gated_q", True, False),
        view("gated7", True, True),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_gate_"))
    try:
        fl.init_repo(tmp / "repo", project="gatebench", with_data=False)
        (tmp / "repo" / "definitions.py").unlink()
        store = fl.FeatureStore(tmp / "repo")
        e, views = _views()
        store.apply([e, *views])
        clean, dirty = _batch(args.rows, 0.0), _batch(args.rows, 0.01)
        plan = [
            ("plain", "plain", clean),
            ("gated", "gated", clean),
            ("gated+q", "gated_q", dirty),
            ("gated+7", "gated7", clean),
        ]
        times: dict[str, list[float]] = {label: [] for label, _, _ in plan}
        quarantined = 0
        store.ingest("plain", clean.slice(0, 1000))  # warm up imports and caches
        for _ in range(args.repeat):
            for label, view, batch in plan:
                t0 = time.perf_counter()
                r = store.ingest(view, batch)
                times[label].append(time.perf_counter() - t0)
                assert r.rows + r.quarantined == batch.num_rows
                if label == "gated+q":
                    quarantined = r.quarantined
        gated_view = store.get_feature_view("gated")
        ev = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            evaluate(gated_view, clean)
            ev.append(time.perf_counter() - t0)
        store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["plain"]
    print(f"rows per batch: {args.rows:,}; repeats: {args.repeat} (medians)")
    for label, _, _ in plan:
        t = med[label]
        rate = args.rows / t
        cost = (t - base) / t * 100 if label != "plain" else 0.0
        print(
            f"  {label:8s} {t * 1000:8.1f} ms  {rate / 1e6:6.2f} M rows/s"
            + (f"  gate cost {cost:5.1f}% of throughput" if label != "plain" else "")
        )
    print(f"  gated+q quarantined {quarantined:,} rows per batch")
    e5 = statistics.median(ev)
    print(
        f"  evaluate (5 constraints) {e5 * 1000:.1f} ms = {e5 / base * 100:.1f}% of a plain ingest"
    )
    cost5 = (med["gated"] - base) / med["gated"] * 100
    print(f"target: gate cost <= 20% with 5 constraints -> {'met' if cost5 <= 20 else 'MISSED'}")


if __name__ == "__main__":
    main()
