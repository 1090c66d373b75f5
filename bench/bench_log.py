"""The cost of one commit and the reads a push makes of the view log, by the log's length.

    PYTHONPATH=src python bench/bench_log.py [--lengths 1000,10000,30000] [--rounds 200]

A stream worker appends ~50 commits a second (one per batch) and the automatic merges replace
them, so after 10 minutes the log of a view holds ~30,000 lines. For each length, the log is
first written as JSON lines (commits with idempotency keys, every 8 replaced by a merge, as a
worker's log looks), then each round appends one commit through `ViewLog.commit` (fsync
included) and makes the reads of a push: `live_commits()` and `find_key()`. Prints the median
and p99 per round. Compare two checkouts with PYTHONPATH. Not a test: prints figures only.

With `--checkpoint`, the commit that brings the log to `CHECKPOINT_LINES` (set to its length)
is timed apart, and the file's size and a new process's first read (start-up) are printed
before and after that rewrite (every replaced commit is within the 2 h vacuum window, so the
header holds all their files: the worst case).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

import featureline
from featureline.offline import _log
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
    ap.add_argument("--checkpoint", action="store_true")
    args = ap.parse_args()
    print(f"featureline from {Path(featureline.__file__).parent}")
    for n in (int(x) for x in args.lengths.split(",")):
        tmp = Path(tempfile.mkdtemp(prefix="fl-log-"))
        try:
            _prefix(tmp, n)
            t = time.perf_counter()
            log = ViewLog(tmp)
            log.live_commits()  # the first read parses the whole file (a worker's start-up)
            first = time.perf_counter() - t
            size = (tmp / LOG).stat().st_size
            print(
                f"log of {n:>6,} commits: {size / 2**20:.1f} MiB, first read {first * 1e3:.0f} ms"
            )
            if args.checkpoint and hasattr(_log, "CHECKPOINT_LINES"):
                _log.CHECKPOINT_LINES = n
                t = time.perf_counter()
                log.commit(lambda: [Part("p/new", 400)], meta={}, idempotency_key="ckpt")
                took_ms = (time.perf_counter() - t) * 1e3
                t = time.perf_counter()
                ViewLog(tmp).live_commits()
                again = (time.perf_counter() - t) * 1e3
                size = (tmp / LOG).stat().st_size
                print(
                    f"  the commit that checkpoints it: {took_ms:.0f} ms; then {size / 2**20:.1f}"
                    f" MiB, first read {again:.0f} ms"
                )
                _log.CHECKPOINT_LINES = 10**12
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
