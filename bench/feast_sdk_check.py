"""An unmodified Feast SDK against `featureline serve` (issue 9, item 6). A check, not a benchmark.

    python3 -m venv /tmp/feastenv && /tmp/feastenv/bin/pip install 'feast==0.67.*'
    .venv/bin/python bench/feast_sdk_check.py [--feast-python /tmp/feastenv/bin/python] [--keep]

This process (the project's Python) builds a Featureline repo in a temporary folder with generated
data — `driver_stats` (rate Float64, trips Int64, TTL one day, no source: Feast's
`event_timestamp`/`created`) and `driver_profile` (tier String, active Bool, score Float64; a file
source whose timestamp columns are `ts`/`created_ts`), a feature service `driver_activity` — and
starts `featureline serve` on a free loopback port. Then, in a child process on the Feast Python
(FEAST_PYTHON or --feast-python; the child never imports featureline), an unmodified Feast SDK
with `online_store: {type: remote, path: http://127.0.0.1:PORT}` and a registry file in a
temporary folder applies mirrored definitions (`FeatureStore.apply`) and does everything the
remote online store type does:

  * `get_online_features` (feature list, full feature names, the feature service,
    `include_feature_view_version_metadata`), which posts /get-online-features;
  * `write_to_online_store` (both views) and `push(to=ONLINE)`, which post /write-to-online-store;
  * `materialize(start, end)` and `materialize_incremental(end)` (also `run_async=True`), which
    the SDK delegates to the server with `online_store: remote` (POST /materialize,
    POST /materialize-incremental): rows after `end` must stay offline;
  * a body Feast's server refuses, over plain HTTP (422, FastAPI's `{"detail": [...]}`).

Every value and status the SDK got is compared with what Featureline's own
`FeatureStore.get_online_features` returns (or with what was written), and a table with OK/FAIL
per step is printed. Exit status 0 when every step is OK.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

FEAST_PYTHON = "/tmp/feastenv/bin/python"
STATS = ["rate", "trips"]
PROFILE = ["tier", "active", "score"]
FEATURES = [f"driver_stats:{f}" for f in STATS] + [f"driver_profile:{f}" for f in PROFILE]
SERVICE = ["driver_stats:rate", "driver_stats:trips", "driver_profile:tier"]
TIERS = ["gold", "silver", "bronze"]

# key ranges, one per thing checked
SERVED = range(1000, 1200)  # ingested and materialized before the SDK starts
EXPIRED = range(1200, 1210)  # last row older than the TTL: OUTSIDE_MAX_AGE
MISSING = [9999]  # never written: NOT_FOUND
MAT_WINDOW = range(2000, 2020)  # offline only; POST /materialize copies them
INC_EARLY = range(2100, 2110)  # offline only, event before the incremental run's end_ts
INC_LATE = range(2110, 2120)  # offline only, event after it: copied by the next run only
FEAST_FILES = range(3000, 3020)  # Feast's own offline files (its batch sources; not read here)
WRITTEN = range(4000, 4010)  # write_to_online_store
PUSHED = range(4200, 4210)  # push(to=ONLINE)


# -- the Feast side (runs on the Feast Python; imports feast, never featureline) -----------------


def _feast_objects(spec: dict[str, Any]) -> list[Any]:
    from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType
    from feast.types import Bool, Float64, Int64, String

    driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    stats_file = FileSource(
        name="driver_stats_file",
        path=spec["feast_stats"],
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
    )
    stats = FeatureView(
        name="driver_stats",
        entities=[driver],
        ttl=timedelta(days=1),
        schema=[Field(name="rate", dtype=Float64), Field(name="trips", dtype=Int64)],
        source=PushSource(name="driver_stats_push", batch_source=stats_file),
        online=True,
    )
    profile = FeatureView(
        name="driver_profile",
        entities=[driver],
        ttl=timedelta(days=1),
        schema=[
            Field(name="tier", dtype=String),
            Field(name="active", dtype=Bool),
            Field(name="score", dtype=Float64),
        ],
        source=FileSource(
            name="driver_profile_file",
            path=spec["feast_profile"],
            timestamp_field="ts",
            created_timestamp_column="created_ts",
        ),
        online=True,
    )
    service = FeatureService(
        name="driver_activity", features=[stats[["rate", "trips"]], profile[["tier"]]]
    )
    return [driver, stats_file, stats, profile, service]


def _feast_read(store: Any, features: Any, keys: list[int], **kw: Any) -> dict[str, Any]:
    from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

    resp = store.get_online_features(
        features=features, entity_rows=[{"driver_id": k} for k in keys], **kw
    )
    names = list(resp.proto.metadata.feature_names.val)
    statuses = {
        n: [FieldStatus.Name(s) for s in r.statuses]
        for n, r in zip(names, resp.proto.results, strict=True)
    }
    views = [[m.name, m.version] for m in resp.proto.metadata.feature_view_metadata]
    return {"keys": keys, "values": resp.to_dict(), "statuses": statuses, "views": views}


def _child(spec_path: str) -> None:
    import logging

    logging.disable(logging.WARNING)
    import feast
    import pandas as pd
    import requests
    from feast import FeatureStore
    from feast.data_source import PushMode

    spec = json.loads(Path(spec_path).read_text())
    url = spec["url"]
    root = Path(spec["feast_repo"])
    root.mkdir(parents=True, exist_ok=True)
    (root / "feature_store.yaml").write_text(
        f"project: featureline_check\nregistry: {root / 'registry.db'}\nprovider: local\n"
        f"online_store:\n  type: remote\n  path: {url}\n"
        "offline_store:\n  type: file\nentity_key_serialization_version: 3\n"
    )
    store = FeatureStore(repo_path=str(root))
    store.apply(_feast_objects(spec))
    out: dict[str, Any] = {"feast": feast.__version__, "reads": {}}
    reads = out["reads"]
    every = [*spec["all_keys"]]
    now = datetime.fromisoformat(spec["now"])

    reads["initial"] = _feast_read(store, FEATURES, every)
    reads["initial_full_names"] = _feast_read(store, FEATURES, every, full_feature_names=True)
    reads["initial_service"] = _feast_read(
        store, store.get_feature_service("driver_activity"), every
    )
    reads["initial_version_metadata"] = _feast_read(
        store, FEATURES, every[:5], include_feature_view_version_metadata=True
    )

    def stats_frame(keys: list[int], base: float, at: datetime) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "driver_id": keys,
                "rate": [base + i / 100 for i in range(len(keys))],
                "trips": [int(base) * 10 + i for i in range(len(keys))],
                "event_timestamp": [at] * len(keys),
                "created": [at] * len(keys),
            }
        )

    errors: dict[str, str] = out.setdefault("errors", {})

    def step(name: str, fn: Any) -> None:
        """Run one SDK call; a failure is recorded (the table shows it), the other steps go on."""
        try:
            fn()
        except Exception as e:  # the SDK raises RuntimeError with the server's answer
            errors[name] = f"{type(e).__name__}: {e}"[:600]

    written = stats_frame([*spec["written"], spec["updated"]], 7.0, now - timedelta(seconds=30))
    profile_keys = spec["written"]
    profile = pd.DataFrame(
        {
            "driver_id": profile_keys,
            "tier": ["platinum"] * len(profile_keys),
            "active": [i % 2 == 0 for i in range(len(profile_keys))],
            "score": [0.5 + i for i in range(len(profile_keys))],
            "ts": [now - timedelta(seconds=30)] * len(profile_keys),
            "created_ts": [now - timedelta(seconds=30)] * len(profile_keys),
        }
    )
    step("after_write", lambda: store.write_to_online_store("driver_stats", written))
    step("after_write_profile", lambda: store.write_to_online_store("driver_profile", profile))
    out["written"] = {
        "driver_stats": written.drop(columns=["event_timestamp", "created"]).to_dict("list"),
        "driver_profile": profile.drop(columns=["ts", "created_ts"]).to_dict("list"),
    }
    reads["after_write"] = _feast_read(store, FEATURES, [*spec["written"], spec["updated"]])
    reads["after_write_profile"] = _feast_read(store, FEATURES, spec["written"])

    pushed = stats_frame(spec["pushed"], 8.0, now - timedelta(seconds=20))
    step("after_push", lambda: store.push("driver_stats_push", pushed, to=PushMode.ONLINE))
    out["pushed"] = pushed.drop(columns=["event_timestamp", "created"]).to_dict("list")
    reads["after_push"] = _feast_read(store, FEATURES, spec["pushed"])

    # with `online_store: remote` the SDK delegates these to the server (POST /materialize, ...)
    step(
        "after_materialize",
        lambda: store.materialize(
            now - timedelta(hours=3), now - timedelta(hours=1), ["driver_stats"]
        ),
    )
    reads["after_materialize"] = _feast_read(store, FEATURES, spec["mat_window"])
    step(
        "after_incremental_end_ts",
        lambda: store.materialize_incremental(now - timedelta(minutes=15), ["driver_stats"]),
    )
    reads["after_incremental_end_ts"] = _feast_read(
        store, FEATURES, [*spec["inc_early"], *spec["inc_late"]]
    )
    step(
        "after_incremental_now",
        lambda: store.materialize_incremental(datetime.now(UTC), run_async=True),
    )
    reads["after_incremental_now"] = _feast_read(store, FEATURES, spec["inc_late"])

    # what Feast's server answers a body its model refuses: 422 and FastAPI's {"detail": [...]}
    r = requests.post(
        url + "/materialize-incremental", json={"feature_views": ["driver_stats"]}, timeout=60
    )
    out["bad_body"] = {"status": r.status_code, "text": r.text}

    reads["final"] = _feast_read(store, FEATURES, every)
    reads["final_service"] = _feast_read(store, store.get_feature_service("driver_activity"), every)
    Path(spec["out"]).write_text(json.dumps(out, default=str))


# -- the Featureline side (the project's Python) --------------------------------------------------


def _featureline_repo(root: Path, now: datetime) -> tuple[Any, dict[str, str]]:
    """The repo, its data and the offline-only rows; returns the store and Feast's source files."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    import featureline as fl

    rng = np.random.default_rng(20_260_101)
    fl.init_repo(root, project="feast_sdk_check", with_data=False)
    (root / "definitions.py").unlink()
    ts = pa.timestamp("us", tz="UTC")

    def stats_rows(keys: range | list[int], ages: list[timedelta]) -> pa.Table:
        ks = [k for k in keys for _ in ages]
        times = [now - a for _ in keys for a in ages]
        return pa.table(
            {
                "driver_id": pa.array(ks, pa.int64()),
                "rate": pa.array(rng.random(len(ks)).round(6)),
                "trips": pa.array(rng.integers(0, 1000, len(ks)), pa.int64()),
                "event_timestamp": pa.array(times, ts),
            }
        )

    def profile_rows(keys: range | list[int], ages: list[timedelta]) -> pa.Table:
        ks = [k for k in keys for _ in ages]
        times = [now - a for _ in keys for a in ages]
        return pa.table(
            {
                "driver_id": pa.array(ks, pa.int64()),
                "tier": pa.array([TIERS[int(i)] for i in rng.integers(0, 3, len(ks))]),
                "active": pa.array([bool(b) for b in rng.integers(0, 2, len(ks))]),
                "score": pa.array(rng.random(len(ks)).round(6)),
                "ts": pa.array(times, ts),
                "created_ts": pa.array(times, ts),
            }
        )

    hours = [timedelta(hours=h, minutes=int(m)) for h, m in ((20, 7), (9, 31), (2, 44))]
    pq.write_table(profile_rows(SERVED[:120], hours), root / "profile.parquet")
    driver = fl.Entity("driver", ["driver_id"])
    stats = fl.FeatureView(
        "driver_stats",
        entities=[driver],
        ttl=timedelta(days=1),
        schema=[
            fl.Field("driver_id", fl.Int64),
            fl.Field("rate", fl.Float64),
            fl.Field("trips", fl.Int64),
        ],
    )
    profile = fl.FeatureView(
        "driver_profile",
        entities=[driver],
        ttl=timedelta(days=1),
        schema=[
            fl.Field("driver_id", fl.Int64),
            fl.Field("tier", fl.String),
            fl.Field("active", fl.Bool),
            fl.Field("score", fl.Float64),
        ],
        source=fl.FileSource(
            "profile.parquet", timestamp_field="ts", created_timestamp_field="created_ts"
        ),
    )
    service = fl.FeatureService("driver_activity", features=SERVICE)
    store = fl.FeatureStore(root)
    store.apply([driver, stats, profile, service], message="feast sdk check")
    store.ingest("driver_stats", stats_rows(SERVED, hours))
    store.ingest("driver_stats", stats_rows(EXPIRED, [timedelta(days=2), timedelta(days=3)]))
    store.ingest("driver_profile")
    store.materialize_incremental()
    # offline only, for the server's materialize routes
    store.ingest("driver_stats", stats_rows(MAT_WINDOW, [timedelta(hours=2)]))
    store.ingest("driver_stats", stats_rows(INC_EARLY, [timedelta(minutes=30)]))
    store.ingest("driver_stats", stats_rows(INC_LATE, [timedelta(minutes=5)]))

    # the batch sources of Feast's definitions (with `online_store: remote` its materialize runs
    # on the server, so the SDK never reads them here)
    feast_dir = root.parent / "feast_files"
    feast_dir.mkdir()
    fs = stats_rows(FEAST_FILES, [timedelta(hours=5), timedelta(hours=4)])
    fs = fs.append_column("created", fs.column("event_timestamp"))
    pq.write_table(fs, feast_dir / "stats.parquet")
    pq.write_table(profile_rows(FEAST_FILES, [timedelta(hours=3)]), feast_dir / "profile.parquet")
    return store, {
        "feast_stats": str(feast_dir / "stats.parquet"),
        "feast_profile": str(feast_dir / "profile.parquet"),
    }


