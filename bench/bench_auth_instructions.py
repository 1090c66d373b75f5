"""What auth costs a server per HTTP request, in instructions (a benchmark, not a test; issue 11).

The HTTP bar of issue 11 is "an authorized online read costs <= 5% of HTTP throughput". Timed
runs on this shared 2-core machine spread by +-10-17% from round to round (bench_auth.py), more
than the bar. Instructions do not: `featureline serve` runs under valgrind's callgrind, once on
a repo with auth off and once on the same repo with auth on (bench_auth.build: an API token and
a `readers` permission); after a warm-up the counters are zeroed (`callgrind_control -z`), one
keep-alive client posts `--requests` POST /features/online (`--clients N`: N clients at once,
each on its own connection, sharing them out, as bench_auth.py's 8), and the counters are dumped
(`callgrind_control -d`). Instructions per request, each mode `--repeats` times (the same
figure twice shows it is repeatable), and the change on / off: a server bound by its CPU serves
that much fewer requests a second, to the extent that instructions per request stand for time
(same code mix, so roughly the same instructions per cycle).

    PYTHONPATH=src python bench/bench_auth_instructions.py [--requests 2000] [--repeats 2] [--clients 1]
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SRC = BENCH.parent / "src"
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(SRC))

import bench_auth  # noqa: E402  (bench/ is not a package)
import bench_http  # noqa: E402

BODY = json.dumps(bench_http.DEFAULT_BODY).encode()
_TOTAL = re.compile(rb"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


def _serve(repo: Path, out: Path) -> tuple[subprocess.Popen[bytes], int]:
    """`featureline serve` on `repo` under callgrind; its port once /health answers (start-up
    runs ~50x slower under valgrind)."""
    wrap = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg.%p"]
    with (out / "serve.log").open("wb") as log:
        proc, base = bench_http.start_server(repo, 1, wrap=wrap, wait=600, output=log)
    return proc, int(base.rsplit(":", 1)[1])


def _post(port: int, n: int, token: str | None) -> None:
    """`n` POST /features/online on one keep-alive connection; every answer must be 200."""
    headers = {"Content-Type": "application/json", "Host": f"127.0.0.1:{port}"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        for _ in range(n):
            conn.request("POST", "/features/online", BODY, headers)
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                raise SystemExit(f"POST /features/online answered {r.status}")
    finally:
        conn.close()


def _post_many(port: int, n: int, token: str | None, clients: int) -> None:
    """`n` requests shared out over `clients` connections at once."""
    if clients <= 1:
        _post(port, n, token)
        return
    errors: list[BaseException] = []

    def one(k: int) -> None:
        try:
            _post(port, k, token)
        except BaseException as e:  # reported after the join
            errors.append(e)

    shares = [n // clients + (i < n % clients) for i in range(clients)]
    threads = [threading.Thread(target=one, args=(k,)) for k in shares]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"a client failed: {errors[0]!r}")


def _dumped(out: Path, pid: int, before: set[Path]) -> int:
    """The instructions of the dump `callgrind_control -d` just wrote for `pid`."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        new = [p for p in out.glob(f"cg.{pid}*") if p not in before]
        for p in new:
            m = _TOTAL.search(p.read_bytes())
            if m:
                return int(m.group(1))
        time.sleep(0.5)
    raise SystemExit(f"no callgrind dump of {pid} appeared in {out}")


def measure(
    repo: Path, token: str | None, requests: int, repeats: int, out: Path, clients: int = 1
) -> list[float]:
    """Instructions per request of the server on `repo`, `repeats` times."""
    proc, port = _serve(repo, out)
    try:
        _post(port, 300, token)  # warm: plans, the catalog, decisions, the token's cache
        per = []
        for _ in range(repeats):
            subprocess.run(
                ["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True
            )
            _post_many(port, requests, token, clients)
            before = set(out.glob(f"cg.{proc.pid}*"))
            subprocess.run(
                ["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True
            )
            per.append(_dumped(out, proc.pid, before) / requests)
        return per
    finally:
        proc.terminate()
        proc.wait(timeout=120)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--clients", type=int, default=1, help="keep-alive connections at once")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        off, on, token = bench_auth.build(Path(tmp))
        out = Path(tmp) / "callgrind"
        out.mkdir()
        got = {
            "off": measure(off, None, args.requests, args.repeats, out, args.clients),
            "on": measure(on, token, args.requests, args.repeats, out, args.clients),
        }
    print(
        f"featureline serve under callgrind, POST /features/online, {args.clients} keep-alive "
        f"client(s), "
        f"{args.requests:,} requests per repeat, instructions per request:"
    )
    for mode, per in got.items():
        print(f"  auth {mode:<3} " + "  ".join(f"{x:,.0f}" for x in per))
    off_m, on_m = min(got["off"]), min(got["on"])
    print(
        f"  auth adds {on_m - off_m:,.0f} instructions per request = {100 * (on_m - off_m) / off_m:+.2f}% "
        f"(the fewest of each mode; bar: <= 5% of throughput)"
    )


if __name__ == "__main__":
    main()
