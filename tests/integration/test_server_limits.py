"""The feature server's bounds and its cross-site guards, over real HTTP on loopback (issue 7,
defects 7 and 8): a bounded read-plan cache, a size-bounded prediction log, header and body
timeouts, `application/json` required on POST bodies, a Host allow-list, and a /health that
names no absolute path."""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import featureline as fl
from featureline.server import create_app
from tests.integration.server_kit import SRC, ThreadServer, content_length, error, free_port

pytestmark = pytest.mark.integration

FEATURES = ["driver_stats:conv_rate", "driver_stats:acc_rate", "driver_stats:avg_daily_trips"]
READ = {"features": FEATURES, "entities": {"driver_id": [1001]}}
TIMEOUT = 1.0  # the header and body timeouts the servers here run with, seconds


def _make_repo(root: Path, server_yaml: str = "") -> Path:
    fl.init_repo(root, project="limits")
    if server_yaml:
        with open(root / "featureline.yaml", "a") as fh:
            fh.write(server_yaml)
    with fl.FeatureStore(root) as store:
        store.apply(message="first")
        store.ingest("driver_stats")
        store.materialize_incremental()
    return root


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make_repo(tmp_path_factory.mktemp("limits") / "drivers")


@pytest.fixture(scope="module")
def app(repo: Path) -> Any:
    return create_app(repo)


@pytest.fixture(scope="module")
def server(app: Any) -> Iterator[str]:
    with ThreadServer(app) as url:
        yield url


@pytest.fixture
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=15) as c:
        yield c


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


# -- 7a: the read-plan cache is bounded ---------------------------------------------------------------


def test_read_plan_cache_is_bounded(app: Any, client: httpx.Client) -> None:
    """Every distinct feature list a client sends used to keep a plan forever; now at most 1,024
    plans, and at most 64 refs a plan on average in their keys (long lists from clients)."""
    store = app.service.store
    limit = 1024
    short = list(
        itertools.islice(itertools.product(FEATURES, repeat=7), limit + 100)
    )  # a repeated feature is read once
    for features in short:
        r = client.post(
            "/features/online", json={"features": list(features), "entities": {"driver_id": [1001]}}
        )
        assert r.status_code == 200, r.text
    assert len(store._hot) == limit
    for k in range(40):  # long lists: bounded by the refs their keys hold
        r = client.post(
            "/features/online",
            json={"features": [FEATURES[k % 3]] * (2000 + k), "entities": {"driver_id": [1001]}},
        )
        assert r.status_code == 200, r.text
    assert len(store._hot) <= limit and store._hot.refs <= 64 * limit
    # an evicted plan is rebuilt: the first lists still read the same values
    want = store.get_online_features(FEATURES, {"driver_id": [1001]}).to_dict()
    r = client.post(
        "/features/online", json={"features": list(short[0]), "entities": {"driver_id": [1001]}}
    )
    assert r.status_code == 200 and r.json()["features"]["conv_rate"] == want["conv_rate"]


# -- 7b: the prediction log is segmented and bounded -----------------------------------------------------


class Threshold:
    """A tiny picklable model: 1 when the first feature is over 0.5."""

    def predict(self, x: Any) -> Any:
        return (np.asarray(x)[:, 0] > 0.5).astype(int)


def test_prediction_log_rotates_with_retention(tmp_path: Path) -> None:
    seg, total = 4_000, 12_000
    root = _make_repo(
        tmp_path / "drivers",
        f"server:\n  prediction_log:\n    max_segment_bytes: {seg}\n    max_total_bytes: {total}\n",
    )
    with fl.FeatureStore(root) as store:
        store.models.register(
            "tiny",
            Threshold(),
            features=["driver_stats@v1:conv_rate", "driver_stats@v1:acc_rate"],
            alias="production",
        )
    n = 120
    with ThreadServer(create_app(root)) as url, httpx.Client(base_url=url, timeout=15) as c:
        for i in range(n):
            r = c.post("/models/tiny/predict", json={"entities": {"driver_id": [1001 + i % 50, 7]}})
            assert r.status_code == 200, r.text
            assert r.json()["predictions"][1] is None
    log_dir = root / "data" / "predictions"
    files = sorted(p.name for p in log_dir.iterdir() if p.suffix == ".jsonl")
    assert "tiny.jsonl" in files and len(files) > 2, files  # the current segment and rotated ones
    sizes = [(log_dir / f).stat().st_size for f in files]
    assert (
        max(sizes) < seg + 1_000
    )  # a segment rotates once it holds max_segment_bytes (plus a line)
    assert sum(sizes) <= total + seg + 1_000, sizes  # rotated segments are dropped oldest first

    from featureline.models.serving import read_prediction_log

    table = read_prediction_log(log_dir)
    assert 0 < table.num_rows < n  # the oldest requests are gone, the newest are all there
    assert str(table.schema.field("ts").type) == "timestamp[us, tz=UTC]"
    rows = table.to_pylist()
    assert [r["ts"] for r in rows] == sorted(r["ts"] for r in rows)
    last = rows[-1]
    assert last["model"] == "tiny" and last["version"] == 1
    assert last["entities"]["driver_id"] == [1001 + (n - 1) % 50, 7]
    assert last["statuses"]["driver_stats@v1:conv_rate"] == ["PRESENT", "NOT_FOUND"]
    assert read_prediction_log(log_dir, model="tiny").num_rows == table.num_rows
    assert read_prediction_log(log_dir, model="other").num_rows == 0


