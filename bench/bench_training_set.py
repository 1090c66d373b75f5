"""Benchmark: point-in-time training sets, featureline vs plain DuckDB, on the same Parquet files.

Measured in one run (each best of 3 after one warm-up, on the data of bench/data.py):

  (a) plain DuckDB `ASOF LEFT JOIN` of the entity Parquet to the feature Parquet, ignoring ties
      and TTL, fetched to Arrow -- the bar (DESIGN §4);
  (b) plain DuckDB that resolves ties first (QUALIFY row_number() dedup, then ASOF);
  (c) featureline ingest of all feature rows into a fresh repo (rows/s);
  (d) featureline `get_training_set` with full semantics (TTL 30 days), returned as Arrow.

Peak RSS is measured in child processes that do only one piece of work each. The featureline
result is checked: exactly one row per entity row, and the same values (hence the same non-null
counts) as (b) with the TTL applied in DuckDB.

    PYTHONPATH=src python bench/bench_training_set.py [--small]
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO_SRC = BENCH.parent / "src"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import data  # noqa: E402  (bench/ is not a package)

TTL_DAYS = 30
THREADS = 2
VIEW = "bench_features"
N_FEATURES = data.Params().features
FEATURES = [f"f{i}" for i in range(N_FEATURES)]


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


def _sql_path(p: Path) -> str:
    return "'" + str(p).replace("'", "''") + "'"


def asof_sql(features: Path, entities: Path) -> str:
    """(a): the plain ASOF LEFT JOIN, no tie handling, no TTL."""
    cols = ", ".join(f"f.{c}" for c in FEATURES)
    return (
        f"SELECT e.*, {cols} FROM read_parquet({_sql_path(entities)}) AS e "
        f"ASOF LEFT JOIN read_parquet({_sql_path(features)}) AS f "
        "ON e.entity_id = f.entity_id AND e.event_timestamp >= f.event_timestamp"
    )


def _dedup_sql(features: Path) -> str:
    return (
        f"SELECT * FROM read_parquet({_sql_path(features)}) QUALIFY row_number() OVER "
        "(PARTITION BY entity_id, event_timestamp ORDER BY created DESC NULLS LAST) = 1"
    )


def ties_sql(features: Path, entities: Path) -> str:
    """(b): resolve ties on (entity, event time) by the greatest created time, then ASOF."""
    cols = ", ".join(f"f.{c}" for c in FEATURES)
    return (
        f"WITH f AS ({_dedup_sql(features)}) "
        f"SELECT e.*, {cols} FROM read_parquet({_sql_path(entities)}) AS e "
        "ASOF LEFT JOIN f ON e.entity_id = f.entity_id AND e.event_timestamp >= f.event_timestamp"
    )


def ties_ttl_sql(features: Path, entities: Path, ttl_days: int = TTL_DAYS) -> str:
    """(b) plus the TTL, in input order: the expected featureline result."""
    ttl_us = ttl_days * data.DAY
    cols = ", ".join(
        f"CASE WHEN f.event_timestamp >= e.event_timestamp - to_microseconds({ttl_us}::BIGINT) THEN f.{c} END AS {c}"
        for c in FEATURES
    )
    return (
        f"WITH f AS ({_dedup_sql(features)}), "
        f"e AS (SELECT * FROM read_parquet({_sql_path(entities)}, file_row_number = true)) "
        f"SELECT {cols} FROM e ASOF LEFT JOIN f "
        "ON e.entity_id = f.entity_id AND e.event_timestamp >= f.event_timestamp ORDER BY e.file_row_number"
    )


def duckdb_connect() -> Any:
    import duckdb

    con = duckdb.connect(config={"threads": THREADS})
    con.execute("SET TimeZone = 'UTC'")
    return con


def run_duckdb(sql: str) -> Any:
    con = duckdb_connect()
    try:
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()


def make_repo(root: Path, features: Path) -> Any:
    """A fresh feature repo with one view over the benchmark features (TTL 30 days)."""
    from datetime import timedelta

    fl = _import_featureline()
    fl.init_repo(root, project="bench", with_data=False)
    store = fl.FeatureStore(root)
    entity = fl.Entity("entity", join_keys=["entity_id"])
    view = fl.FeatureView(
        VIEW,
        entities=[entity],
        schema=[fl.Field("entity_id", fl.Int64), *(fl.Field(c, fl.Float64) for c in FEATURES)],
        source=fl.FileSource(
            str(features), timestamp_field="event_timestamp", created_timestamp_field="created"
        ),
        ttl=timedelta(days=TTL_DAYS),
    )
    store.apply([entity, view])
    return store


def training_set(store: Any, entities: Path) -> Any:
    return store.get_training_set(str(entities), [f"{VIEW}:{c}" for c in FEATURES]).to_arrow()


def best_of(
    fn: Callable[[Any], Any],
    setup: Callable[[], Any] = lambda: None,
    runs: int = 3,
    warmup: int = 1,
) -> tuple[float, list[float]]:
    """Best wall time of `runs` timed calls `fn(setup())` after `warmup` untimed ones.

    Only `fn` is timed, not `setup`.
    """
    times = []
    for i in range(warmup + runs):
        arg = setup()
        t0 = time.perf_counter()
        fn(arg)
        dt = time.perf_counter() - t0
        if i >= warmup:
            times.append(dt)
    return min(times), times


# -- child processes: one piece of work each, reporting their peak RSS ---------------------------


def _child(kind: str, args: list[str]) -> dict[str, Any]:
    t0 = time.perf_counter()
    if kind == "duckdb-asof":
        out = run_duckdb(asof_sql(Path(args[0]), Path(args[1])))
        rows = out.num_rows
    elif kind == "ingest":
        store = make_repo(Path(args[0]), Path(args[1]))
        rows = store.ingest(VIEW, args[1]).rows
    elif kind == "training":
        fl = _import_featureline()
        rows = training_set(fl.FeatureStore(args[0]), Path(args[1])).num_rows
    else:
        raise SystemExit(f"unknown child `{kind}`")
    seconds = time.perf_counter() - t0
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "kind": kind,
        "rows": rows,
        "seconds": seconds,
        "peak_rss_mib": rss_kib / 1024,
        "vmhwm_mib": _vmhwm_mib(),
    }


def _vmhwm_mib() -> float | None:
    """This process's own RSS high-water mark (Linux), a cross-check of ru_maxrss."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def measure_child(kind: str, *args: str) -> dict[str, Any]:
    """Run one piece of work in a child process and return its figures.

    A child's ru_maxrss starts at its parent's RSS at spawn time (Linux keeps the maximum across
    fork and exec), so children are spawned while this process is still small: before it
    generates or loads any data.
    """
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"child `{kind}` failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# -- the benchmark ---------------------------------------------------------------------------------


