"""Benchmark: a large file (ingested in chunks) whose rows often fail a constraint (issue 11).

Writes one Parquet file of `--rows` rows (default 20,000,000: above LARGE_FILE_ROWS, so the
write path takes the chunked way) in which a `--bad` share of the rows violates `min(0)`, then
ingests it in a fresh process into a view with a `quarantine` gate (and, with `--strict`, a
`strict` one) and prints the time, the rows landed and quarantined, and the peak RSS of that
process (ru_maxrss). Memory should track the chunk size, not the number of bad rows.

    PYTHONPATH=src python bench/bench_chunked_gate.py [--rows 20000000] [--bad 0.5] [--strict]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def _write(path: Path, rows: int, bad: float) -> None:
    rng = np.random.default_rng(7)
    t0 = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1e6)
    step = 2_000_000
    with pq.ParquetWriter(
        path,
        pa.schema(
            [
                ("card_id", pa.int64()),
                ("event_timestamp", pa.timestamp("us", tz="UTC")),
                ("amount", pa.float64()),
            ]
        ),
    ) as w:
        for lo in range(0, rows, step):
            n = min(step, rows - lo)
            amount = rng.random(n) * 100
            amount[rng.random(n) < bad] = -1.0
            w.write_table(
                pa.table(
                    {
                        "card_id": pa.array(np.arange(lo, lo + n) % 1_000_000, pa.int64()),
                        "event_timestamp": pa.array(
                            t0 + np.arange(lo, lo + n, dtype=np.int64) * 1000,
                            pa.timestamp("us", tz="UTC"),
                        ),
                        "amount": amount,
                    }
                )
            )


CHILD = """
import json, resource, sys, time
from datetime import timedelta
import featureline as fl
root, path, gate = sys.argv[1:4]
fl.init_repo(root, project="bench", with_data=False)
store = fl.FeatureStore(root)
card = fl.Entity("card", ["card_id"])
view = fl.FeatureView("pay", entities=[card],
    schema=[fl.Field("card_id", fl.Int64), fl.Field("amount", fl.Float64, constraints=[fl.Check.min(0)])],
    gate=gate, ttl=timedelta(days=3650), online=False)
store.apply([card, view])
t = time.perf_counter()
out = {}
try:
    r = store.ingest("pay", path)
    out.update(rows=r.rows, quarantined=r.quarantined)
except fl.errors.ConstraintViolationError as e:
    out.update(refused=e.report["violating_rows"], of=e.report["rows"])
out["seconds"] = time.perf_counter() - t
out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20_000_000)
    ap.add_argument("--bad", type=float, default=0.5)
    ap.add_argument("--strict", action="store_true")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fl-chunked-gate-"))
    try:
        path = tmp / "big.parquet"
        t = time.perf_counter()
        _write(path, a.rows, a.bad)
        print(f"wrote {a.rows:,} rows ({a.bad:.0%} bad) in {time.perf_counter() - t:.1f} s")
        for gate in ["quarantine", *(["strict"] if a.strict else [])]:
            root = tmp / f"repo-{gate}"
            p = subprocess.run(
                [sys.executable, "-c", CHILD, str(root), str(path), gate],
                capture_output=True,
                text=True,
                env=os.environ,
                check=False,
            )
            if p.returncode:
                print(p.stderr[-3000:])
                continue
            print(f"[{gate}] {json.loads(p.stdout.strip().splitlines()[-1])}")
            shutil.rmtree(root, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
