"""Featureline's online serving next to Feast's, measured in one run (a benchmark, not a test).

On the same Parquet data (bench/data.py: 100,000 entities x 100 events + ~10% corrections,
~11M rows, 5 float features) it runs, one after the other:

  1. bench/bench_online.py: featureline ingest (setup), materialization into the embedded
     (SQLite) and Redis online stores (time, rows/s, peak RSS of a child doing only that), and
     in-process get_online_features latency;
  2. bench/feast_peer.py under Feast's own Python (default /tmp/feastenv/bin/python; Feast is
     not a dependency of featureline): the same for Feast with its SQLite online store and file
     offline store;
  3. HTTP: `featureline serve` on the materialized embedded repo, then `feast serve` on the Feast
     repo, each driven by bench/bench_http.py (raw keep-alive client, 8 connections, 10 s,
     1 entity x 5 features, `POST /get-online-features`, the same JSON body for both);

then prints a summary table with ratios (how many times better featureline is; < 1 = worse).
The Feast parts are skipped, with a message, when the Feast Python is missing. Everything
Feast generates lives in a temporary folder outside the repository, removed at the end.

    python3 -m venv /tmp/feastenv && /tmp/feastenv/bin/pip install 'feast==0.67.*'
    PYTHONPATH=src nice python bench/bench_vs_feast.py [--small] [--feast-rows 1000000]
        [--feast-python PATH] [--no-redis] [--keep DIR]

Feast's server runs with `--no-access-log --max-requests 0`: featureline serve logs no access
either, and Feast's default of recycling its worker every ~1,000 requests resets the client's
keep-alive connections mid-run (the load then fails rather than measuring anything).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VIEW = "bench_features"
FEATURES = [f"f{i}" for i in range(5)]
HTTP_KEY = 42


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(url: str, body: bytes, timeout: float = 10) -> tuple[int, bytes]:
    req = urllib.request.Request(
        url, data=body, headers={"content-type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return int(r.status), r.read()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read()


def start_server(
    cmd: list[str], env: dict[str, str], url: str, body: bytes, log: Path
) -> subprocess.Popen[bytes]:
    """Start a server and wait until the benchmark request itself answers 200."""
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"`{' '.join(cmd)}` exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            status, _ = post(url, body, timeout=5)
            if status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.25)
    stop_server(proc)
    raise RuntimeError(f"`{' '.join(cmd)}` did not answer in 180 s:\n{log.read_text()[-3000:]}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's own process group (it was started in a new session)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def feast_values(raw: bytes) -> list[Any]:
    """f0..f4 of the first entity from a Feast-shaped response (both servers answer in it)."""
    doc = json.loads(raw)
    names = doc.get("metadata", {}).get("feature_names") or []
    results = doc["results"]
    if len(names) != len(results):  # the entity key comes first
        names = ["entity_id", *FEATURES]
    by = {
        n.split("__")[-1].split(":")[-1]: r["values"][0]
        for n, r in zip(names, results, strict=True)
    }
    return [by.get(f) for f in FEATURES]


def http_load(name: str, url: str, body_file: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(BENCH / "bench_http.py"),
        "--url",
        url,
        "--body-file",
        str(body_file),
        "--concurrency",
        str(args.concurrency),
        "--duration",
        str(args.duration),
        "--client",
        args.client,
        "--json",
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if p.returncode != 0:
        raise RuntimeError(
            f"bench_http.py against {name} failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
        )
    lines = p.stdout.strip().splitlines()
    for line in lines[1:-1]:  # skip the response excerpt and the JSON line
        print(f"  {name}: {line}")
    res: dict[str, Any] = json.loads(lines[-1])
    return res


def run_http(
    fl_repo: Path,
    feast_repo: Path | None,
    feast_bin: Path | None,
    work: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    body = json.dumps(
        {"features": [f"{VIEW}:{f}" for f in FEATURES], "entities": {"entity_id": [HTTP_KEY]}}
    ).encode()
    body_file = work / "http_body.json"
    body_file.write_bytes(body)
    out: dict[str, Any] = {}
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])
        ),
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}/get-online-features"
    cmd = [
        sys.executable,
        "-m",
        "featureline.cli",
        "--repo",
        str(fl_repo),
        "serve",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    print(f"\n== HTTP: featureline serve ({' '.join(cmd[1:])}) ==")
    proc = start_server(cmd, env, url, body, work / "featureline-serve.log")
    try:
        out["featureline_values"] = feast_values(post(url, body)[1])
        out["featureline"] = http_load("featureline", url, body_file, args)
    finally:
        stop_server(proc)
    if feast_repo is not None and feast_bin is not None:
        port = free_port()
        url = f"http://127.0.0.1:{port}/get-online-features"
        cmd = [
            str(feast_bin),
            "-c",
            str(feast_repo),
            "serve",
            "-p",
            str(port),
            "--no-access-log",
            "--max-requests",
            "0",
        ]
        print(f"\n== HTTP: feast serve ({' '.join(cmd[1:])}) ==")
        fenv = {k: v for k, v in env.items() if k != "PYTHONPATH"}
        fenv["FEAST_USAGE"] = "False"
        proc = start_server(cmd, fenv, url, body, work / "feast-serve.log")
        try:
            out["feast_values"] = feast_values(post(url, body)[1])
            out["feast"] = http_load("feast", url, body_file, args)
        finally:
            stop_server(proc)
    return out


# -- the summary ----------------------------------------------------------------------------------------


def _ratio(better_is_lower: bool, fl: float | None, fe: float | None) -> str:
    if fl is None or fe is None or fl <= 0 or fe <= 0:
        return ""
    return f"{(fe / fl) if better_is_lower else (fl / fe):.2f} x"


def summary(
    fl: dict[str, Any], fe: dict[str, Any] | None, http: dict[str, Any], elapsed: float
) -> None:
    rows: list[tuple[str, str, str, str]] = []
    me, mr = fl["mat_embedded"], fl.get("mat_redis")
    full = fe is not None and fe["rows"] == fe["total_rows"]

    def mat_rows(label: str, m: dict[str, Any], f: dict[str, Any] | None) -> None:
        s = m["materialize_seconds"]
        rows.append(
            (
                f"materialize -> {label}: time",
                f"{s:.1f} s",
                f"{f['materialize_s']:.1f} s{'' if full else ' (' + format(f['rows'], ',') + ' rows)'}"
                if f
                else "-",
                _ratio(True, s, f["materialize_s"]) if f and full else "",
            )
        )
        rows.append(
            (
                f"materialize -> {label}: offline rows/s",
                f"{m['rows_scanned'] / s:,.0f}",
                f"{f['materialize_rows_per_s']:,.0f}" if f else "-",
                _ratio(False, m["rows_scanned"] / s, f["materialize_rows_per_s"]) if f else "",
            )
        )
        rows.append(
            (
                f"materialize -> {label}: peak RSS",
                f"{m['peak_rss_mib']:,.0f} MiB",
                f"{f['materialize_rss_mib']:,.0f} MiB" if f else "-",
                _ratio(True, m["peak_rss_mib"], f["materialize_rss_mib"]) if f else "",
            )
        )

    mat_rows("SQLite", me, fe)
    if mr:
        mat_rows("Redis", mr, None)

    def read_rows(label: str, r: dict[str, Any], f: dict[str, Any] | None) -> None:
        for what, key, fkey in (
            ("1 entity x 5", "one", "online_1"),
            ("100 entities x 5", "hundred", "online_100"),
        ):
            for q in ("p50", "p99"):
                a = r[key][f"{q}_us"]
                b = f[fkey][f"{q}_us"] if f else None
                rows.append(
                    (
                        f"get_online_features {label} {what}: {q}",
                        f"{a:,.1f} us",
                        f"{b:,.1f} us" if b is not None else "-",
                        _ratio(True, a, b),
                    )
                )

    read_rows("SQLite", fl["reads_embedded"], fe)
    if "reads_redis" in fl:
        read_rows("Redis", fl["reads_redis"], None)

    hf, hx = http.get("featureline"), http.get("feast")
    if hf:
        rows.append(
            (
                "HTTP 1 entity x 5, 8 conns: req/s",
                f"{hf['rps']:,.0f}",
                f"{hx['rps']:,.0f}" if hx else "",
                _ratio(False, hf["rps"], hx["rps"]) if hx else "",
            )
        )
        for q in ("p50", "p99"):
            rows.append(
                (
                    f"HTTP 1 entity x 5, 8 conns: {q}",
                    f"{hf[q + '_ms']:.2f} ms",
                    f"{hx[q + '_ms']:.2f} ms" if hx else "",
                    _ratio(True, hf[q + "_ms"], hx[q + "_ms"]) if hx else "",
                )
            )
        errs = f"{hf['errors']:,}" + (f" / {hx['errors']:,}" if hx else "")
        rows.append(("HTTP errors (featureline / Feast)", errs, "", ""))

    head = (
        "figure",
        "featureline",
        f"Feast {fe['feast_version']}" if fe else "Feast (skipped)",
        "featureline better by",
    )
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    print(f"\n== summary: featureline vs Feast, same run ({elapsed / 60:.1f} min) ==")
    print(
        f"data: {fl['rows']:,} offline rows, {fl['entities']:,} entities (Feast: "
        + (f"{fe['rows']:,} rows" if fe else "skipped")
        + "); "
        "ratio = Feast / featureline for times and memory, featureline / Feast for rates"
    )
    fmt = f"{{:<{widths[0]}}}  {{:>{widths[1]}}}  {{:>{widths[2]}}}  {{:>{widths[3]}}}"
    print(fmt.format(*head))
    print(fmt.format(*("-" * w for w in widths)))
    for r in rows:
        print(fmt.format(*r).rstrip())


def cross_check(fl: dict[str, Any], fe: dict[str, Any] | None, http: dict[str, Any]) -> list[str]:
    notes = []
    if fe is not None and fe["rows"] == fe["total_rows"]:
        a, b = fl["reads_embedded"]["sample"], fe["sample"]
        same = sum(a.get(k) == v for k, v in b.items())
        notes.append(
            f"online values of {len(b)} sampled keys, featureline vs Feast: {same} identical"
        )
    if (
        "featureline_values" in http
        and "feast_values" in http
        and fe is not None
        and fe["rows"] == fe["total_rows"]
    ):
        same_http = http["featureline_values"] == http["feast_values"]
        notes.append(
            f"HTTP answer for entity {HTTP_KEY}: {'identical' if same_http else 'DIFFERENT'} on both servers"
        )
    return notes


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--small", action="store_true", help="The small smoke-test data (1,000 entities)."
    )
    ap.add_argument("--feast-python", type=Path, default=Path("/tmp/feastenv/bin/python"))
    ap.add_argument(
        "--feast-rows", type=int, default=0, help="Give Feast only the first N rows (0 = all)."
    )
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--no-redis", action="store_true")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument(
        "--client",
        choices=["raw", "wrk", "httpx"],
        default="raw",
        help="Load generator: raw (Python, default) or wrk (C, lighter on shared cores).",
    )
    ap.add_argument("--calls", type=int, default=5000, help="Timed in-process 1-entity calls.")
    ap.add_argument(
        "--calls-100", type=int, default=1000, help="Timed in-process 100-entity calls."
    )
    ap.add_argument("--keep", type=Path, help="Build everything in this folder and keep it.")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    print(
        f"featureline vs Feast ({'small smoke size' if args.small else 'full size'}); "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, nice {os.nice(0)}"
    )
    feast_py = args.feast_python
    feast_bin = feast_py.parent / "feast"
    have_feast = feast_py.exists() and feast_bin.exists()
    if not have_feast:
        print(
            f"Feast parts SKIPPED: {feast_py} (or {feast_bin}) is missing. Create it with\n"
            "  python3 -m venv /tmp/feastenv && /tmp/feastenv/bin/pip install 'feast==0.67.*'"
        )
    subprocess.run(
        [sys.executable, str(BENCH / "data.py"), *(["--small"] if args.small else [])], check=True
    )
    sys.path.insert(0, str(BENCH))
    import data

    features, _ = data.paths(data.for_size(args.small)[1])

    work = (
        args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="featureline-vs-feast-"))
    )
    work.mkdir(parents=True, exist_ok=True)
    try:
        print(
            "\n== featureline: materialization and in-process reads (bench/bench_online.py) ==",
            flush=True,
        )
        cmd = [
            sys.executable,
            str(BENCH / "bench_online.py"),
            "--work",
            str(work),
            "--json-out",
            str(work / "featureline.json"),
            "--calls",
            str(args.calls),
            "--calls-100",
            str(args.calls_100),
            "--redis-url",
            args.redis_url,
        ]
        if args.small:
            cmd.append("--small")
        if args.no_redis:
            cmd.append("--no-redis")
        subprocess.run(cmd, check=True)
        fl = json.loads((work / "featureline.json").read_text())

        fe = None
        feast_repo = None
        if have_feast:
            print(
                f"\n== Feast: materialization and in-process reads (bench/feast_peer.py under {feast_py}) ==",
                flush=True,
            )
            feast_repo = work / "feast-repo"
            cmd = [
                str(feast_py),
                str(BENCH / "feast_peer.py"),
                "--features",
                str(features),
                "--repo",
                str(feast_repo),
                "--json-out",
                str(work / "feast.json"),
                "--calls",
                str(args.calls),
                "--calls-100",
                str(args.calls_100),
            ]
            if args.feast_rows:
                cmd += ["--rows", str(args.feast_rows)]
            env = {
                k: v for k, v in os.environ.items() if k != "PYTHONPATH"
            }  # no featureline on Feast's path
            subprocess.run(cmd, check=True, env=env)
            fe = json.loads((work / "feast.json").read_text())

        http = run_http(Path(fl["repo"]), feast_repo, feast_bin if have_feast else None, work, args)
        summary(fl, fe, http, time.perf_counter() - t0)
        for note in cross_check(fl, fe, http):
            print(note)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
