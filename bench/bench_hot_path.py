"""The online read hot path without a network: the in-process façade, and one HTTP request
through the server's ASGI app (dispatcher, checks, route, read, JSON) with no socket.

    PYTHONPATH=src python bench/bench_hot_path.py [--calls 5000]

Compare two commits in one run by pointing PYTHONPATH at each one's src/ in turn. Builds the
`featureline init` example repo in a temporary folder; prints the best of 5 rounds (µs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import featureline as fl

FEATURES = ["driver_stats:conv_rate", "driver_stats:acc_rate", "driver_stats:avg_daily_trips"]


def _repo() -> Path:
    repo = Path(tempfile.mkdtemp(prefix="hotpath-")) / "repo"
    fl.init_repo(repo, project="bench")
    with fl.FeatureStore(repo) as store:
        store.apply(message="bench")
        store.ingest("driver_stats")
        store.materialize_incremental()
    return repo


def _best(fn: Any, calls: int) -> float:
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t) / calls * 1e6)
    return best


async def _asgi_best(repo: Path, calls: int) -> float:
    from featureline.server import create_app

    app = create_app(repo)
    body = json.dumps({"features": FEATURES, "entities": {"driver_id": [1001]}}).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/features/online",
        "raw_path": b"/features/online",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }

    async def one() -> int:
        sent: list[MutableMapping[str, Any]] = []
        done = False

        async def receive() -> dict[str, Any]:
            nonlocal done
            if not done:
                done = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(10)
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        await app(dict(scope), receive, send)
        return int(sent[0]["status"])

    assert await one() == 200
    for _ in range(calls // 2):
        await one()
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(calls):
            await one()
        best = min(best, (time.perf_counter() - t) / calls * 1e6)
    return best


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=5000)
    args = ap.parse_args(argv)
    repo = _repo()
    with fl.FeatureStore(repo) as store:
        entities = {"driver_id": [1001]}
        for _ in range(args.calls // 2):
            store.get_online_features(FEATURES, entities)
        facade = _best(lambda: store.get_online_features(FEATURES, entities), args.calls * 4)
    http = asyncio.run(_asgi_best(repo, args.calls))
    print(f"featureline {fl.__version__} from {Path(fl.__file__).parent}")
    print(f"in-process get_online_features, 1 key x 3 features: {facade:.1f} us (best of 5)")
    print(f"one POST /features/online through the ASGI app, no socket: {http:.1f} us (best of 5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
