"""What auth costs on the read hot path (a benchmark, not a test; issue 11's bars).

Builds the `featureline init` example repo twice, in a temporary folder: one with auth off (the
default) and one with `auth.enabled` and a `readers` permission, read with an API token. Then:

- in process: `get_online_features` (1 entity x 3 features), off / on alternated in rounds,
  CPU time per call (of the thread: time descheduled on a shared machine does not count);
  bar: an authorized read adds <= 10 us;
- through the ASGI app with no socket (dispatcher, auth hook, route, read, JSON): one POST
  /features/online at a time, off / on alternated, CPU time per request (the server-side cost
  of auth without the noise of sockets and client processes);
- over HTTP: `featureline serve` on each repo, 8 keep-alive clients posting /features/online
  (with `Authorization: Bearer` on the auth repo), off / on alternated; bar: <= 5% fewer
  requests/s (and the server process's CPU time per request, from /proc, beside it).

`--pin` runs the servers on CPU 0 and the clients (this process) on CPU 1, so that the two do
not take turns on one core. Each HTTP change is also given as the median of the round-by-round
changes with a bootstrap 95% interval over the rounds, and beside it the bound the server's own
cost puts on it: the CPU us auth adds per request through the ASGI app (no socket) over the
server's CPU us per HTTP request (a server bound by its CPU loses at most that share).

`--together` adds a run that does not depend on how the load drifts between rounds: both
servers (off and on) on CPU 0 at once, each with its own 8 clients (this process, on CPU 1), so
the kernel shares the core between them while both always have work; each one's requests/s
then stands for the inverse of its CPU cost per request, under the same interference. Per
round: the change of req/s on / off and each server's share of CPU 0.

`--baseline DIR` compares with another checkout (DIR/src; e.g. `git worktree add DIR HEAD~3` or
`git archive HEAD~3 src | tar -x -C DIR`) in the same run: its servers (off and on) alternate
with this tree's on the same repos, and the in-process and ASGI figures of both trees are taken
in child processes, alternately. Each figure: the median of the rounds [min-max].

    PYTHONPATH=src python bench/bench_auth.py [--seconds 5] [--rounds 3] [--pin] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# in process and through ASGI: the CPU time of the measuring thread (the reads and the event loop
# run on it), so that time spent descheduled on a shared machine does not count
CLOCK = time.thread_time
BENCH = Path(__file__).resolve().parent
SRC = Path(os.environ.get("FEATURELINE_BENCH_SRC") or BENCH.parent / "src")  # a child's tree
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(SRC))

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


def in_process(off: Path, on: Path, token: str, rounds: int, n: int) -> dict[str, list[float]]:
    """Microseconds per `get_online_features`, per round (auth off, on)."""
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
            t0 = CLOCK()
            for _ in range(n):
                read(FEATURES, rows)
            per[name].append((CLOCK() - t0) / n * 1e6)
    for s in stores.values():
        s.close()
    return per


def _scope(body: bytes, token: str | None) -> dict[str, Any]:
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/features/online",
        "raw_path": b"/features/online",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }


async def _asgi_round(app: Any, body: bytes, token: str | None, n: int) -> float:
    """Microseconds per POST /features/online through `app`, no socket (the mean of `n`)."""
    scope = _scope(body, token)
    status: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    async def one() -> None:
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(10)
            return {"type": "http.disconnect"}

        await app(dict(scope), receive, send)

    t0 = CLOCK()
    for _ in range(n):
        await one()
    elapsed = CLOCK() - t0
    if any(s != 200 for s in status):
        raise SystemExit(f"ASGI answers other than 200: {sorted(set(status))}")
    return elapsed / n * 1e6


def asgi(off: Path, on: Path, token: str, rounds: int, n: int) -> dict[str, list[float]]:
    import json as _json

    from featureline.server import create_app

    body = _json.dumps(bench_http.DEFAULT_BODY).encode()
    apps = {"off": (create_app(off), None), "on": (create_app(on), token)}
    per: dict[str, list[float]] = {"off": [], "on": []}
    order = list(apps.items())
    for app, tok in apps.values():  # warm: plans, decisions, catalog
        asyncio.run(_asgi_round(app, body, tok, 2000))
    for _ in range(rounds):
        for name, (app, tok) in order:
            per[name].append(asyncio.run(_asgi_round(app, body, tok, n)))
        order.reverse()
    for app, _ in apps.values():
        app.service.store.close()
    return per


def _fig(values: list[float], digits: int = 2) -> str:
    """`median [min-max]`."""
    med, lo, hi = statistics.median(values), min(values), max(values)
    return f"{med:.{digits}f} [{lo:.{digits}f}-{hi:.{digits}f}]"


def child(off: Path, on: Path, token: str, rounds: int, reads: int, calls: int) -> None:
    """The in-process and ASGI figures of this process's tree (SRC), as JSON on stdout."""
    print(
        json.dumps(
            {
                "in_process": in_process(off, on, token, rounds, reads),
                "asgi": asgi(off, on, token, rounds, calls),
            }
        )
    )


