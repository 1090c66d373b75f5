"""Online serving through the public API, on the data of bench/data.py (a benchmark, not a test).

One feature view `bench_features` (key entity_id, f0..f4 Float64, created time, no TTL) over
bench/.data/features.parquet (100,000 entities x 100 events + ~10% corrections, ~11M rows):

  * materialization of all ingested rows into the embedded (SQLite) online store and into Redis:
    seconds, offline rows scanned per second, keys written. Each runs in a fresh child process
    that only opens the store and calls `materialize_incremental()` (the ingest happened before,
    in another child), and reports its peak RSS (ru_maxrss, and VmHWM as a cross-check);
  * in-process `get_online_features(...).to_dict()` latency, p50/p99 in microseconds: 1 entity
    x 5 features (5,000 calls after 500 warm-up calls, random existing keys) on both stores, and
    100 entities x 5 features (1,000 calls) on both.

The Redis store uses a unique project name (its key prefix); its keys are deleted afterwards.
Both repos share one registry and offline store (the Redis repo's featureline.yaml points at
the embedded repo's files), so the rows are ingested once.

    PYTHONPATH=src python bench/bench_online.py [--small] [--no-redis] [--redis-url URL]
        [--work DIR]  (keep the repos there, e.g. to serve them)  [--json-out PATH]
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
import uuid
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO_SRC = BENCH.parent / "src"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import data  # noqa: E402  (bench/ is not a package)

VIEW = "bench_features"
KEY = "entity_id"
FEATURES = [f"f{i}" for i in range(data.Params().features)]
REFS = [f"{VIEW}:{f}" for f in FEATURES]
SAMPLE_KEYS = 100  # keys whose values are reported, to cross-check against Feast
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def _import_featureline() -> Any:
    """featureline from the environment, else from this checkout's src/ (children inherit it)."""
    try:
        import featureline
    except ModuleNotFoundError:
        sys.path.insert(0, str(REPO_SRC))
        os.environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(REPO_SRC), os.environ.get("PYTHONPATH")])
        )
        import featureline
    return featureline


def _vmhwm_mib() -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def definitions(fl: Any, features: str) -> list[Any]:
    entity = fl.Entity("entity", join_keys=[KEY])
    view = fl.FeatureView(
        VIEW,
        entities=[entity],
        schema=[fl.Field(KEY, fl.Int64), *(fl.Field(f, fl.Float64) for f in FEATURES)],
        source=fl.FileSource(
            features, timestamp_field="event_timestamp", created_timestamp_field="created"
        ),
        ttl=None,  # the data is from 2024; with a TTL everything would be expired "now"
    )
    return [entity, view]


