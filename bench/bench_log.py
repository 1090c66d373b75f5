"""The cost of one commit and the reads a push makes of the view log, by the log's length.

    PYTHONPATH=src python bench/bench_log.py [--lengths 1000,10000,30000] [--rounds 200]

A stream worker appends ~50 commits a second (one per batch) and the automatic merges replace
them, so after 10 minutes the log of a view holds ~30,000 lines. For each length, the log is
first written as JSON lines (commits with idempotency keys, every 8 replaced by a merge, as a
worker's log looks), then each round appends one commit through `ViewLog.commit` (fsync
included) and makes the reads of a push: `live_commits()` and `find_key()`. Prints the median
and p99 per round. Compare two checkouts with PYTHONPATH. Not a test: prints figures only.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

import featureline
from featureline.offline._log import LOG, Commit, Part, ViewLog


def _prefix(root: Path, n: int) -> None:
    """`n` commits as a worker leaves them: pushes with keys, each 8 merged into one."""
    lines, live, seq = [], [], 0
    for i in range(n):
        seq += 1
        meta = {"idempotency_key": f"stream:redis:{i:040d}", "batch_id": f"{i:032x}"}
        lines.append(Commit(seq, 1_700_000_000_000_000 + seq, [Part(f"p/{seq}", 400)], 400, meta))
        live.append(seq)
        if len(live) == 8:
            seq += 1
            lines.append(
                Commit(
                    seq,
                    1_700_000_000_000_000 + seq,
                    [Part(f"p/{seq}", 3200, True)],
                    3200,
                    {"compaction": True},
                    list(live),
                )
            )
            live = []
    root.mkdir(parents=True, exist_ok=True)
    (root / LOG).write_text("".join(c.to_json() + "\n" for c in lines))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", default="1000,10000,30000")
    ap.add_argument("--rounds", type=int, default=200)
    args = ap.parse_args()
    print(f"featureline from {Path(featureline.__file__).parent}")
    for n in (int(x) for x in args.lengths.split(",")):
        tmp = Path(tempfile.mkdtemp(prefix="fl-log-"))
        try:
            _prefix(tmp, n)
            log = ViewLog(tmp)
            log.live_commits()  # the first read parses the whole file (a worker's start-up)
            took = []
            for r in range(args.rounds):
                t = time.perf_counter()
                log.commit(lambda: [Part("p/new", 400)], meta={}, idempotency_key=f"new{r}")
                log.live_commits()
                log.find_key(f"new{r}")
                log.live_commits()
                took.append(time.perf_counter() - t)
            ms = np.array(took) * 1e3
            print(
                f"log of {n:>6,} commits: commit + reads p50 {np.percentile(ms, 50):.2f} ms, "
                f"p99 {np.percentile(ms, 99):.2f} ms"
            )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
