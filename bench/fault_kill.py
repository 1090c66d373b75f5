"""Fault script (issue 7): SIGKILL writers and compactors at random points under concurrent load.

Three writer processes push batches with idempotency keys (a careful client: after a crash it
retries the batch it had in flight with the same key, then goes on), a fourth pushes over HTTP
to a `featureline serve` process with an `Idempotency-Key` header (retrying until it gets a
200), and a compactor compacts and vacuums in a loop. The script SIGKILLs a random one of them at a random moment, restarts
it, and repeats `--kills` times. Then it checks:

- every acknowledged batch is present exactly once offline (no key twice, stored rows = the
  distinct batches committed) and online, with its value;
- nothing is half-visible (each batch's keys are all there or none);
- the store opens, and a training set at now returns every acknowledged value.

    PYTHONPATH=src python bench/fault_kill.py --kills 200
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime

SIZE = 25

WRITER = textwrap.dedent(
    """
    import os, sys
    from datetime import datetime, timedelta, timezone
    import pyarrow as pa
    import featureline as fl

    repo, w, batches, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    ack = os.path.join(repo, f"acks-{w}.txt")
    done = set(open(ack).read().split()) if os.path.exists(ack) else set()
    store = fl.FeatureStore(repo)
    t0 = datetime.now(timezone.utc) - timedelta(minutes=10)
    with open(ack, "a") as fh:
        for b in range(batches):
            if str(b) in done:
                continue
            ids = [w * 1_000_000 + b * size + j for j in range(size)]
            t = pa.table({
                "driver_id": pa.array(ids, pa.int64()),
                "event_timestamp": pa.array([t0] * size, pa.timestamp("us", tz="UTC")),
                "rate": pa.array([i * 0.25 for i in ids], pa.float64()),
                "trips": pa.array(ids, pa.int64()),
            })
            store.push("driver_stats", t, idempotency_key=f"w{w}-b{b}")
            fh.write(f"{b}\\n"); fh.flush(); os.fsync(fh.fileno())   # acknowledged
    """
)

HTTP_WRITER = textwrap.dedent(
    """
    import json, os, sys, time, urllib.request, urllib.error
    from datetime import datetime, timedelta, timezone

    repo, w, batches, size, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    ack = os.path.join(repo, f"acks-{w}.txt")
    done = set(open(ack).read().split()) if os.path.exists(ack) else set()
    t0 = (datetime.now(timezone.utc) - timedelta(minutes=10)).isoformat()
    with open(ack, "a") as fh:
        for b in range(batches):
            if str(b) in done:
                continue
            ids = [w * 1_000_000 + b * size + j for j in range(size)]
            rows = [{"driver_id": i, "event_timestamp": t0, "rate": i * 0.25, "trips": i} for i in ids]
            body = json.dumps({"rows": rows}).encode()
            while True:   # a careful client: retry the same key until the server answers 200
                req = urllib.request.Request(f"http://127.0.0.1:{port}/push/driver_stats", data=body, method="POST",
                    headers={"content-type": "application/json", "idempotency-key": f"w{w}-b{b}"})
                try:
                    with urllib.request.urlopen(req, timeout=10) as r:
                        if r.status == 200:
                            break
                except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                    pass
                time.sleep(0.05)
            fh.write(f"{b}\\n"); fh.flush(); os.fsync(fh.fileno())   # acknowledged
    """
)

COMPACTOR = textwrap.dedent(
    """
    import sys, time
    import featureline as fl
    store = fl.FeatureStore(sys.argv[1])
    while True:
        store.compact("driver_stats")
        store.vacuum("driver_stats", grace_seconds=0)
        time.sleep(0.05)
    """
)


def _spawn(code: str, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, stderr=subprocess.PIPE)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--kills", type=int, default=200)
    ap.add_argument("--writers", type=int, default=3)
    ap.add_argument("--batches", type=int, default=400, help="batches per writer")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    import data  # bench/ is on sys.path when a script in it runs
    import pyarrow as pa  # noqa: F401  (fail early if the env is wrong)

    import featureline as fl

    store = data.small_driver_repo("fl-fault-", "fault")
    repo = store.repo_path

    def writer(w: int) -> subprocess.Popen[bytes]:
        return _spawn(WRITER, str(repo), str(w), str(args.batches), str(SIZE))

    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    http_w = args.writers  # one more writer, over HTTP, to a server that is killed too

    def server() -> subprocess.Popen[bytes]:
        code = "import sys; from featureline.cli import main; main(sys.argv[1:])"
        return _spawn(
            code, "--repo", str(repo), "serve", "--port", str(port), "--log-level", "warning"
        )

    def spawn(name: str) -> subprocess.Popen[bytes]:
        if name == "compactor":
            return _spawn(COMPACTOR, str(repo))
        if name == "server":
            return server()
        if name == f"w{http_w}":
            return _spawn(
                HTTP_WRITER, str(repo), str(http_w), str(args.batches), str(SIZE), str(port)
            )
        return writer(int(name[1:]))

    names = [*(f"w{w}" for w in range(args.writers + 1)), "compactor", "server"]
    procs: dict[str, subprocess.Popen[bytes]] = {n: spawn(n) for n in names}
    kills = {"writer": 0, "http_writer": 0, "compactor": 0, "server": 0}
    t0 = time.perf_counter()
    while sum(kills.values()) < args.kills:
        time.sleep(rng.uniform(0.05, 0.6))
        name = rng.choice(sorted(procs))
        p = procs[name]
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait()
            kind = (
                name
                if name in ("compactor", "server")
                else ("http_writer" if name == f"w{http_w}" else "writer")
            )
            kills[kind] += 1
        elif p.returncode != 0:
            print(
                f"{name} failed:\n{p.stderr.read().decode() if p.stderr else ''}", file=sys.stderr
            )
            return 1
        procs[name] = spawn(name)
    procs["compactor"].send_signal(signal.SIGKILL)
    procs["compactor"].wait()
    for name, p in procs.items():  # writers finish their sequences (retrying what was in flight)
        if name not in ("compactor", "server"):
            _, err = p.communicate(timeout=600)
            if p.returncode != 0:
                print(f"{name} failed:\n{err.decode()}", file=sys.stderr)
                return 1
    load_s = time.perf_counter() - t0
    procs["server"].send_signal(signal.SIGKILL)
    procs["server"].wait()

    fresh = fl.FeatureStore(repo)  # the store opens
    fv = fresh.get_feature_view("driver_stats")
    stored = fresh.offline.latest_rows(fv)
    ids = stored.column("driver_id").to_pylist()
    acked = {
        (w, int(b))
        for w in range(args.writers + 1)
        for b in (repo / f"acks-{w}.txt").read_text().split()
    }
    expected = sorted(w * 1_000_000 + b * SIZE + j for w, b in acked for j in range(SIZE))
    by_batch: dict[tuple[int, int], int] = {}
    for i in ids:
        key = (i // 1_000_000, (i % 1_000_000) // SIZE)
        by_batch[key] = by_batch.get(key, 0) + 1
    half = sum(1 for n in by_batch.values() if n != SIZE)
    dup = len(ids) - len(set(ids))
    rows = int(fresh.describe("driver_stats")["rows"])
    missing_offline = len(set(expected) - set(ids))
    now = datetime.now(UTC)
    ts = fresh.get_training_set(
        {"driver_id": expected, "event_timestamp": [now] * len(expected)}, ["driver_stats:rate"]
    ).to_arrow()
    wrong_ts = sum(
        1 for i, r in zip(expected, ts.column("rate").to_pylist(), strict=True) if r != i * 0.25
    )
    online = fresh.get_online_features(["driver_stats:rate"], {"driver_id": expected})
    wrong_online = sum(
        1 for i, r in zip(expected, online.to_dict()["rate"], strict=True) if r != i * 0.25
    )
    commits = fresh.offline.commits("driver_stats", 1)
    files = len(list((fresh.offline.log("driver_stats", 1).root / "parts").iterdir()))
    report = {
        "kills": kills,
        "load_seconds": round(load_s, 1),
        "acknowledged_batches": len(acked),
        "acknowledged_rows": len(expected),
        "stored_rows": rows,
        "keys_stored_twice": dup,
        "acknowledged_missing_offline": missing_offline,
        "half_visible_batches": half,
        "training_set_wrong_or_null": wrong_ts,
        "online_wrong_or_missing": wrong_online,
        "live_commits": len(commits),
        "files_in_parts": files,
        "repo": str(repo),
    }
    print(json.dumps(report, indent=2))
    ok = (
        rows == len(expected)
        and dup == 0
        and missing_offline == 0
        and half == 0
        and wrong_ts == 0
        and wrong_online == 0
    )
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