def run(small: bool = False, work_dir: Path | None = None) -> dict[str, Any]:
    import pyarrow.parquet as pq

    _import_featureline()
    _, data_dir = data.for_size(small)
    # generate in a child, so that this process stays small while it spawns the RSS children
    subprocess.run(
        [sys.executable, str(BENCH / "data.py"), *(["--small"] if small else [])], check=True
    )
    features, entities = data.paths(data_dir)
    n_features = pq.ParquetFile(features).metadata.num_rows
    n_entities = pq.ParquetFile(entities).metadata.num_rows
    print(
        f"data: {n_features:,} feature rows ({features.stat().st_size / 2**20:.0f} MiB), "
        f"{n_entities:,} entity rows ({entities.stat().st_size / 2**20:.0f} MiB); TTL {TTL_DAYS} days; "
        f"DuckDB threads {THREADS}"
    )
    res: dict[str, Any] = {"feature_rows": n_features, "entity_rows": n_entities}
    own_tmp = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="featureline-bench-")) if work_dir is None else work_dir

    rss_a = measure_child("duckdb-asof", str(features), str(entities))
    rss_c = measure_child("ingest", str(work / "rss-repo"), str(features))
    rss_d = measure_child("training", str(work / "rss-repo"), str(entities))
    shutil.rmtree(work / "rss-repo", ignore_errors=True)

    a, a_all = best_of(lambda _: run_duckdb(asof_sql(features, entities)))
    print(
        f"(a) plain DuckDB ASOF LEFT JOIN (no ties, no TTL): {a:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in a_all)} s)"
    )
    b, b_all = best_of(lambda _: run_duckdb(ties_sql(features, entities)))
    print(
        f"(b) plain DuckDB dedup ties + ASOF:                 {b:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in b_all)} s)"
    )

    try:
        stores: list[Any] = []

        def fresh_repo() -> Any:
            for old in stores:  # only the last repo is kept (for (d)): keeps disk use low
                old.close()
                shutil.rmtree(old.repo_path, ignore_errors=True)
            stores.clear()
            stores.append(make_repo(work / f"ingest-{time.monotonic_ns()}", features))
            return stores[-1]

        def ingest(store: Any) -> None:
            store.ingest(VIEW, str(features))

        c, c_all = best_of(ingest, setup=fresh_repo)
        print(
            f"(c) featureline ingest into a fresh repo:           {c:.2f} s = {n_features / c:,.0f} rows/s  "
            f"(runs: {', '.join(f'{t:.2f}' for t in c_all)} s)"
        )
        store = stores[-1]
        results: list[Any] = []
        d, d_all = best_of(lambda _: results.append(training_set(store, entities)))
        print(
            f"(d) featureline get_training_set (TTL, ties) -> Arrow: {d:.2f} s = {d / a:.2f} x (a)  "
            f"(runs: {', '.join(f'{t:.2f}' for t in d_all)} s)"
        )
        got = results[-1]

        # correctness: one row per entity row, input columns unchanged, same values as (b) + TTL
        expected = run_duckdb(ties_ttl_sql(features, entities))
        entity_table = pq.read_table(entities)
        nonnull = {c: got.num_rows - got.column(c).null_count for c in FEATURES}
        expected_nonnull = {c: expected.num_rows - expected.column(c).null_count for c in FEATURES}
        checks = {
            "rows": got.num_rows == n_entities,
            "input columns unchanged": got.select(entity_table.column_names).equals(entity_table),
            "non-null counts": nonnull == expected_nonnull,
            "values equal (b)+TTL": all(got.column(c).equals(expected.column(c)) for c in FEATURES),
        }
        print(
            f"check: {got.num_rows:,} rows (expected {n_entities:,}); non-null per feature {nonnull[FEATURES[0]]:,} "
            f"(DuckDB (b)+TTL: {expected_nonnull[FEATURES[0]]:,}); "
            + "; ".join(f"{k}: {'ok' if v else 'FAILED'}" for k, v in checks.items())
        )
        results.clear()
        del got, expected, entity_table

        store.close()
        print(
            f"peak RSS (ru_maxrss of child processes doing only that work): featureline ingest "
            f"{rss_c['peak_rss_mib']:,.0f} MiB, featureline get_training_set {rss_d['peak_rss_mib']:,.0f} MiB, "
            f"plain DuckDB (a) {rss_a['peak_rss_mib']:,.0f} MiB  (VmHWM: {rss_c['vmhwm_mib']:,.0f} / "
            f"{rss_d['vmhwm_mib']:,.0f} / {rss_a['vmhwm_mib']:,.0f} MiB)"
        )
    finally:
        if own_tmp:
            shutil.rmtree(work, ignore_errors=True)

    res.update(
        asof_s=a,
        ties_s=b,
        ingest_s=c,
        ingest_rows_per_s=n_features / c,
        training_s=d,
        ratio_vs_asof=d / a,
        ratio_vs_ties=d / b,
        rss_ingest_mib=rss_c["peak_rss_mib"],
        rss_training_mib=rss_d["peak_rss_mib"],
        rss_asof_mib=rss_a["peak_rss_mib"],
        nonnull=nonnull[FEATURES[0]],
        expected_nonnull=expected_nonnull[FEATURES[0]],
        checks=checks,
        ok=all(checks.values()),
    )
    return res


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        print(json.dumps(_child(argv[1], argv[2:])))
        return 0
    res = run(small="--small" in argv)
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
