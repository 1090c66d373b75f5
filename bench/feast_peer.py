"""Feast's side of bench/bench_vs_feast.py (a benchmark, not a test). It never imports featureline.

Run it with a Python that has Feast installed, outside this repo's environment, e.g.

    python3 -m venv /tmp/feastenv && /tmp/feastenv/bin/pip install 'feast==0.67.*'
    /tmp/feastenv/bin/python bench/feast_peer.py --features bench/.data/features.parquet [--rows 1000000]

It builds a Feast repo in a temporary folder (or --repo DIR, kept): local provider, SQLite online
store, file offline store, one entity `entity_id` and one feature view `bench_features` (f0..f4,
Float64, no TTL) over the same Parquet file as featureline's benchmark (entity_id,
event_timestamp, created, f0..f4). Then, one piece of work per step:

  * `FeatureStore.apply` (in a child process);
  * `FeatureStore.materialize` over the full event-time range of the data, timed in a child
    process that does only that and reports its peak RSS (ru_maxrss and VmHWM);
  * in-process `get_online_features(...).to_dict()` latency, p50/p99 in microseconds, for
    1 entity x 5 features and 100 entities x 5 features, random existing keys, after a warm-up.

--rows N materializes only the first N rows of the file (by event time) when the full file is too
slow or heavy for the machine. Prints plain text; --json-out PATH also writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("FEAST_USAGE", "False")  # no telemetry

VIEW = "bench_features"
KEY = "entity_id"
FEATURES = [f"f{i}" for i in range(5)]
SAMPLE_KEYS = 100  # keys whose values are reported, to cross-check against featureline

FEATURE_STORE_YAML = """\
project: {project}
registry: data/registry.db
provider: local
online_store:
  type: sqlite
  path: data/online_store.db
offline_store:
  type: file