def run_child(
    src: Path, off: Path, on: Path, token: str, rounds: int, reads: int, calls: int
) -> dict[str, Any]:
    env = {**os.environ, "FEATURELINE_BENCH_SRC": str(src), "PYTHONPATH": str(src)}
    args = [str(off), str(on), token, str(rounds), str(reads), str(calls)]
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], env=env, check=True, capture_output=True
    )
    result: dict[str, Any] = json.loads(out.stdout.decode().strip().splitlines()[-1])
    return result


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


def _start(repo: Path, src: Path, cpu: int | None = None) -> tuple[Any, str]:
    """`featureline serve` on `repo`, running the tree `src` (bench_http's server, its ROOT
    moved), on CPU `cpu` alone when given."""
    saved = bench_http.ROOT
    bench_http.ROOT = src.parent
    try:
        proc, base = bench_http.start_server(repo, 1)
    finally:
        bench_http.ROOT = saved
    if cpu is not None:
        os.sched_setaffinity(proc.pid, {cpu})
    return proc, base


def _bootstrap(changes: list[float], draws: int = 4000) -> tuple[float, float, float]:
    """The median of `changes` and a bootstrap 95% interval of it (resampled rounds, fixed seed)."""
    rng = random.Random(7)
    n = len(changes)
    meds = sorted(statistics.median(rng.choices(changes, k=n)) for _ in range(draws))
    return statistics.median(changes), meds[int(0.025 * draws)], meds[int(0.975 * draws) - 1]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def over_http(
    off: Path,
    on: Path,
    token: str,
    rounds: int,
    seconds: float,
    trees: dict[str, Path],
    pin: bool = False,
) -> tuple[dict[str, dict[str, list[float]]], dict[str, dict[str, list[float]]]]:
    """requests/s of each (tree, off / on) server, per round, and the server's CPU us per request
    (what a loaded shared machine's descheduling does not inflate); the order alternates by round."""
    body = json.dumps(bench_http.DEFAULT_BODY).encode()
    procs: dict[tuple[str, str], tuple[Any, str]] = {}
    try:
        server_cpu = 0 if pin else None
        if pin:  # the clients (this process) on the other core
            os.sched_setaffinity(0, {1})
        for tree, src in trees.items():
            procs[tree, "off"] = _start(off, src, server_cpu)
            procs[tree, "on"] = _start(on, src, server_cpu)
        per: dict[str, dict[str, list[float]]] = {t: {"off": [], "on": []} for t in trees}
        cpu: dict[str, dict[str, list[float]]] = {t: {"off": [], "on": []} for t in trees}
        for (_, mode), (_, base) in procs.items():  # warm up
            asyncio.run(_load(base, body, token if mode == "on" else None, 1.0))
        order = list(procs.items())
        for _ in range(rounds):
            for (tree, mode), (proc, base) in order:
                c0 = _cpu_seconds(proc.pid)
                rps, n = asyncio.run(_load(base, body, token if mode == "on" else None, seconds))
                per[tree][mode].append(rps)
                cpu[tree][mode].append((_cpu_seconds(proc.pid) - c0) / max(n, 1) * 1e6)
            order.reverse()  # off-on, on-off, ...: drifting load on a shared machine evens out
        return per, cpu
    finally:
        for proc, _ in procs.values():
            proc.terminate()
            proc.wait(timeout=30)


