"""The feature server's memory under sustained load with many distinct feature lists (a benchmark,
not a test; issue 7: "the server held 60 s under wrk with flat memory, with 500 distinct feature
lists").

It builds the `featureline init` example repo in a temporary folder (apply, ingest, materialize),
starts `featureline serve` (one worker) on a free loopback port, opens `--slow` connections that
send half a request and stop (a slowloris), and drives the server for `--seconds` with POST
/features/online bodies cycling through `--lists` distinct feature lists (each list repeats the
example's 3 features in its own order and length; a repeated feature is read once, so every list
is a distinct read plan). The load comes from `wrk` when installed (a Lua script cycles the
bodies), else from a Python asyncio client. It prints the server's RSS (VmRSS of its process) at
the start, every 10 s and at the end, the requests served and their status codes, and how many of
the half-sent connections the server had closed (it should close them after its header timeout).

    python bench/bench_server_memory.py                 # 60 s, 500 lists, 200 half-sent connections
    python bench/bench_server_memory.py --lists 5000 --seconds 30 --client python
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FEATURES = ["driver_stats:conv_rate", "driver_stats:acc_rate", "driver_stats:avg_daily_trips"]
DRIVERS = list(range(1001, 1051))


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


def feature_lists(n: int) -> list[list[str]]:
    """`n` distinct lists: list i starts at feature i % 3 and has 1 + i // 3 entries."""
    return [[FEATURES[(i + j) % 3] for j in range(1 + i // 3)] for i in range(n)]


def bodies(n: int) -> list[bytes]:
    rnd = random.Random(7)
    return [
        json.dumps({"features": f, "entities": {"driver_id": [rnd.choice(DRIVERS)]}}).encode()
        for f in feature_lists(n)
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(repo: Path, port: int, extra: list[str]) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])
        ),
    }
    cmd = [
        sys.executable,
        "-m",
        "featureline.cli",
        "--repo",
        str(repo),
        "serve",
        "--port",
        str(port),
        "--log-level",
        "warning",
        *extra,
    ]
    proc = subprocess.Popen(cmd, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"featureline serve exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(
                    f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()
                )
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return proc
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("featureline serve did not become healthy in 60 s")


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# -- half-sent requests ------------------------------------------------------------------------------


class Slowloris:
    """`n` connections that each send half a request's headers, then wait for the server to close."""

    def __init__(self, port: int, n: int) -> None:
        self.socks: list[socket.socket] = []
        self.closed_at: dict[int, float] = {}
        self.started = time.monotonic()
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(
                f"POST /features/online HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Ty".encode()
            )
            s.setblocking(False)
            self.socks.append(s)

    def poll(self) -> int:
        """How many are still open (reads each to notice the server's close)."""
        for i, s in enumerate(self.socks):
            if i in self.closed_at:
                continue
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        self.closed_at[i] = time.monotonic() - self.started
                        break
            except BlockingIOError:
                pass
            except OSError:
                self.closed_at[i] = time.monotonic() - self.started
        return len(self.socks) - len(self.closed_at)

    def close(self) -> None:
        for s in self.socks:
            s.close()


# -- load generators ---------------------------------------------------------------------------------


