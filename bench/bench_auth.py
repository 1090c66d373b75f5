"""What auth costs on the read hot path (a benchmark, not a test; issue 11's bars).

Builds the `featureline init` example repo twice, in a temporary folder: one with auth off (the
default) and one with `auth.enabled` and a `readers` permission, read with an API token. Then:

- in process: `get_online_features` (1 entity x 3 features), off / on alternated in rounds,
  median per call; bar: an authorized read adds <= 10 us;
- over HTTP: `featureline serve` on each repo, 8 keep-alive clients posting /features/online
  (with `Authorization: Bearer` on the auth repo), off / on alternated; bar: <= 5% fewer
  requests/s.

    PYTHONPATH=src python bench/bench_auth.py [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent / "src"))

import bench_http  # noqa: E402  (bench/ is not a package)

FEATURES = bench_http.DEFAULT_BODY["features"]
PERMISSION = """

from featureline import Permission

readers = Permission("readers", actions=["read_online"], resources="feature_view:*", roles=["reader"])
"""


def build(folder: Path) -> tuple[Path, Path, str]:
    import featureline as fl
    from featureline.auth import Principal

    base = bench_http.build_repo(folder)
    off, on = folder / "drivers_off", folder / "drivers_auth"
    shutil.copytree(base, off)  # both copies: the same files, laid out alike
    shutil.copytree(base, on)
    with (on / "featureline.yaml").open("a") as f:
        f.write("\nauth:\n  enabled: true\n  public_paths: [/health]\n")
    with (on / "definitions.py").open("a") as f:
        f.write(PERMISSION)
    with fl.FeatureStore(on, principal=Principal("bench", ("admin",))) as admin:
        admin.apply(message="permissions")
        assert admin.authorizer is not None
        token, _ = admin.authorizer.tokens.create("reader", ["reader"])
    return off, on, token


def in_process(off: Path, on: Path, token: str, rounds: int, n: int) -> tuple[float, float]:
    import featureline as fl

    rows = {"driver_id": [1001]}
    stores = {"off": fl.FeatureStore(off), "on": fl.FeatureStore(on, token=token)}
    per: dict[str, list[float]] = {"off": [], "on": []}
    for s in stores.values():
        for _ in range(2000):  # warm: plans, decisions, catalog
            s.get_online_features(FEATURES, rows)
    for _ in range(rounds):
        for name, s in stores.items():
            read = s.get_online_features
            t0 = time.perf_counter()
            for _ in range(n):
                read(FEATURES, rows)
            per[name].append((time.perf_counter() - t0) / n * 1e6)
    for s in stores.values():
        s.close()
    return statistics.median(per["off"]), statistics.median(per["on"])


async def _load(base: str, body: bytes, token: str | None, seconds: float) -> tuple[float, int]:
    from urllib.parse import urlsplit

    parts = urlsplit(base)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    request = (
        f"POST /features/online HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"{auth}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    lat: list[float] = []
    errors: list[str] = []
    start = time.perf_counter()
    stop_at = start + seconds
    await asyncio.gather(
        *(bench_http._raw_worker(host, port, request, stop_at, lat, errors) for _ in range(8))
    )
    if errors:
        raise SystemExit(f"errors: {errors[:3]}")
    return len(lat) / (time.perf_counter() - start), len(lat)


def over_http(off: Path, on: Path, token: str, rounds: int, seconds: float) -> tuple[float, float]:
    import json

    body = json.dumps(bench_http.DEFAULT_BODY).encode()
    procs = {}
    try:
        procs["off"] = bench_http.start_server(off, 1)
        procs["on"] = bench_http.start_server(on, 1)
        per: dict[str, list[float]] = {"off": [], "on": []}
        for name, (_, base) in procs.items():  # warm up
            asyncio.run(_load(base, body, token if name == "on" else None, 1.0))
        order = list(procs.items())
        for _ in range(rounds):
            for name, (_, base) in order:
                rps, _ = asyncio.run(_load(base, body, token if name == "on" else None, seconds))
                per[name].append(rps)
            order.reverse()  # off-on, on-off, ...: drifting load on a shared machine evens out
        return statistics.median(per["off"]), statistics.median(per["on"])
    finally:
        for proc, _ in procs.values():
            proc.terminate()
            proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seconds", type=float, default=5.0, help="per HTTP run")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reads", type=int, default=10000, help="in-process reads per round")
    ap.add_argument("--skip-http", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        off, on, token = build(Path(tmp))
        a, b = in_process(off, on, token, args.rounds, args.reads)
        print(
            f"in-process online read, 1 entity x 3 features (median of {args.rounds} rounds x {args.reads}):"
        )
        print(
            f"  auth off {a:7.2f} us   auth on (API token, cached decision) {b:7.2f} us   added {b - a:+.2f} us  (bar: <= 10 us)"
        )
        if not args.skip_http:
            x, y = over_http(off, on, token, args.rounds, args.seconds)
            print(
                f"HTTP POST /features/online, 8 keep-alive clients, 1 worker (median of {args.rounds} x {args.seconds:g} s):"
            )
            print(
                f"  auth off {x:8.0f} req/s   auth on {y:8.0f} req/s   change {100 * (y - x) / x:+.1f}%  (bar: >= -5%)"
            )


if __name__ == "__main__":
    main()