async def _load_both(
    bases: dict[str, str], body: bytes, token: str, seconds: float
) -> dict[str, int]:
    """8 keep-alive clients on each server at once (`on` with the token) for `seconds`: the
    requests each answered."""
    from urllib.parse import urlsplit

    stop_at = time.perf_counter() + seconds
    lats: dict[str, list[float]] = {mode: [] for mode in bases}
    errors: list[str] = []
    jobs = []
    for mode, base in bases.items():
        parts = urlsplit(base)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        auth = f"Authorization: Bearer {token}\r\n" if mode == "on" else ""
        request = (
            f"POST /features/online HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\n{auth}Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        jobs += [
            bench_http._raw_worker(host, port, request, stop_at, lats[mode], errors)
            for _ in range(8)
        ]
    await asyncio.gather(*jobs)
    if errors:
        raise SystemExit(f"errors: {errors[:3]}")
    return {mode: len(lat) for mode, lat in lats.items()}


def together(
    off: Path, on: Path, token: str, rounds: int, seconds: float
) -> tuple[list[float], list[float]]:
    """Both servers on CPU 0 at once (clients on CPU 1): per round the % change of req/s on /
    off, and the on server's share of the CPU both used."""
    body = json.dumps(bench_http.DEFAULT_BODY).encode()
    os.sched_setaffinity(0, {1})
    procs = {"off": _start(off, SRC, 0), "on": _start(on, SRC, 0)}
    try:
        bases = {mode: base for mode, (_, base) in procs.items()}
        asyncio.run(_load_both(bases, body, token, 1.0))  # warm up
        changes, shares = [], []
        for _ in range(rounds):
            c0 = {mode: _cpu_seconds(p.pid) for mode, (p, _) in procs.items()}
            n = asyncio.run(_load_both(bases, body, token, seconds))
            used = {mode: _cpu_seconds(p.pid) - c0[mode] for mode, (p, _) in procs.items()}
            changes.append(100 * (n["on"] - n["off"]) / n["off"])
            shares.append(used["on"] / max(used["on"] + used["off"], 1e-9))
        return changes, shares
    finally:
        for proc, _ in procs.values():
            proc.terminate()
            proc.wait(timeout=30)


