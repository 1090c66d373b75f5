"""HTTP throughput and latency of the feature server (a benchmark, not a test).

By default it builds the `featureline init` example repo in a temporary folder (apply, ingest,
materialize), starts `featureline serve` on a free loopback port, and drives it with 8
concurrent keep-alive clients for 10 s, each posting 1 entity x 3 features (all the example's
features). It prints requests/s and p50/p90/p99 latency.

Point it at any server (e.g. Feast's `feast serve`) with --url and --body-file:

    python bench/bench_http.py                                   # featureline, started here
    python bench/bench_http.py --workers 2                       # featureline with 2 worker processes
    python bench/bench_http.py --url http://127.0.0.1:6566/get-online-features --body-file body.json

Clients: `raw` (default: asyncio streams speaking HTTP/1.1 keep-alive with a prebuilt request,
so the client costs little CPU next to the server), `httpx` (httpx.AsyncClient), or `wrk` when
it is installed (`--client wrk`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BODY = {
    "features": ["driver_stats:conv_rate", "driver_stats:acc_rate", "driver_stats:avg_daily_trips"],
    "entities": {"driver_id": [1001]},
}


# -- the server under test ---------------------------------------------------------------------------


def build_repo(folder: Path) -> Path:
    sys.path.insert(0, str(ROOT / "src"))
    import featureline as fl

    repo = folder / "drivers"
    fl.init_repo(repo, project="bench")
    with fl.FeatureStore(repo) as store:
        store.apply(message="bench")
        store.ingest("driver_stats")
        store.materialize_incremental()
    return repo


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    repo: Path,
    workers: int,
    wrap: list[str] | None = None,
    wait: float = 60,
    output: Any = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """`featureline serve` on `repo` (run under `wrap`, e.g. valgrind, when given; its output to
    `output`) and its base URL once /health answers, within `wait` seconds."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        *(wrap or []),
        sys.executable,
        "-m",
        "featureline.cli",
        "--repo",
        str(repo),
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=output, stderr=output)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"featureline serve exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=max(1, wait / 5)) as s:
                s.sendall(
                    f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()
                )
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return proc, base
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"featureline serve did not become healthy in {wait:g} s")


# -- clients -------------------------------------------------------------------------------------------