def redis_repo(embedded: Path, dest: Path, project: str, url: str) -> None:
    """A repo over the embedded repo's registry and offline store, with a Redis online store."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "featureline.yaml").write_text(
        f"project: {project}\n"
        f"registry: {embedded / 'data' / 'registry.db'}\n"
        f"offline_store:\n  path: {embedded / 'data' / 'offline'}\n"
        f"online_store:\n  type: redis\n  url: {url}\n"
    )


# -- child processes: one piece of work each, reporting their peak RSS ---------------------------


def _child(kind: str, args: list[str]) -> dict[str, Any]:
    fl = _import_featureline()
    t0 = time.perf_counter()
    out: dict[str, Any] = {"kind": kind}
    if kind == "ingest":  # args: repo, project, features parquet
        root, project, features = Path(args[0]), args[1], args[2]
        fl.init_repo(root, project=project, with_data=False)
        (root / "definitions.py").unlink()
        with fl.FeatureStore(root) as store:
            store.apply(definitions(fl, features), message="bench")
            t1 = time.perf_counter()
            out["rows"] = store.ingest(VIEW, features).rows
            out["ingest_seconds"] = time.perf_counter() - t1
    elif kind == "materialize":  # args: repo
        with fl.FeatureStore(args[0]) as store:
            t1 = time.perf_counter()
            res = store.materialize_incremental()
            out["materialize_seconds"] = time.perf_counter() - t1
        out["rows_scanned"] = sum(r.rows_scanned for r in res)
        out["keys_written"] = sum(r.keys_written for r in res)
    else:
        raise SystemExit(f"unknown child `{kind}`")
    out["seconds"] = time.perf_counter() - t0
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    out["vmhwm_mib"] = _vmhwm_mib()
    return out


def run_child(kind: str, *args: str) -> dict[str, Any]:
    """Spawned while this process is still small: a child's ru_maxrss starts at the parent's RSS."""
    p = subprocess.run(
        [sys.executable, __file__, "--child", kind, *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if p.returncode != 0:
        raise RuntimeError(f"child `{kind}` failed:\n{p.stdout[-3000:]}\n{p.stderr[-5000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# -- in-process online reads -------------------------------------------------------------------------


def latencies_us(fn: Any, samples: list[Any], warmup: int) -> dict[str, float]:
    for s in samples[:warmup]:  # warm up: connections, statement and plan caches, page cache
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
    fl = _import_featureline()
    rng = random.Random(seed)
    with fl.FeatureStore(repo) as store:

        def read(rows: list[dict[str, int]]) -> dict[str, list[Any]]:
            return store.get_online_features(REFS, rows).to_dict()  # type: ignore[no-any-return]

        one = [[{KEY: rng.choice(keys)}] for _ in range(calls1)]
        hundred = [[{KEY: k} for k in rng.sample(keys, 100)] for _ in range(calls100)]
        res: dict[str, Any] = {
            "one": latencies_us(read, one, warmup=min(500, calls1)),
            "hundred": latencies_us(read, hundred, warmup=min(100, calls100)),
        }
        resp = store.get_online_features(REFS, hundred[0])
        res["not_present_in_check"] = sum(s != "PRESENT" for s in resp.statuses[FEATURES[0]])
        sample = sorted(random.Random(7).sample(keys, min(SAMPLE_KEYS, len(keys))))
        vals = read([{KEY: k} for k in sample])
        res["sample"] = {str(k): [vals[f][i] for f in FEATURES] for i, k in enumerate(sample)}
    return res


def delete_redis_keys(url: str, project: str) -> int:
    import redis

    r = redis.Redis.from_url(url)
    try:
        n = 0
        batch: list[bytes] = []
        for k in r.scan_iter(match=f"{project}:*", count=1000):
            batch.append(k)
            if len(batch) >= 1000:
                n += int(r.delete(*batch))
                batch.clear()
        if batch:
            n += int(r.delete(*batch))
        return n
    finally:
        r.close()


def _print_mat(label: str, m: dict[str, Any]) -> None:
    s = m["materialize_seconds"]
    print(
        f"  materialize -> {label:<8} {s:7.1f} s = {m['rows_scanned'] / s:>11,.0f} offline rows/s  "
        f"({m['rows_scanned']:,} rows scanned, {m['keys_written']:,} keys written); "
        f"peak RSS {m['peak_rss_mib']:,.0f} MiB (VmHWM {m['vmhwm_mib']:,.0f} MiB)"
    )


def _print_reads(label: str, r: dict[str, Any]) -> None:
    for what, x in (
        ("1 entity x 5 features", r["one"]),
        ("100 entities x 5 features", r["hundred"]),
    ):
        print(
            f"  get_online_features {label:<8} {what:<26} p50 {x['p50_us']:9.1f} us  p99 {x['p99_us']:9.1f} us  "
            f"mean {x['mean_us']:9.1f} us  ({x['calls']:,} calls)"
        )
    if r["not_present_in_check"]:
        print(
            f"  WARNING: {r['not_present_in_check']} of 100 existing keys read as not PRESENT ({label})"
        )


def run(
    small: bool = False,
    work_dir: Path | None = None,
    redis_url: str | None = DEFAULT_REDIS,
    calls1: int = 5000,
    calls100: int = 1000,
) -> dict[str, Any]:
    _import_featureline()
    params, data_dir = data.for_size(small)
    # generate in a child, so that this process stays small while it spawns the RSS children
    subprocess.run(
        [sys.executable, str(BENCH / "data.py"), *(["--small"] if small else [])], check=True
    )
    features, _ = data.paths(data_dir)
    own_tmp = work_dir is None
    work = (
        Path(tempfile.mkdtemp(prefix="featureline-online-"))
        if work_dir is None
        else work_dir.resolve()
    )
    project = "flbench_" + uuid.uuid4().hex[:10]
    embedded, remote = work / "featureline-embedded", work / "featureline-redis"
    res: dict[str, Any] = {"project": project, "repo": str(embedded)}
    try:
        for d in (embedded, remote):
            shutil.rmtree(d, ignore_errors=True)
        ing = run_child("ingest", str(embedded), project, str(features))
        print(
            f"featureline online serving: {ing['rows']:,} rows ({params.entities:,} entities); project {project}"
        )
        print(f"  ingest (setup, not part of the figures): {ing['ingest_seconds']:.1f} s")
        res["rows"], res["entities"] = ing["rows"], params.entities
        res["mat_embedded"] = run_child("materialize", str(embedded))
        _print_mat("embedded", res["mat_embedded"])
        if redis_url:
            redis_repo(embedded, remote, project, redis_url)
            try:
                res["mat_redis"] = run_child("materialize", str(remote))
                _print_mat("redis", res["mat_redis"])
            except RuntimeError as e:
                print(f"  redis: skipped ({str(e).strip().splitlines()[-1]})")
                redis_url = None
        keys = list(range(params.entities))
        res["reads_embedded"] = online_reads(embedded, keys, calls1, calls100, seed=1)
        _print_reads("embedded", res["reads_embedded"])
        if redis_url:
            res["reads_redis"] = online_reads(remote, keys, calls1, calls100, seed=1)
            _print_reads("redis", res["reads_redis"])
    finally:
        if redis_url:
            print(
                f"  deleted {delete_redis_keys(redis_url, project):,} Redis keys of project {project}"
            )
        if own_tmp:
            shutil.rmtree(work, ignore_errors=True)
    return res


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        print(json.dumps(_child(argv[1], argv[2:])))
        return 0
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--small", action="store_true", help="The small smoke-test data (1,000 entities)."
    )
    ap.add_argument(
        "--work", type=Path, help="Build the repos here and keep them (default: a temp folder)."
    )
    ap.add_argument("--redis-url", default=DEFAULT_REDIS)
    ap.add_argument("--no-redis", action="store_true")
    ap.add_argument("--calls", type=int, default=5000, help="Timed 1-entity calls.")
    ap.add_argument("--calls-100", type=int, default=1000, help="Timed 100-entity calls.")
    ap.add_argument("--json-out", type=Path, help="Also write the figures here as JSON.")
    args = ap.parse_args(argv)
    res = run(
        args.small, args.work, None if args.no_redis else args.redis_url, args.calls, args.calls_100
    )
    if args.json_out:
        args.json_out.write_text(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