FEAST_STATUS = {"PRESENT": "PRESENT", "NOT_FOUND": "NOT_FOUND", "EXPIRED": "OUTSIDE_MAX_AGE"}


def _ours(store: Any, features: Any, keys: list[int], full: bool = False) -> dict[str, Any]:
    resp = store.get_online_features(
        features, [{"driver_id": k} for k in keys], full_feature_names=full
    )
    statuses = {n: [FEAST_STATUS.get(s, s) for s in st] for n, st in resp.statuses.items()}
    return {"values": resp.to_dict(), "statuses": statuses}


class Report:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, bool, str]] = []

    def add(self, step: str, call: str, compared: str, ok: bool, detail: str = "") -> None:
        self.rows.append((step, call, compared, ok, detail))

    def print(self) -> bool:
        heads = ("step", "Feast SDK call / HTTP", "compared", "result")
        widths = [
            max(len(h), *(len(str(r[i])) for r in self.rows)) for i, h in enumerate(heads[:3])
        ]
        line = "  ".join(h.ljust(w) for h, w in zip(heads[:3], widths, strict=True)) + "  result"
        print(line)
        print("-" * len(line))
        for step, call, compared, ok, detail in self.rows:
            cells = [step, call, compared]
            print(
                "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
                + ("  OK" if ok else "  FAIL")
            )
            if detail and not ok:
                print("      " + detail)
        return all(r[3] for r in self.rows)


