"""Several real processes write one view at once (push, ingest, compact): every acknowledged
row is stored exactly once, readable offline and online (DESIGN §3, Concurrency)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

import featureline as fl
from tests.helpers import driver_defs, new_store

_WORKER = textwrap.dedent(
    """
    import json, sys, time
    from datetime import datetime, timedelta, timezone
    import pyarrow as pa
    import featureline as fl

    repo, worker, batches, size, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    store = fl.FeatureStore(repo)
    view = store.get_feature_view("driver_stats")
    base = datetime.now(timezone.utc) - timedelta(minutes=30)
    acked = []
    for b in range(batches):
        ids = [worker * 1_000_000 + b * size + j for j in range(size)]
        t = pa.table({
            "driver_id": pa.array(ids, pa.int64()),
            "event_timestamp": pa.array([base] * size, pa.timestamp("us", tz="UTC")),
            "rate": pa.array([i * 0.5 for i in ids], pa.float64()),
            "trips": pa.array(ids, pa.int64()),
        })
        if mode == "push" or (mode == "mixed" and b % 2 == 0):
            store.push("driver_stats", t)
        else:
            store.ingest("driver_stats", t)
        acked.extend(ids)
        with open(f"{repo}/acked-{worker}.txt", "a") as fh:   # acknowledged: readers must see it from now on
            fh.write(" ".join(map(str, ids)) + "\\n")
        if mode == "mixed" and b % 5 == 4:
            store.offline.compact(view)
    print(json.dumps(acked))
    """
)

# Reads while the writers run: every row acknowledged before a training set starts is in it,
# exactly once and with its value (DESIGN §3: visible where promised, counted once).
_CHECKER = textwrap.dedent(
    """
    import glob, json, sys, time
    from datetime import datetime, timezone
    import featureline as fl

    repo, seconds = sys.argv[1], float(sys.argv[2])
    store = fl.FeatureStore(repo)
    checks = bad = 0
    end = time.monotonic() + seconds
    hard_end = end + 60  # on a loaded machine, go on until three training sets were checked
    while time.monotonic() < end or (checks < 3 and time.monotonic() < hard_end):
        ids = [int(x) for f in glob.glob(f"{repo}/acked-*.txt") for line in open(f).read().splitlines() for x in line.split()]
        if not ids:
            time.sleep(0.05)
            continue
        now = datetime.now(timezone.utc)
        ts = store.get_training_set({"driver_id": ids, "event_timestamp": [now] * len(ids)}, ["driver_stats:rate"]).to_arrow()
        got = ts.column("rate").to_pylist()
        bad += sum(1 for i, r in zip(ids, got) if r != i * 0.5)
        checks += 1
    print(json.dumps({"checks": checks, "bad": bad}))
    """
)


def _run_workers(
    repo: Path, modes: list[str], batches: int, size: int, check_seconds: float = 0
) -> list[int]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    checker = (
        subprocess.Popen(
            [sys.executable, "-c", _CHECKER, str(repo), str(check_seconds)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        if check_seconds
        else None
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(repo), str(i), str(batches), str(size), mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for i, mode in enumerate(modes)
    ]
    acked: list[int] = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err.decode()
        acked.extend(json.loads(out))
    if checker is not None:
        out, err = checker.communicate(timeout=240)
        assert checker.returncode == 0, err.decode()
        seen = json.loads(out)
        assert seen["checks"] >= 3, (
            f"the reader ran only {seen['checks']} training sets: the test proved little"
        )
        assert seen["bad"] == 0, (
            f"{seen['bad']} acknowledged rows were missing or wrong in training sets taken during the writes"
        )
    return acked


def _check(store: fl.FeatureStore, acked: list[int]) -> None:
    view = store.get_feature_view("driver_stats")
    stored = store.offline.latest_rows(view)
    ids = stored.column("driver_id").to_pylist()
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} rows stored more than once"
    assert store.describe("driver_stats")["rows"] == len(acked), "stored rows != acknowledged rows"
    assert sorted(ids) == sorted(acked)
    now = datetime.now(UTC)
    ts = store.get_training_set(
        {"driver_id": acked, "event_timestamp": [now] * len(acked)}, ["driver_stats:rate"]
    ).to_arrow()
    rates = ts.column("rate").to_pylist()
    missing = sum(r is None for r in rates)
    assert missing == 0, f"training set at now is null for {missing} acknowledged rows"
    assert rates == [i * 0.5 for i in acked]


def test_three_pushing_processes_store_each_row_once_and_online(tmp_path: Path) -> None:
    store = new_store(tmp_path, *driver_defs(ttl=timedelta(days=1)))
    acked = _run_workers(store.repo_path, ["push", "push", "push"], batches=30, size=20)
    assert len(acked) == 1_800
    _check(store, acked)
    resp = store.get_online_features(["driver_stats:rate"], {"driver_id": acked})
    statuses = resp.statuses["rate"]
    lost = [k for k, s in zip(acked, statuses, strict=True) if s != "PRESENT"]
    assert not lost, f"{len(lost)} acknowledged pushes never reached the online store"
    assert resp.to_dict()["rate"] == [i * 0.5 for i in acked]


def test_ingest_push_and_compact_at_once_store_each_row_once(tmp_path: Path) -> None:
    store = new_store(tmp_path, *driver_defs(ttl=timedelta(days=1)))
    acked = _run_workers(
        store.repo_path, ["mixed", "mixed", "ingest"], batches=30, size=20, check_seconds=4
    )
    assert len(acked) == 1_800
    _check(store, acked)
    view = store.get_feature_view("driver_stats")
    assert (
        store.offline.compact(view) is not None
        or len(store.offline.commits("driver_stats", 1)) == 1
    )
    _check(store, acked)  # a final compaction keeps every row once
    assert isinstance(store.offline.latest_rows(view), pa.Table)