# -- 7c: header and body timeouts ---------------------------------------------------------------


def _start_cli(repo: Path, **env: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    full = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]),
        **env,
    }
    full.pop("FEATURELINE_REPO", None)
    proc = subprocess.Popen(
        [
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
        ],
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc, port
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(
                f"featureline serve did not come up (exit {proc.returncode}):\n{out}\n{err}"
            )
        time.sleep(0.05)


@pytest.fixture(scope="module")
def cli_port(repo: Path) -> Iterator[int]:
    """`featureline serve` with 1 s header and body timeouts and an extra allowed host (set through the environment)."""
    proc, port = _start_cli(
        repo,
        FEATURELINE_SERVE_HEADER_TIMEOUT=str(TIMEOUT),
        FEATURELINE_SERVE_BODY_TIMEOUT=str(TIMEOUT),
        FEATURELINE_SERVE_ALLOWED_HOSTS="features.test",
    )
    try:
        yield port
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def _until_closed(s: socket.socket, started: float) -> tuple[float | None, bytes]:
    got = b""
    try:
        while chunk := s.recv(65536):
            got += chunk
    except TimeoutError:
        return None, got
    except ConnectionResetError:
        pass
    return time.monotonic() - started, got


def _held(port: int, data: bytes, wait: float = TIMEOUT + 2.5) -> tuple[float | None, bytes]:
    """Send `data` and read until the server closes: (seconds until it closed or None, bytes got)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        started = time.monotonic()
        if data:
            s.sendall(data)
        return _until_closed(s, started)


def _second_request_half_sent(port: int, wait: float = TIMEOUT + 2.5) -> tuple[float | None, bytes]:
    """A whole request, its response read, then half the headers of the next one (keep-alive)."""
    body = json.dumps(READ).encode()
    head = f"POST /features/online HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(head.encode() + body)
        first = b""
        while b"\r\n\r\n" not in first or len(first.split(b"\r\n\r\n", 1)[1]) < content_length(
            first
        ):
            first += s.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 "), first[:300]
        started = time.monotonic()
        s.sendall(head.encode()[:40])
        return _until_closed(s, started)


def _in_parallel(port: int, cases: dict[str, Any]) -> dict[str, tuple[float | None, bytes]]:
    """Run each case (bytes to send, or a function of the port) on its own connection at once."""
    out: dict[str, tuple[float | None, bytes]] = {}

    def one(name: str, case: Any) -> None:
        out[name] = case(port) if callable(case) else _held(port, case)

    threads = [threading.Thread(target=one, args=item) for item in cases.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def _body_json(raw: bytes) -> dict[str, Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"application/json" in head.lower(), raw[:300]
    parsed: dict[str, Any] = json.loads(body)
    return parsed


def test_half_sent_headers_are_closed(cli_port: int) -> None:
    host = f"Host: 127.0.0.1:{cli_port}\r\n".encode()
    got = _in_parallel(
        cli_port,
        {
            "half headers": b"POST /features/online HTTP/1.1\r\n" + host + b"Content-Type: appl",
            "request line only": b"GET /health HTTP/1.1\r\n",
            "nothing sent": b"",
            "second request half sent": _second_request_half_sent,
        },
    )
    for name, (closed_after, _) in got.items():
        assert closed_after is not None, f"{name}: still open {TIMEOUT + 2.5} s later"
        assert closed_after < TIMEOUT + 1.5, (name, closed_after)
    assert got["half headers"][1].startswith(b"HTTP/1.1 408 "), got["half headers"][1][:200]
    assert "header" in _body_json(got["half headers"][1])["message"]
    assert got["nothing sent"][1] == b""  # an idle connection is just closed
    assert got["second request half sent"][1].startswith(b"HTTP/1.1 408 ")


def test_half_sent_body_gets_408(cli_port: int) -> None:
    host = f"Host: 127.0.0.1:{cli_port}\r\n".encode()

    def half(path: str) -> bytes:
        return (
            f"POST {path} HTTP/1.1\r\n".encode()
            + host
            + b"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
            + b'{"features": ['
        )

    chunked = (
        b"POST /features/online HTTP/1.1\r\n"
        + host
        + b'Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"fea\r\n'
    )
    got = _in_parallel(
        cli_port,
        {
            "fast path": half("/features/online"),
            "feast read": half("/get-online-features"),
            "push": half("/push/driver_stats"),
            "predict": half("/models/nope/predict"),
            "chunked": chunked,
        },
    )
    for name, (closed_after, raw) in got.items():
        assert closed_after is not None, f"{name}: still open {TIMEOUT + 2.5} s later"
        assert TIMEOUT - 0.2 < closed_after < TIMEOUT + 1.5, (name, closed_after)
        assert raw.startswith(b"HTTP/1.1 408 "), (name, raw[:200])
        assert b"connection: close" in raw.lower()
        body = _body_json(raw)
        assert (
            body["error"] == "RequestTimeout"
            and "body" in body["message"]
            and "--body-timeout" in body["message"]
        ), body
    # the server still answers
    assert (
        httpx.post(f"http://127.0.0.1:{cli_port}/features/online", json=READ, timeout=5).status_code
        == 200
    )


def test_cli_serve_guards(cli_port: int) -> None:
    """`featureline serve` applies the Host allow-list (with its settings) and the JSON-only rule."""
    url = f"http://127.0.0.1:{cli_port}"
    with httpx.Client(base_url=url, timeout=10) as c:
        assert c.get("/health", headers={"host": "features.test"}).status_code == 200
        error(
            c.get("/health", headers={"host": f"evil.test:{cli_port}"}),
            421,
            "evil.test",
            "not allowed",
        )
        error(
            c.post(
                "/features/online",
                content=json.dumps(READ).encode(),
                headers={"content-type": "text/plain"},
            ),
            415,
            "application/json",
        )
        assert c.post("/features/online", json=READ).status_code == 200


def test_server_settings_are_validated(tmp_path: Path) -> None:
    root = tmp_path / "bad"
    fl.init_repo(root, project="bad", with_data=False)
    with open(root / "featureline.yaml", "a") as fh:
        fh.write(
            "server:\n  header_timeot: 5\n  body_timeout: -1\n  read_plan_cache: 0\n  allowed_hosts: [1]\n"
            "  prediction_log: {max_segment_bytes: 10, max_totl_bytes: 5, max_age_days: x}\n"
        )
    with pytest.raises(fl.FeaturelineError) as e:
        fl.FeatureStore(root)
    msg = str(e.value)
    for needle in (
        "`server.header_timeot`",
        "Did you mean `header_timeout`",
        "`server.body_timeout` must be a positive number",
        "`server.read_plan_cache` must be a positive integer",
        "`server.allowed_hosts`",
        "`server.prediction_log.max_totl_bytes`",
        "`server.prediction_log.max_age_days`",
    ):
        assert needle in msg, (needle, msg)


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_header_timeout_protocols(repo: Path, http: str) -> None:
    """Both uvicorn HTTP/1.1 implementations get the header deadline (the CLI picks one, as uvicorn's auto)."""
    from featureline.server import protocol

    base = protocol.H11Protocol if http == "h11" else protocol.HttpToolsProtocol
    ts = ThreadServer(create_app(repo))
    ts.server.config.http = type("Quick", (base,), {"header_timeout": TIMEOUT})
    with ts as url:
        port = _port(url)
        got = _in_parallel(
            port,
            {
                "half headers": f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAcc".encode(),
                "nothing sent": b"",
            },
        )
        for name, (closed_after, _) in got.items():
            assert closed_after is not None and closed_after < TIMEOUT + 1.5, (name, closed_after)
        assert got["half headers"][1].startswith(b"HTTP/1.1 408 ")
        assert httpx.get(f"{url}/health", timeout=5).status_code == 200  # whole requests are served


# -- 8: cross-site writes --------------------------------------------------------------------------


POSTS = [
    ("/features/online", READ),
    ("/get-online-features", READ),
    ("/push/driver_stats", {"rows": [{"driver_id": 1}]}),
    ("/push", {"push_source_name": "driver_stats", "df": {"driver_id": [1]}}),
    ("/models/tiny/predict", {"entities": {"driver_id": [1001]}}),
]


@pytest.mark.parametrize(("path", "body"), POSTS)
@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
)
def test_post_requires_json_content_type(
    client: httpx.Client, path: str, body: dict[str, Any], content_type: str | None
) -> None:
    """A web page can POST text/plain, a form, or a typeless Blob to localhost without a CORS preflight."""
    headers = {"content-type": content_type} if content_type else {}
    r = client.post(path, content=json.dumps(body).encode(), headers=headers)
    msg = error(r, 415, "application/json", "Content-Type")
    assert (content_type or "no Content-Type").split(";")[0] in msg
    assert r.headers["connection"] == "close"


def test_json_content_type_variants_accepted(client: httpx.Client) -> None:
    for ct in (
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
    ):
        r = client.post(
            "/features/online", content=json.dumps(READ).encode(), headers={"content-type": ct}
        )
        assert r.status_code == 200, (ct, r.text)


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:{port}",
        "evil.example",
        "localhost.evil.example:{port}",
        "127.0.0.1:1",
        "localhost:80",
        "[::2]:{port}",
        "\u00e9:{port}",
    ],
)
def test_host_header_allow_list(server: str, host: str) -> None:
    """DNS rebinding: a page of evil.example whose name now resolves to 127.0.0.1 sends Host: evil.example."""
    port = _port(server)
    value = host.format(port=port)
    with httpx.Client(base_url=server, timeout=15) as c:
        for method, path, body in [
            ("POST", "/features/online", READ),
            ("POST", "/push/driver_stats", {"rows": []}),
            ("GET", "/health", None),
            ("GET", "/metrics", None),
        ]:
            r = c.request(method, path, json=body, headers={"host": value.encode()})
            msg = error(r, 421, "Host", "not allowed", "--allowed-host")
            assert f"127.0.0.1:{port}" in msg and f"localhost:{port}" in msg


