"""Benchmark: the `supersedes` figure of a large file's chunked ingest (issue 12, statistics).

Stores `--stored` rows (default 4,000,000) in a view, then ingests, in a fresh process, one
Parquet file of `--rows` rows (default 20,000,000: above LARGE_FILE_ROWS, so the write path
takes the chunked way) in which every tenth row repeats a pair (keys, event time) of the file
and half of the stored rows' pairs occur again. Prints, per code: the ingest's time, the peak
RSS of that process (ru_maxrss), the figure its commit recorded (expected: the file's ties plus
the stored pairs it overwrites) and the time of the view's statistics afterwards (without a
figure on every commit they scan the keys). `--base REV` measures the code at REV too (a git
worktree at /tmp/flbase_cs, its `src` on PYTHONPATH, removed afterwards).

    PYTHONPATH=src python bench/bench_chunked_supersedes.py [--rows N] [--stored N] [--base REV]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

KEYS = 1_000_000  # pair j is (key j % KEYS, hour j // KEYS)
T0 = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
HOUR = 3_600_000_000


def pairs_table(j: np.ndarray) -> pa.Table:
    return pa.table(
        {
            "driver_id": pa.array(j % KEYS, pa.int64()),
            "event_timestamp": pa.array(T0 + (j // KEYS) * HOUR, pa.timestamp("us", tz="UTC")),
            "rate": pa.array(np.random.default_rng(int(j[0])).random(len(j))),
        }
    )


def write_file(path: Path, rows: int) -> int:
    """Rows r: pair 9 (r // 10) + r % 10, but the tenth of each ten repeats the first. Returns
    the number of distinct pairs."""
    step = 2_000_000
    with pq.ParquetWriter(path, pairs_table(np.arange(1)).schema) as w:
        for lo in range(0, rows, step):
            r = np.arange(lo, min(rows, lo + step), dtype=np.int64)
            g, o = r // 10, r % 10
            w.write_table(pairs_table(g * 9 + np.where(o < 9, o, 0)))
    return (rows // 10) * 9 + min(rows % 10, 9)


SETUP = """
import sys
from datetime import timedelta
import numpy as np
import featureline as fl
sys.path.insert(0, sys.argv[3])
from bench_chunked_supersedes import pairs_table
root, first, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[4])
fl.init_repo(root, project="bench", with_data=False)
store = fl.FeatureStore(root)
driver = fl.Entity("driver", ["driver_id"])
view = fl.FeatureView("stats", entities=[driver], schema=[fl.Field("driver_id", fl.Int64),
    fl.Field("rate", fl.Float64)], ttl=timedelta(days=3650), online=False)
store.apply([driver, view])
store.ingest("stats", pairs_table(np.arange(first, first + n, dtype=np.int64)))
"""

CHILD = """
import json, resource, sys, time
import featureline as fl
root, path = sys.argv[1:3]
store = fl.FeatureStore(root)
t = time.perf_counter()
r = store.ingest("stats", path)
out = {"featureline": fl.__file__, "rows": r.rows, "seconds": round(time.perf_counter() - t, 2)}
out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
out["supersedes"] = store.offline.commits("stats", 1)[-1].meta.get("supersedes")
fv = store.get_feature_view("stats")
t = time.perf_counter()
out["superseded_rows"] = store.offline.profile(fv)["superseded_rows"]
out["stats_seconds"] = round(time.perf_counter() - t, 2)
print(json.dumps(out))
"""


def run(src: Path, repo: Path, path: Path) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    p = subprocess.run(
        [sys.executable, "-c", CHILD, str(repo), str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if p.returncode:
        raise SystemExit(p.stderr[-3000:])
    out: dict[str, object] = json.loads(p.stdout.strip().splitlines()[-1])
    if not str(out["featureline"]).startswith(str(src)):
        raise SystemExit(f"the child imported {out['featureline']}, not the code under {src}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20_000_000)
    ap.add_argument("--stored", type=int, default=4_000_000)
    ap.add_argument("--base", help="also measure the code at this git revision")
    a = ap.parse_args()
    here = Path(__file__).resolve().parent
    new_src = here.parent / "src"
    tmp = Path(tempfile.mkdtemp(prefix="fl-chunked-sup-"))
    old = Path("/tmp/flbase_cs")
    try:
        path = tmp / "big.parquet"
        distinct = write_file(path, a.rows)
        first = distinct - a.stored // 2  # half the stored pairs are the file's last ones
        setup = tmp / "setup"
        subprocess.run(
            [sys.executable, "-c", SETUP, str(setup), str(first), str(here), str(a.stored)],
            env={**os.environ, "PYTHONPATH": str(new_src)},
            check=True,
        )
        expected = (a.rows - distinct) + min(a.stored, distinct - first)
        print(f"{a.rows:,} rows ({a.rows - distinct:,} in-file ties) onto {a.stored:,} stored")
        print(f"expected figure: {expected:,}")
        codes = [("new", new_src)]
        if a.base:
            subprocess.run(
                ["git", "-C", str(here.parent), "worktree", "add", "--detach", str(old), a.base],
                check=True,
                capture_output=True,
            )
            codes.insert(0, (f"old {a.base}", old / "src"))
        for name, src in codes:
            repo = tmp / "repo"
            shutil.copytree(setup, repo)
            print(f"[{name}] {json.dumps(run(src, repo, path))}")
            shutil.rmtree(repo)
    finally:
        if a.base:
            subprocess.run(
                ["git", "-C", str(here.parent), "worktree", "remove", "--force", str(old)],
                check=False,
            )
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
