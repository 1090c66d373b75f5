"""Run every benchmark once and print a summary table (plain text, figures with units).

    PYTHONPATH=src python bench/run_all.py [--small]

Full size takes a few minutes on 2 cores and about 2 GB of disk under bench/.data/ and /tmp.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import bench_startup  # noqa: E402  (bench/ is not a package)
import bench_training_set  # noqa: E402


def main(argv: list[str]) -> int:
    small = "--small" in argv
    print(
        f"featureline benchmarks ({'small smoke size' if small else 'full size'}); Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    print("\n== start-up ==")
    st = bench_startup.run()
    print("\n== point-in-time training set ==")
    tr = bench_training_set.run(small=small)

    rows = [
        ("python -c pass (floor)", f"{st['python_ms']:.0f} ms", "median of 10"),
        ("import featureline", f"{st['import_ms']:.0f} ms", "median of 10"),
        (st["help_label"].split(" (")[0], f"{st['help_ms']:.0f} ms", "median of 10"),
        (
            "(a) DuckDB ASOF LEFT JOIN, no ties/TTL",
            f"{tr['asof_s']:.2f} s",
            f"peak RSS {tr['rss_asof_mib']:,.0f} MiB",
        ),
        ("(b) DuckDB dedup ties + ASOF", f"{tr['ties_s']:.2f} s", ""),
        (
            "(c) featureline ingest",
            f"{tr['ingest_s']:.2f} s",
            f"{tr['ingest_rows_per_s']:,.0f} rows/s; peak RSS {tr['rss_ingest_mib']:,.0f} MiB",
        ),
        (
            "(d) featureline get_training_set",
            f"{tr['training_s']:.2f} s",
            f"{tr['ratio_vs_asof']:.2f} x (a), {tr['ratio_vs_ties']:.2f} x (b); peak RSS {tr['rss_training_mib']:,.0f} MiB",
        ),
        (
            "check vs DuckDB (b)+TTL",
            "ok" if tr["ok"] else "FAILED",
            f"{tr['entity_rows']:,} rows; {tr['nonnull']:,} non-null (expected {tr['expected_nonnull']:,})",
        ),
    ]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    print(
        f"\n== summary ({tr['feature_rows']:,} feature rows, {tr['entity_rows']:,} entity rows; best of 3 after a warm-up) =="
    )
    print(f"{'benchmark':<{w0}}  {'time':>{w1}}  notes")
    for name, value, note in rows:
        print(f"{name:<{w0}}  {value:>{w1}}  {note}".rstrip())
    return 0 if tr["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