def test_allowed_hosts_defaults_and_settings(tmp_path: Path, server: str) -> None:
    port = _port(server)
    with httpx.Client(base_url=server, timeout=15) as c:
        for ok in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"[::1]:{port}"):
            assert c.post("/features/online", json=READ, headers={"host": ok}).status_code == 200, (
                ok
            )
    _, raw = _held(port, b"GET /health HTTP/1.0\r\n\r\n", wait=10)  # no Host at all: not a browser
    assert raw.startswith(b"HTTP/1.1 200 "), raw[:200]
    root = _make_repo(
        tmp_path / "drivers",
        "server:\n  allowed_hosts: [features.internal, '*.corp.example', 'api.example:8443']\n",
    )
    with ThreadServer(create_app(root)) as url, httpx.Client(base_url=url, timeout=15) as c:
        for ok in (
            "features.internal",
            "features.internal:9",
            "a.b.corp.example:80",
            "api.example:8443",
            f"localhost:{_port(url)}",
        ):
            assert c.get("/health", headers={"host": ok}).status_code == 200, ok
        for bad in ("corp.example.evil:80", "api.example:8444", "xcorp.example"):
            error(c.get("/health", headers={"host": bad}), 421, "not allowed")
    with (
        ThreadServer(create_app(root, allowed_hosts=["*"])) as url,
        httpx.Client(base_url=url, timeout=15) as c,
    ):
        assert c.get("/health", headers={"host": "anything.example"}).status_code == 200