def _diff(got: dict[str, Any], want: dict[str, Any], keys: list[int]) -> str:
    """'' when the SDK's values (and statuses, when wanted) equal ours; else the first difference."""
    for part in ("values", "statuses"):
        if part not in want:
            continue
        for name, col in want[part].items():
            have = got[part].get(name)
            if have is None:
                return f"{part}: the SDK's answer has no `{name}` (it has {sorted(got[part])})"
            for i, (a, b) in enumerate(zip(have, col, strict=True)):
                if a != b and not (
                    isinstance(a, float) and isinstance(b, float) and abs(a - b) < 1e-12
                ):
                    return f"{part} of `{name}` for driver_id {keys[i]}: Feast got {a!r}, Featureline {b!r}"
    return ""


def _expected(keys: list[int], rows: dict[int, dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """The answer for `keys` whose rows (per feature; missing key -> None / NOT_FOUND) are known."""
    values: dict[str, list[Any]] = {"driver_id": list(keys)}
    statuses: dict[str, list[str]] = {}
    for n in names:
        values[n] = [rows.get(k, {}).get(n) for k in keys]
        statuses[n] = ["PRESENT" if n in rows.get(k, {}) else "NOT_FOUND" for k in keys]
    return {"values": values, "statuses": statuses}


def _compare(report: Report, store: Any, result: dict[str, Any], before: dict[str, Any]) -> None:
    reads = result["reads"]
    every = before["keys"]
    n = len(every)
    for step, call, want in (
        ("initial", "get_online_features(features)", before["plain"]),
        ("initial_full_names", "  ... full_feature_names=True", before["full"]),
        ("initial_service", "  ... features=FeatureService", before["service"]),
    ):
        d = _diff(reads[step], want, every)
        report.add("read", call, f"{n} keys x {len(want['statuses'])} = Featureline", not d, d)
    meta = reads["initial_version_metadata"]
    first = {
        part: {n: col[: len(meta["keys"])] for n, col in before["plain"][part].items()}
        for part in ("values", "statuses")
    }
    d = _diff(meta, first, meta["keys"])
    want_views = [["driver_stats", 1], ["driver_profile", 1]]
    if not d and meta["views"] != want_views:
        d = f"feature_view_metadata: Feast got {meta['views']}, expected {want_views}"
    report.add(
        "read",
        "  ... include_feature_view_version_metadata",
        "= Featureline, views + versions",
        not d,
        d,
    )
    errors = result.get("errors", {})

    def check(step: str, call: str, compared: str, keys: list[int], want: dict[str, Any]) -> None:
        d = errors.get(step, "") or _diff(reads[step], want, keys)
        group = "server" if "materialize" in call else "write"
        report.add(group, call, compared, not d, d)

    w = result["written"]
    keys = w["driver_stats"]["driver_id"]
    rows = {
        k: {"rate": r, "trips": t}
        for k, r, t in zip(keys, w["driver_stats"]["rate"], w["driver_stats"]["trips"], strict=True)
    }
    check(
        "after_write",
        "write_to_online_store(driver_stats)",
        f"{len(keys)} keys = written",
        keys,
        _expected(keys, rows, STATS),
    )
    p = w["driver_profile"]
    pkeys = p["driver_id"]
    prow = {k: {f: p[f][i] for f in PROFILE} for i, k in enumerate(pkeys)}
    check(
        "after_write_profile",
        "write_to_online_store(driver_profile)",
        f"{len(pkeys)} keys = written (ts, created_ts)",
        pkeys,
        _expected(pkeys, prow, PROFILE),
    )
    check("after_write", "  ... the same keys", "= Featureline", keys, _ours(store, FEATURES, keys))

    import pyarrow as pa

    entity = pa.table(
        {
            "driver_id": pa.array(list(WRITTEN), pa.int64()),
            "event_timestamp": pa.array(
                [datetime.now(UTC)] * len(WRITTEN), pa.timestamp("us", tz="UTC")
            ),
        }
    )
    offline_seen = store.get_training_set(entity, [f"driver_stats:{f}" for f in STATS]).to_arrow()
    leaked = [
        r["driver_id"] for r in offline_seen.to_pylist() if any(r[f] is not None for f in STATS)
    ]
    report.add(
        "write",
        "  ... online only (as Feast)",
        "in no Featureline training set",
        not leaked,
        f"written keys found offline: {leaked}" if leaked else "",
    )

    p = result["pushed"]
    keys = p["driver_id"]
    rows = {k: {"rate": r, "trips": t} for k, r, t in zip(keys, p["rate"], p["trips"], strict=True)}
    check(
        "after_push",
        "push(to=ONLINE)",
        f"{len(keys)} keys = pushed",
        keys,
        _expected(keys, rows, STATS),
    )

    offline = before["offline"]
    keys = list(MAT_WINDOW)
    check(
        "after_materialize",
        "materialize(start, end) -> POST /materialize",
        f"{len(keys)} keys = offline rows",
        keys,
        _expected(keys, offline, STATS),
    )
    keys = [*INC_EARLY, *INC_LATE]
    early = {k: offline[k] for k in INC_EARLY}
    check(
        "after_incremental_end_ts",
        "materialize_incremental(end) -> POST /materialize-incremental",
        "rows after end_ts not copied",
        keys,
        _expected(keys, early, STATS),
    )
    keys = list(INC_LATE)
    check(
        "after_incremental_now",
        "materialize_incremental(now, run_async=True)",
        f"{len(keys)} keys = offline rows",
        keys,
        _expected(keys, offline, STATS),
    )

    bad = result["bad_body"]
    d = ""
    if bad["status"] != 422:
        d = f"expected 422, got {bad['status']} {bad['text'][:300]}"
    else:
        body = json.loads(bad["text"])
        if not isinstance(body.get("detail"), list) or "end_ts" not in bad["text"]:
            d = f"expected FastAPI's {{'detail': [...]}} naming end_ts, got {bad['text'][:300]}"
    report.add(
        "server", "POST /materialize-incremental without end_ts", "422 {detail: [...]}", not d, d
    )

    for step, call, feats in (
        ("final", "get_online_features (final)", FEATURES),
        ("final_service", "  ... FeatureService (final)", "driver_activity"),
    ):
        want = _ours(store, feats, every)
        d = _diff(reads[step], want, every)
        report.add("read", call, f"{n} keys x {len(want['statuses'])} = Featureline", not d, d)


def _wait_health(url: str, proc: subprocess.Popen[bytes], seconds: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"featureline serve exited with {proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"featureline serve did not answer on {url} within {seconds:.0f} s")


def run(feast_python: str, keep: bool = False) -> int:
    """The whole check; prints the table and returns the exit status (0: every step OK)."""
    import socket

    import featureline as fl

    work = Path(tempfile.mkdtemp(prefix="feast_sdk_check_"))
    now = datetime.now(UTC).replace(microsecond=0)
    store, sources = _featureline_repo(work / "repo", now)
    every = [*SERVED[:30], *SERVED[110:130], *EXPIRED, *MISSING, *WRITTEN, *PUSHED]
    every = list(dict.fromkeys(every))
    before = {
        "keys": every,
        "plain": _ours(store, FEATURES, every),
        "full": _ours(store, FEATURES, every, full=True),
        "service": _ours(store, "driver_activity", every),
        "offline": {},
    }
    offline: dict[int, dict[str, Any]] = {}
    import pyarrow as pa

    entity = pa.table(
        {
            "driver_id": pa.array([*MAT_WINDOW, *INC_EARLY, *INC_LATE], pa.int64()),
            "event_timestamp": pa.array([now] * 40, pa.timestamp("us", tz="UTC")),
        }
    )
    ts = store.get_training_set(entity, [f"driver_stats:{f}" for f in STATS]).to_arrow()
    for row in ts.to_pylist():
        offline[row["driver_id"]] = {f: row[f] for f in STATS}
    before["offline"] = offline

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "featureline.cli",
            "--repo",
            str(work / "repo"),
            "serve",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
    )
    try:
        _wait_health(url, server)
        out = work / "feast_result.json"
        spec: dict[str, Any] = {
            "url": url,
            "now": now.isoformat(),
            "feast_repo": str(work / "feast_repo"),
            "feast_stats": sources["feast_stats"],
            "feast_profile": sources["feast_profile"],
            "all_keys": every,
            "written": list(WRITTEN),
            "updated": SERVED[0],
            "pushed": list(PUSHED),
            "mat_window": list(MAT_WINDOW),
            "inc_early": list(INC_EARLY),
            "inc_late": list(INC_LATE),
            "out": str(out),
        }
        spec_path = work / "spec.json"
        spec_path.write_text(json.dumps(spec))
        env = {**os.environ, "FEAST_USAGE": "False", "PYTHONPATH": ""}
        child = subprocess.run(
            [feast_python, str(Path(__file__).resolve()), "--child", str(spec_path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if child.returncode != 0:
            print(child.stdout + child.stderr)
            print(f"FAIL: the Feast SDK child process exited with {child.returncode}")
            return 1
        result = json.loads(out.read_text())
        with fl.FeatureStore(work / "repo") as fresh:  # what the server wrote, another store reads
            report = Report()
            _compare(report, fresh, result, before)
        print(
            f"Feast {result['feast']} SDK ({feast_python}, online_store: remote) against "
            f"featureline {fl.__version__} serve at {url}\n"
        )
        ok = report.print()
        print("\nOK: the unmodified Feast SDK works against featureline serve" if ok else "\nFAIL")
        return 0 if ok else 1
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        store.close()
        if keep:
            print(f"kept {work}")
        else:
            import shutil

            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--feast-python", default=os.environ.get("FEAST_PYTHON", FEAST_PYTHON))
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(args.child)
        return 0
    return run(args.feast_python, args.keep)


if __name__ == "__main__":
    sys.exit(main())