entity_key_serialization_version: 3
"""


def _vmhwm_mib() -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _objects(source_path: str) -> list[Any]:
    from datetime import timedelta

    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, Int64

    entity = Entity(name="entity", join_keys=[KEY], value_type=ValueType.INT64)
    source = FileSource(
        name="bench_source",
        path=source_path,
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
    )
    view = FeatureView(
        name=VIEW,
        entities=[entity],
        ttl=timedelta(0),  # no TTL, like featureline's view: the data is from 2024
        schema=[Field(name=KEY, dtype=Int64), *(Field(name=f, dtype=Float64) for f in FEATURES)],
        source=source,
        online=True,
    )
    return [entity, source, view]


def _time_range(source_path: str) -> tuple[Any, Any]:
    """[min event time, max event time + 1 s] of the file, from Parquet statistics when present."""
    from datetime import timedelta

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    col = pq.read_table(source_path, columns=["event_timestamp"]).column("event_timestamp")
    mm = pc.min_max(col)
    lo, hi = mm["min"].as_py(), mm["max"].as_py()
    return lo - timedelta(seconds=1), hi + timedelta(seconds=1)


# -- child processes: one piece of work each -------------------------------------------------------


def _child(kind: str, repo: str, source_path: str) -> dict[str, Any]:
    import logging

    logging.disable(logging.WARNING)
    from feast import FeatureStore

    t0 = time.perf_counter()
    store = FeatureStore(repo_path=repo)
    out: dict[str, Any] = {"kind": kind}
    if kind == "apply":
        store.apply(_objects(source_path))
    elif kind == "materialize":
        start, end = _time_range(source_path)
        t1 = time.perf_counter()
        store.materialize(start_date=start, end_date=end)
        out["materialize_seconds"] = time.perf_counter() - t1
        out["start"], out["end"] = start.isoformat(), end.isoformat()
    else:
        raise SystemExit(f"unknown child `{kind}`")
    out["seconds"] = time.perf_counter() - t0
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["vmhwm_mib"] = _vmhwm_mib()
    return out


def run_child(kind: str, repo: Path, source: Path) -> dict[str, Any]:
    """Spawned while this process is still small (its ru_maxrss is the floor of the child's)."""
    p = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(repo), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    if p.returncode != 0:
        raise RuntimeError(f"feast child `{kind}` failed:\n{p.stdout[-3000:]}\n{p.stderr[-5000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# -- in-process online reads -------------------------------------------------------------------------


def latencies_us(fn: Any, samples: list[Any], warmup: int) -> dict[str, float]:
    for s in samples[:warmup]:
        fn(s)
    clock = time.perf_counter_ns
    out = []
    for s in samples:
        t0 = clock()
        fn(s)
        out.append(clock() - t0)
    out.sort()
    return {
        "p50_us": out[len(out) // 2] / 1000,
        "p99_us": out[min(len(out) - 1, int(len(out) * 0.99))] / 1000,
        "mean_us": sum(out) / len(out) / 1000,
        "calls": len(out),
    }


def online_reads(
    repo: Path, keys: list[int], calls1: int, calls100: int, seed: int
) -> dict[str, Any]:
    import logging

    logging.disable(logging.WARNING)
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(repo))
    refs = [f"{VIEW}:{f}" for f in FEATURES]
    rng = random.Random(seed)

    def read(rows: list[dict[str, int]]) -> dict[str, list[Any]]:
        return store.get_online_features(features=refs, entity_rows=rows).to_dict()  # type: ignore[no-any-return]

    one = [[{KEY: rng.choice(keys)}] for _ in range(calls1)]
    hundred = [[{KEY: k} for k in rng.sample(keys, 100)] for _ in range(calls100)]
    res: dict[str, Any] = {}
    res["one"] = latencies_us(read, one, warmup=min(500, calls1))
    res["hundred"] = latencies_us(read, hundred, warmup=min(100, calls100))
    # sanity: every key read exists; and values of fixed keys for the cross-check
    got = read(hundred[0])
    res["missing_in_check"] = sum(v is None for v in got[FEATURES[0]])
    sample = sorted(random.Random(7).sample(keys, min(SAMPLE_KEYS, len(keys))))
    vals = read([{KEY: k} for k in sample])
    res["sample"] = {str(k): [vals[f][i] for f in FEATURES] for i, k in enumerate(sample)}
    return res


def write_head(src: Path, dst: Path, rows: int) -> None:
    """The first `rows` rows of `src` (earliest event times), streamed in batches."""
    import pyarrow.parquet as pq

    f = pq.ParquetFile(src)
    left = rows
    with pq.ParquetWriter(dst, f.schema_arrow, compression="zstd") as w:
        for batch in f.iter_batches(batch_size=1 << 16):
            w.write_batch(batch.slice(0, left))
            left -= min(left, batch.num_rows)
            if left == 0:
                break


# -- the benchmark -----------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        print(json.dumps(_child(argv[1], argv[2], argv[3])))
        return 0
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--features", type=Path, required=True, help="Parquet file of bench/data.py.")
    ap.add_argument("--rows", type=int, default=0, help="Only the first N rows (0 = all).")
    ap.add_argument(
        "--repo", type=Path, help="Build the Feast repo here and keep it (default: a temp folder)."
    )
    ap.add_argument("--calls", type=int, default=5000, help="Timed 1-entity calls.")
    ap.add_argument("--calls-100", type=int, default=1000, help="Timed 100-entity calls.")
    ap.add_argument("--json-out", type=Path, help="Also write the figures here as JSON.")
    args = ap.parse_args(argv)

    from importlib.metadata import version

    import pyarrow.parquet as pq  # no feast import here before the RSS child has run

    feast_version = version("feast")
    features = args.features.resolve()
    total_rows = pq.ParquetFile(features).metadata.num_rows
    own_tmp = args.repo is None
    repo = Path(tempfile.mkdtemp(prefix="feast-peer-")) if own_tmp else args.repo.resolve()
    try:
        (repo / "data").mkdir(parents=True, exist_ok=True)
        project = "flbench_feast"
        (repo / "feature_store.yaml").write_text(FEATURE_STORE_YAML.format(project=project))
        source = features
        rows = total_rows
        if args.rows and args.rows < total_rows:
            rows = args.rows
            source = repo / "data" / "features_subset.parquet"
            write_head(features, source, rows)
        print(f"Feast {feast_version}: repo {repo}; {rows:,} of {total_rows:,} rows")

        ap_res = run_child("apply", repo, source)
        print(f"  apply: {ap_res['seconds']:.1f} s")
        mat = run_child("materialize", repo, source)
        mat_s = mat["materialize_seconds"]
        print(
            f"  materialize {mat['start']} .. {mat['end']}: {mat_s:.1f} s = {rows / mat_s:,.0f} rows/s  "
            f"(child process total {mat['seconds']:.1f} s); peak RSS {mat['peak_rss_mib']:,.0f} MiB "
            f"(VmHWM {mat['vmhwm_mib']:,.0f} MiB)"
        )
        import pyarrow.compute as pc

        keys = sorted(pc.unique(pq.read_table(source, columns=[KEY]).column(KEY)).to_pylist())
        reads = online_reads(repo, keys, args.calls, args.calls_100, seed=1)
        for label, r in (
            ("1 entity x 5 features", reads["one"]),
            ("100 entities x 5 features", reads["hundred"]),
        ):
            print(
                f"  get_online_features {label:<26} p50 {r['p50_us']:9.1f} us  p99 {r['p99_us']:9.1f} us  "
                f"mean {r['mean_us']:9.1f} us  ({r['calls']:,} calls)"
            )
        if reads["missing_in_check"]:
            print(f"  WARNING: {reads['missing_in_check']} of 100 existing keys read as missing")
        out = {
            "feast_version": feast_version,
            "repo": str(repo),
            "project": project,
            "rows": rows,
            "total_rows": total_rows,
            "entities": len(keys),
            "apply_s": ap_res["seconds"],
            "materialize_s": mat_s,
            "materialize_rows_per_s": rows / mat_s,
            "materialize_rss_mib": mat["peak_rss_mib"],
            "materialize_vmhwm_mib": mat["vmhwm_mib"],
            "online_1": reads["one"],
            "online_100": reads["hundred"],
            "missing_in_check": reads["missing_in_check"],
            "sample": reads["sample"],
        }
        if args.json_out:
            args.json_out.write_text(json.dumps(out))
    finally:
        if own_tmp:
            shutil.rmtree(repo, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