def test_health_reveals_no_absolute_paths(client: httpx.Client, repo: Path) -> None:
    r = client.get("/health")
    assert r.status_code == 200, r.text
    text = r.text
    assert str(repo) not in text and str(repo.resolve()) not in text, text
    assert "/tmp" not in text and os.sep + "data" not in text, text
    body = r.json()
    assert body["backends"]["online_store"]["backend"] == "sqlite"
    assert body["backends"]["offline_store"]["path"] == "data/offline"
    assert body["backends"]["online_store"]["path"] == "data/online.db"


def test_health_of_a_broken_repo_names_no_absolute_path(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    fl.init_repo(broken, project="broken", with_data=False)
    cfg = (
        (broken / "featureline.yaml")
        .read_text()
        .replace("path: data/online.db", "path: /proc/no/such/online.db")
    )
    (broken / "featureline.yaml").write_text(cfg)
    with ThreadServer(create_app(broken)) as url, httpx.Client(base_url=url, timeout=15) as c:
        r = c.get("/health")
        assert r.status_code == 503, r.text
        assert "/proc/no" not in r.text and str(broken) not in r.text, r.text
        assert r.json()["backends"]["online_store"]["ok"] is False


@pytest.mark.parametrize(
    "head",
    [
        b"Content-Type: application/json\r\nContent-Length: abc\r\n",
        b"Content-Type: application/json\r\nContent-Length: 99999999999999999999\r\n",
        b"Content-Type: \xff\xfe\r\nContent-Length: 2\r\n",
    ],
)
def test_bad_headers_are_4xx_not_500(server: str, head: bytes) -> None:
    port = _port(server)
    for path in (b"/features/online", b"/push/driver_stats"):
        request = (
            b"POST "
            + path
            + b" HTTP/1.1\r\nHost: 127.0.0.1:"
            + str(port).encode()
            + b"\r\n"
            + head
            + b"Connection: close\r\n\r\n{}"
        )
        closed_after, raw = _held(port, request, wait=10)
        assert closed_after is not None, raw
        status = int(raw.split(b" ", 2)[1])
        assert 400 <= status < 500, raw[:300]
        assert b"Traceback" not in raw