async def _raw_worker(
    host: str, port: int, request: bytes, stop_at: float, lat: list[float], errors: list[str]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    clock = time.perf_counter
    try:
        while True:
            t0 = clock()
            if t0 >= stop_at:
                break
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            if m is None:
                errors.append("response without Content-Length")
                return
            await reader.readexactly(int(m.group(1)))
            lat.append(clock() - t0)
            if not head.startswith(b"HTTP/1.1 200"):
                errors.append(head.split(b"\r\n", 1)[0].decode())
    finally:
        writer.close()
        await writer.wait_closed()


async def _httpx_worker(
    url: str, body: bytes, stop_at: float, lat: list[float], errors: list[str]
) -> None:
    import httpx

    clock = time.perf_counter
    async with httpx.AsyncClient(timeout=30) as client:
        headers = {"content-type": "application/json"}
        while True:
            t0 = clock()
            if t0 >= stop_at:
                break
            r = await client.post(url, content=body, headers=headers)
            lat.append(clock() - t0)
            if r.status_code != 200:
                errors.append(f"{r.status_code} {r.text[:200]}")


async def run_load(
    url: str, body: bytes, concurrency: int, seconds: float, client: str
) -> tuple[list[float], list[str], float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path or "/"
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    lat: list[float] = []
    errors: list[str] = []
    start = time.perf_counter()
    stop_at = start + seconds
    if client == "raw":
        jobs = [_raw_worker(host, port, request, stop_at, lat, errors) for _ in range(concurrency)]
    else:
        jobs = [_httpx_worker(url, body, stop_at, lat, errors) for _ in range(concurrency)]
    await asyncio.gather(*jobs)
    return lat, errors, time.perf_counter() - start


def run_wrk(url: str, body: bytes, concurrency: int, seconds: float) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(
            f'wrk.method = "POST"\nwrk.body = {json.dumps(body.decode())}\nwrk.headers["Content-Type"] = "application/json"\n'
        )
        script = f.name
    try:
        threads = min(concurrency, os.cpu_count() or 1)
        out = subprocess.run(
            [
                "wrk",
                f"-t{threads}",
                f"-c{concurrency}",
                f"-d{int(seconds)}s",
                "--latency",
                "-s",
                script,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script)
    print(out)
    return parse_wrk(out)


def parse_wrk(out: str) -> dict[str, float]:
    """Throughput, latency percentiles (ms) and errors from `wrk --latency` output."""
    import re

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if m is None:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    if errs:
        errors += sum(int(g) for g in errs.groups())
    return {
        "rps": float(rps.group(1)) if rps else float("nan"),
        "requests": int(total.group(1)) if total else 0,
        "errors": errors,
        "p50_ms": ms("50%"),
        "p90_ms": ms("90%"),
        "p99_ms": ms("99%"),
    }


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[i]


def check_once(url: str, body: bytes) -> None:
    import httpx

    r = httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=30)
    if r.status_code != 200:
        raise SystemExit(f"The benchmark request fails: {r.status_code} {r.text[:500]}")
    print(f"response ({len(r.content)} bytes): {r.text[:300]}")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--url", help="Full URL to POST to; without it a featureline server is started here."
    )
    ap.add_argument(
        "--path",
        default="/features/online",
        help="Path on the started server (e.g. /get-online-features).",
    )
    ap.add_argument(
        "--body-file",
        type=Path,
        help="JSON request body (default: 1 driver x the 3 example features).",
    )
    ap.add_argument(
        "--concurrency", "-c", type=int, default=8, help="Concurrent keep-alive connections."
    )
    ap.add_argument("--duration", "-d", type=float, default=10.0, help="Seconds of measured load.")
    ap.add_argument("--warmup", type=float, default=1.0, help="Seconds of unmeasured load first.")
    ap.add_argument(
        "--workers", type=int, default=1, help="Worker processes of the started server."
    )
    ap.add_argument("--repo", type=Path, help="Serve this repo instead of a fresh example repo.")
    ap.add_argument("--client", choices=["raw", "httpx", "wrk"], default="raw")
    ap.add_argument("--json", action="store_true", help="Also print the result as one JSON line.")
    args = ap.parse_args()

    body = args.body_file.read_bytes() if args.body_file else json.dumps(DEFAULT_BODY).encode()
    if args.client == "wrk" and shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed; use --client raw (the default) or httpx.")
    proc = None
    tmp = None
    try:
        if args.url:
            url = args.url
        else:
            tmp = tempfile.TemporaryDirectory(prefix="featureline-bench-")
            repo = args.repo or build_repo(Path(tmp.name))
            proc, base = start_server(repo, args.workers)
            url = base + args.path
        check_once(url, body)
        if args.client == "wrk":
            res = run_wrk(url, body, args.concurrency, args.duration)
            print(f"{url}  client=wrk concurrency={args.concurrency}")
            print(
                f"requests: {res['requests']:,}  errors: {res['errors']:,}  throughput: {res['rps']:,.0f} req/s"
            )
            print(
                f"latency ms: p50 {res['p50_ms']:.3f}  p90 {res['p90_ms']:.3f}  p99 {res['p99_ms']:.3f}"
            )
            if args.json:
                print(json.dumps({"url": url, **res}))
            return
        if args.warmup > 0:
            asyncio.run(run_load(url, body, args.concurrency, args.warmup, args.client))
        lat, errors, elapsed = asyncio.run(
            run_load(url, body, args.concurrency, args.duration, args.client)
        )
        lat.sort()
        rps = len(lat) / elapsed
        ms = [percentile(lat, q) * 1000 for q in (50, 90, 99)]
        print(
            f"{url}  client={args.client} concurrency={args.concurrency} duration={elapsed:.1f}s"
            + (f" server_workers={args.workers}" if proc else "")
        )
        print(f"requests: {len(lat):,}  errors: {len(errors):,}  throughput: {rps:,.0f} req/s")
        print(
            f"latency ms: p50 {ms[0]:.3f}  p90 {ms[1]:.3f}  p99 {ms[2]:.3f}  max {lat[-1] * 1000 if lat else float('nan'):.3f}  "
            f"mean {statistics.fmean(lat) * 1000 if lat else float('nan'):.3f}"
        )
        if errors:
            print(f"first error: {errors[0]}")
        if args.json:
            print(
                json.dumps(
                    {
                        "url": url,
                        "requests": len(lat),
                        "errors": len(errors),
                        "rps": rps,
                        "p50_ms": ms[0],
                        "p90_ms": ms[1],
                        "p99_ms": ms[2],
                    }
                )
            )
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