def run_wrk(port: int, payloads: list[bytes], seconds: int, connections: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        lua_bodies = ",\n".join(json.dumps(b.decode()) for b in payloads)
        f.write(
            "local bodies = {\n" + lua_bodies + "\n}\n"
            "local i = 0\n"
            'local headers = {["Content-Type"] = "application/json"}\n'
            "request = function()\n  i = i % #bodies + 1\n"
            '  return wrk.format("POST", "/features/online", headers, bodies[i])\nend\n'
            "done = function(summary, latency, requests)\n"
            '  io.write(string.format("JSON {\\"requests\\": %d, \\"non2xx\\": %d, \\"p50_ms\\": %.3f, \\"p99_ms\\": %.3f}\\n",\n'
            "    summary.requests, summary.errors.status, latency:percentile(50) / 1000, latency:percentile(99) / 1000))\nend\n"
        )
        script = f.name
    try:
        cmd = [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            script,
            f"http://127.0.0.1:{port}/features/online",
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    finally:
        os.unlink(script)
    m = re.search(r"^JSON (\{.*\})$", out.stdout, re.MULTILINE)
    if not m:
        raise SystemExit(f"wrk failed:\n{out.stdout}\n{out.stderr}")
    result: dict[str, Any] = json.loads(m.group(1))
    errors = re.search(r"Socket errors: (.*)", out.stdout)
    result["socket_errors"] = errors.group(1) if errors else "none"
    return result


async def _python_worker(
    port: int, payloads: list[bytes], start: int, stop_at: float, stats: dict[str, Any]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = start
    try:
        while time.monotonic() < stop_at:
            body = payloads[i % len(payloads)]
            i += 1
            writer.write(
                f"POST /features/online HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            t = time.perf_counter()
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            stats["lat"].append(time.perf_counter() - t)
            stats["requests"] += 1
            if not head.startswith(b"HTTP/1.1 2"):
                stats["non2xx"] += 1
    finally:
        writer.close()


def run_python(port: int, payloads: list[bytes], seconds: int, connections: int) -> dict[str, Any]:
    stats: dict[str, Any] = {"requests": 0, "non2xx": 0, "lat": []}

    async def main() -> None:
        stop_at = time.monotonic() + seconds
        await asyncio.gather(
            *(_python_worker(port, payloads, k * 7, stop_at, stats) for k in range(connections))
        )

    asyncio.run(main())
    lat = sorted(stats.pop("lat")) or [0.0]
    stats["p50_ms"] = lat[len(lat) // 2] * 1000
    stats["p99_ms"] = lat[int(len(lat) * 0.99)] * 1000
    stats["socket_errors"] = "none"
    return stats


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument(
        "--lists", type=int, default=500, help="Distinct feature lists to cycle through."
    )
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument(
        "--slow", type=int, default=200, help="Half-sent connections opened at the start."
    )
    ap.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    ap.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        help="Extra `featureline serve` argument (repeatable).",
    )
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args()
    client = args.client if args.client != "auto" else ("wrk" if shutil.which("wrk") else "python")

    with tempfile.TemporaryDirectory(prefix="fl-bench-mem-") as tmp:
        repo = build_repo(Path(tmp))
        port = free_port()
        proc = start_server(repo, port, args.serve_arg)
        try:
            payloads = bodies(args.lists)
            samples: list[tuple[float, float, int | None]] = [(0.0, rss_mib(proc.pid), None)]
            print(
                f"server pid {proc.pid}; client {client}, {args.connections} connections, {args.lists} distinct feature lists, "
                f"{args.seconds} s, {args.slow} half-sent connections",
                flush=True,
            )
            slow = Slowloris(port, args.slow) if args.slow else None
            print(
                f"  t=  0 s  RSS {samples[0][1]:7.1f} MiB  (start){'  half-sent open ' + str(slow.poll()) if slow else ''}",
                flush=True,
            )
            result: dict[str, Any] = {}
            runner = run_wrk if client == "wrk" else run_python
            load = threading.Thread(
                target=lambda: result.update(runner(port, payloads, args.seconds, args.connections))
            )
            started = time.monotonic()
            load.start()
            next_at = 10.0
            while load.is_alive():
                load.join(timeout=0.2)
                elapsed = time.monotonic() - started
                if elapsed >= next_at and load.is_alive():
                    open_slow = slow.poll() if slow else None
                    samples.append((elapsed, rss_mib(proc.pid), open_slow))
                    print(
                        f"  t={elapsed:3.0f} s  RSS {samples[-1][1]:7.1f} MiB{'  half-sent open ' + str(open_slow) if slow else ''}",
                        flush=True,
                    )
                    next_at += 10.0
            elapsed = time.monotonic() - started
            open_slow = slow.poll() if slow else None
            samples.append((elapsed, rss_mib(proc.pid), open_slow))
            print(
                f"  t={elapsed:3.0f} s  RSS {samples[-1][1]:7.1f} MiB  (end){'  half-sent open ' + str(open_slow) if slow else ''}",
                flush=True,
            )
            warm = samples[1][1] if len(samples) > 2 else samples[0][1]
            print(
                f"requests {result['requests']:,} ({result['requests'] / args.seconds:,.0f}/s), non-2xx {result['non2xx']}, "
                f"socket errors {result['socket_errors']}, p50 {result['p50_ms']:.3f} ms, p99 {result['p99_ms']:.3f} ms"
            )
            print(
                f"RSS start {samples[0][1]:.1f} MiB, after 10 s {warm:.1f} MiB, end {samples[-1][1]:.1f} MiB "
                f"(end - 10 s: {samples[-1][1] - warm:+.1f} MiB)"
            )
            if slow:
                times = sorted(slow.closed_at.values())
                if times:
                    print(
                        f"half-sent connections closed by the server: {len(times)}/{args.slow}, "
                        f"after {times[0]:.1f}-{times[-1]:.1f} s"
                    )
                else:
                    print(f"half-sent connections closed by the server: 0/{args.slow}")
                slow.close()
            if args.json_out:
                args.json_out.write_text(
                    json.dumps(
                        {
                            "client": client,
                            "lists": args.lists,
                            "seconds": args.seconds,
                            "result": result,
                            "rss_mib": [(round(t, 1), round(r, 1)) for t, r, _ in samples],
                        },
                        indent=2,
                    )
                )
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