def _change(per: dict[str, list[float]]) -> list[float]:
    """% change of `on` against `off`, round by round (each pair ran back to back)."""
    return [100 * (b - a) / a for a, b in zip(per["off"], per["on"], strict=True)]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seconds", type=float, default=5.0, help="per HTTP run")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reads", type=int, default=10000, help="in-process reads per round")
    ap.add_argument("--calls", type=int, default=5000, help="ASGI requests per round")
    ap.add_argument("--skip-http", action="store_true")
    ap.add_argument("--pin", action="store_true", help="servers on CPU 0, clients on CPU 1")
    ap.add_argument("--together", action="store_true", help="both servers at once on CPU 0")
    ap.add_argument("--baseline", type=Path, help="another checkout: compare its src/ in the run")
    ap.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        off, on, token, rounds, reads, calls = args.child
        child(Path(off), Path(on), token, int(rounds), int(reads), int(calls))
        return
    trees = {"this tree": SRC}
    if args.baseline is not None:
        trees["baseline"] = (args.baseline / "src").resolve()
        if not (trees["baseline"] / "featureline").is_dir():
            raise SystemExit(f"{trees['baseline']} holds no featureline package")
    with tempfile.TemporaryDirectory() as tmp:
        off, on, token = build(Path(tmp))
        inproc: dict[str, dict[str, list[float]]] = {t: {"off": [], "on": []} for t in trees}
        viasgi: dict[str, dict[str, list[float]]] = {t: {"off": [], "on": []} for t in trees}
        if len(trees) == 1:
            inproc["this tree"] = in_process(off, on, token, args.rounds, args.reads)
            viasgi["this tree"] = asgi(off, on, token, args.rounds, args.calls)
        else:  # each tree in its own processes, alternately, one round each
            order = list(trees.items())
            for _ in range(args.rounds):
                for tree, src in order:
                    r = run_child(src, off, on, token, 1, args.reads, args.calls)
                    for mode in ("off", "on"):
                        inproc[tree][mode] += r["in_process"][mode]
                        viasgi[tree][mode] += r["asgi"][mode]
                order.reverse()
        print(
            f"in-process online read, 1 entity x 3 features, CPU us per call ({args.reads} per round):"
        )
        for tree in trees:
            x, y = inproc[tree]["off"], inproc[tree]["on"]
            added = [b - a for a, b in zip(x, y, strict=True)]
            print(
                f"  {tree:<10} auth off {_fig(x)}   on {_fig(y)}   added {_fig(added)}  (bar: <= 10 us)"
            )
        print(
            f"POST /features/online through the ASGI app, no socket, CPU us per request ({args.calls} per round):"
        )
        for tree in trees:
            x, y = viasgi[tree]["off"], viasgi[tree]["on"]
            added = [b - a for a, b in zip(x, y, strict=True)]
            print(f"  {tree:<10} auth off {_fig(x, 1)}   on {_fig(y, 1)}   added {_fig(added, 1)}")
        if not args.skip_http:
            per, cpu = over_http(off, on, token, args.rounds, args.seconds, trees, args.pin)
            print(
                f"HTTP POST /features/online, 8 keep-alive clients, 1 worker, req/s "
                f"({args.rounds} rounds x {args.seconds:g} s, median [min-max]):"
            )
            for tree in trees:
                x, y = per[tree]["off"], per[tree]["on"]
                print(
                    f"  {tree:<10} auth off {_fig(x, 0)}   on {_fig(y, 0)}   change {_fig(_change(per[tree]), 1)}%  (bar: >= -5%)"
                )
            print(
                "  the server's CPU us per request (same runs; load on the machine inflates it less):"
            )
            for tree in trees:
                x, y = cpu[tree]["off"], cpu[tree]["on"]
                print(
                    f"  {tree:<10} auth off {_fig(x, 1)}   on {_fig(y, 1)}   change {_fig(_change(cpu[tree]), 1)}%"
                )
            print("  req/s change: median of the rounds' changes [bootstrap 95% interval]; bound:")
            for tree in trees:
                med, lo, hi = _bootstrap(_change(per[tree]))
                added = statistics.median(
                    b - a for a, b in zip(viasgi[tree]["off"], viasgi[tree]["on"], strict=True)
                )
                bound = -100 * added / statistics.median(cpu[tree]["off"] + cpu[tree]["on"])
                print(
                    f"  {tree:<10} {med:+.1f}% [{lo:+.1f}, {hi:+.1f}]; added ASGI CPU {added:.1f} us "
                    f"per request / the server's CPU per HTTP request = {bound:+.1f}%  (bar: >= -5%)"
                )

        if args.together:
            changes, shares = together(off, on, token, args.rounds, args.seconds)
            med, lo, hi = _bootstrap(changes)
            print(
                f"HTTP, both servers at once on CPU 0, 8 clients each ({args.rounds} rounds x "
                f"{args.seconds:g} s): req/s change on / off {med:+.1f}% [{lo:+.1f}, {hi:+.1f}] "
                f"(median [bootstrap 95%]; rounds {_fig(changes, 1)}); the on server's share "
                f"of the CPU both used {_fig([100 * x for x in shares], 1)}%  (bar: >= -5%)"
            )


if __name__ == "__main__":
    main()
