"""The feature server over real HTTP: uvicorn on a loopback port (a thread, and `featureline serve`
in a subprocess), httpx as the client. No TestClient: bytes go through sockets."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

import featureline as fl
from featureline.server import create_app
from tests.integration.server_kit import (
    FEATURES,
    JSON,
    MAX_BODY,
    MAX_ENTITIES,
    NAMES,
    SRC,
    ThreadServer,
    content_length,
    error,
    feast_error,
    free_port,
    parse_ts,
)

pytestmark = pytest.mark.integration


# -- reads -------------------------------------------------------------------------------------


def test_native_read_equals_store(client: httpx.Client, store: fl.FeatureStore) -> None:
    ids = [1001, 1002, 1050, 9999]
    resp = client.post(
        "/features/online", json={"features": FEATURES, "entities": {"driver_id": ids}}
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert set(body) == {"features", "statuses", "event_timestamps", "entities"}
    want = store.get_online_features(FEATURES, {"driver_id": ids})
    wd = want.to_dict()
    assert list(body["features"]) == want.feature_names == NAMES
    assert body["features"] == {n: wd[n] for n in NAMES}
    assert body["statuses"] == want.statuses
    assert body["entities"] == {"driver_id": ids}
    assert {
        n: [parse_ts(t) for t in ts] for n, ts in body["event_timestamps"].items()
    } == want.event_timestamps
    # an unknown key value is not an error: 200 with NOT_FOUND and nulls
    assert [body["statuses"][n][-1] for n in NAMES] == ["NOT_FOUND"] * 3
    assert [body["features"][n][-1] for n in NAMES] == [None] * 3
    assert all(s == "PRESENT" for n in NAMES for s in body["statuses"][n][:3])


def test_native_read_feature_service_full_names(
    client: httpx.Client, store: fl.FeatureStore
) -> None:
    body = {
        "feature_service": "driver_activity",
        "entities": {"driver_id": [1003]},
        "full_feature_names": True,
    }
    resp = client.post("/features/online", json=body)
    assert resp.status_code == 200, resp.text
    want = store.get_online_features(
        "driver_activity", {"driver_id": [1003]}, full_feature_names=True
    ).to_dict()
    assert resp.json()["features"] == {
        f"driver_stats__{n}": want[f"driver_stats__{n}"] for n in NAMES
    }


def test_feast_read_shape(client: httpx.Client, store: fl.FeatureStore) -> None:
    ids = [1001, 1002, 9999]
    resp = client.post(
        "/get-online-features", json={"features": FEATURES, "entities": {"driver_id": ids}}
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == {"metadata", "results"}
    assert body["metadata"] == {"feature_names": ["driver_id", *NAMES]}
    assert len(body["results"]) == 4
    key = body["results"][0]
    assert key == {
        "values": ids,
        "statuses": ["PRESENT"] * 3,
        "event_timestamps": ["1970-01-01T00:00:00Z"] * 3,
    }
    want = store.get_online_features(FEATURES, {"driver_id": ids})
    for name, result in zip(NAMES, body["results"][1:], strict=True):
        assert set(result) == {"values", "statuses", "event_timestamps"}
        assert result["values"] == want.to_dict()[name]
        assert result["statuses"] == ["PRESENT", "PRESENT", "NOT_FOUND"]
        assert all(
            re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6})?Z", t)
            for t in result["event_timestamps"]
        )
        assert [parse_ts(t) for t in result["event_timestamps"][:2]] == want.event_timestamps[name][
            :2
        ]
        assert result["event_timestamps"][2] == "1970-01-01T00:00:00Z"
    # a feature service works too, as in Feast
    resp = client.post(
        "/get-online-features",
        json={"feature_service": "driver_activity", "entities": {"driver_id": [1001]}},
    )
    assert resp.status_code == 200 and resp.json()["metadata"]["feature_names"] == [
        "driver_id",
        *NAMES,
    ]


# -- bad input on reads ---------------------------------------------------------------------------


def test_malformed_json(client: httpx.Client) -> None:
    msg = error(
        client.post(
            "/features/online", content=b'{"features": ["driver_stats:conv_rate",], }', headers=JSON
        ),
        400,
        "Malformed JSON",
        "line 1 column",
    )
    assert "Fix" in msg
    feast_error(  # Feast's server (FastAPI) answers 422; the native routes 400
        client.post("/get-online-features", content=b"{not json", headers=JSON),
        "Malformed JSON",
    )
    error(client.post("/features/online", content=b"", headers=JSON), 400, "empty")
    error(client.post("/features/online", content=b"\xff\xfe", headers=JSON), 400)
    error(client.post("/features/online", json=[1, 2]), 400, "must be a JSON object", "an array")


def test_oversize_body(client: httpx.Client) -> None:
    big = json.dumps(
        {"features": FEATURES, "entities": {"driver_id": [1001]}, "pad": "x" * MAX_BODY}
    ).encode()
    error(
        client.post("/features/online", content=big, headers=JSON),
        413,
        f"{MAX_BODY:,} bytes",
        "max-body-bytes",
    )

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer, counted while reading
        for _ in range(MAX_BODY // 1000 + 2):
            yield b" " * 1000

    error(client.post("/features/online", content=chunks(), headers=JSON), 413, "max_body_bytes")
    # the server is still fine afterwards
    assert (
        client.post(
            "/features/online", json={"features": FEATURES, "entities": {"driver_id": [1001]}}
        ).status_code
        == 200
    )


def test_too_many_entities(client: httpx.Client) -> None:
    ids = list(range(1000, 1000 + MAX_ENTITIES + 1))
    for path in ("/features/online", "/get-online-features"):
        msg = error(
            client.post(path, json={"features": FEATURES, "entities": {"driver_id": ids}}),
            413,
            f"{MAX_ENTITIES + 1}",
            f"limit of {MAX_ENTITIES}",
        )
        assert "split" in msg and "--max-entities" in msg
    ok = client.post(
        "/features/online",
        json={"features": FEATURES, "entities": {"driver_id": ids[:MAX_ENTITIES]}},
    )
    assert ok.status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "needles"),
    [
        (
            {"features": ["driver_stats:conv_rat"], "entities": {"driver_id": [1001]}},
            404,
            ["conv_rat", "Did you mean", "conv_rate"],
        ),
        (
            {"features": ["driver_stat:conv_rate"], "entities": {"driver_id": [1001]}},
            404,
            ["driver_stat", "Did you mean"],
        ),
        (
            {"feature_service": "driver_activty", "entities": {"driver_id": [1001]}},
            404,
            ["driver_activty", "driver_activity"],
        ),
        (
            {"features": FEATURES, "entities": {"driver_id": ["abc"]}},
            400,
            ["driver_id", "str", "Int64"],
        ),
        (
            {"features": FEATURES, "entities": {"driver_id": [1.5]}},
            400,
            ["driver_id", "float", "Int64"],
        ),
        (
            {"features": FEATURES, "entities": {"driverid": [1001]}},
            400,
            ["driver_id", "Did you mean"],
        ),
        (
            {"featurs": FEATURES, "entities": {"driver_id": [1001]}},
            400,
            ["`featurs`", "Did you mean `features`"],
        ),
        (
            {"features": FEATURES, "entity": {"driver_id": [1001]}},
            400,
            ["`entity`", "Did you mean `entities`"],
        ),
        (
            {"features": FEATURES, "entities": {"driver_id": 1001}},
            400,
            ["driver_id", "must be an array"],
        ),
        (
            {"features": FEATURES, "entities": {"driver_id": [1001], "x": [1, 2]}},
            400,
            ["different lengths"],
        ),
        ({"features": FEATURES, "entities": []}, 400, ["entities"]),
        ({"features": FEATURES}, 400, ["no `entities`"]),
        ({"entities": {"driver_id": [1001]}}, 400, ["names no features"]),
        (
            {"features": "driver_stats:conv_rate", "entities": {"driver_id": [1001]}},
            400,
            ["`features`", "array"],
        ),
        ({"features": [1], "entities": {"driver_id": [1001]}}, 400, ["`features`"]),
        (
            {
                "features": FEATURES,
                "feature_service": "driver_activity",
                "entities": {"driver_id": [1001]},
            },
            400,
            ["not both"],
        ),
        (
            {"features": FEATURES, "entities": {"driver_id": [1001]}, "full_feature_names": "yes"},
            400,
            ["full_feature_names"],
        ),
    ],
)
def test_bad_read_requests(
    client: httpx.Client, body: dict[str, Any], status: int, needles: list[str]
) -> None:
    error(client.post("/features/online", json=body), status, *needles)
    feast = client.post("/get-online-features", json=body)
    if status == 400:  # an invalid body: 422 on the Feast route, as FastAPI answers
        feast_error(feast, *needles)
    else:
        error(feast, status, *needles)


def test_feast_read_feeds_request_context_to_on_demand_views(tmp_path: Path) -> None:
    from tests.helpers import driver_defs, new_store, rows

    driver, view = driver_defs(ttl=timedelta(days=1))

    @fl.on_demand_feature_view(
        sources=[view, fl.RequestSource("trip", [fl.Field("km", fl.Float64)])],
        schema=[fl.Field("score", fl.Float64)],
    )
    def score(inputs: dict[str, list[Any]]) -> dict[str, list[Any]]:
        return {
            "score": [
                None if r is None else r * k
                for r, k in zip(inputs["rate"], inputs["km"], strict=True)
            ]
        }

    st = new_store(tmp_path, driver, view, score)
    st.push("driver_stats", rows([1, 2], [datetime.now(UTC)] * 2, [0.5, 2.0]))
    with ThreadServer(create_app(st.repo_path)) as url, httpx.Client(base_url=url) as c:
        body = {
            "features": ["score:score"],
            "entities": {"driver_id": [1, 2]},
            "request_context": {"km": [10.0, 3.0]},
        }
        resp = c.post("/get-online-features", json=body)
        assert resp.status_code == 200, resp.text
        assert [r["values"] for r in resp.json()["results"]][-1] == [5.0, 6.0]
        body["request_context"] = {"km": [1.0]}
        feast_error(
            c.post("/get-online-features", json=body), "request_context", "one value per entity row"
        )
        body["request_context"] = {"driver_id": [1, 2]}
        feast_error(c.post("/get-online-features", json=body), "also an entity key")


def test_unknown_route_and_method(client: httpx.Client) -> None:
    error(
        client.post("/get-online-feature", json={}),
        404,
        "/get-online-feature",
        "Did you mean `/get-online-features`",
    )
    error(client.get("/features/online"), 405, "GET", "POST")


# -- operations --------------------------------------------------------------------------------


def test_health(client: httpx.Client) -> None:
    resp = client.get("/health")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["ok"] is True
    assert set(body["backends"]) == {"registry", "offline_store", "online_store"}
    assert all(b["ok"] is True for b in body["backends"].values())
    assert body["backends"]["registry"]["detail"] == "version 1"
    assert body["backends"]["online_store"]["backend"] == "sqlite"


def test_health_503_when_a_backend_is_down(repo: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    fl.init_repo(broken, project="broken", with_data=False)
    cfg = (
        (broken / "featureline.yaml")
        .read_text()
        .replace("path: data/online.db", "path: /proc/no/such/online.db")
    )
    (broken / "featureline.yaml").write_text(cfg)
    with ThreadServer(create_app(broken)) as url, httpx.Client(base_url=url, timeout=15) as c:
        resp = c.get("/health")
        assert resp.status_code == 503, resp.text
        body = resp.json()
        assert body["ok"] is False and body["backends"]["online_store"]["ok"] is False
        assert body["backends"]["registry"]["ok"] is True


def _metric(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        m = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(m.group(3))
    return None


def test_metrics(client: httpx.Client) -> None:
    for _ in range(3):
        assert (
            client.post(
                "/features/online", json={"features": FEATURES, "entities": {"driver_id": [1001]}}
            ).status_code
            == 200
        )
    client.post("/features/online", content=b"{", headers=JSON)
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    text = resp.text
    ok = _metric(
        text,
        "featureline_http_requests_total",
        route="/features/online",
        method="POST",
        status="200",
    )
    assert ok is not None and ok >= 3
    bad = _metric(
        text,
        "featureline_http_requests_total",
        route="/features/online",
        method="POST",
        status="400",
    )
    assert bad is not None and bad >= 1
    count = _metric(
        text, "featureline_http_request_duration_seconds_count", route="/features/online"
    )
    assert count is not None and count >= 4
    assert (
        _metric(
            text,
            "featureline_http_request_duration_seconds_bucket",
            route="/features/online",
            le="0.001",
        )
        is not None
    )
    rows = _metric(text, "featureline_view_rows", view="driver_stats")
    assert rows is not None and rows >= 50 * 24 * 7
    stale = _metric(text, "featureline_view_staleness_seconds", view="driver_stats")
    assert stale is not None and 0 <= stale < 3 * 24 * 3600
    assert (
        _metric(text, "featureline_view_last_event_timestamp_seconds", view="driver_stats")
        is not None
    )
    assert _metric(text, "featureline_freshness_up") == 1.0


def test_openapi_and_docs(client: httpx.Client, server: str) -> None:
    resp = client.get("/openapi.json")
    assert resp.status_code == 200
    spec = resp.json()
    assert spec["openapi"].startswith("3.")
    paths = {
        "/features/online",
        "/push/{view}",
        "/get-online-features",
        "/push",
        "/write-to-online-store",
        "/materialize",
        "/materialize-incremental",
        "/models",
        "/models/{name}/predict",
        "/health",
        "/metrics",
        "/openapi.json",
        "/docs",
    }
    ui = {p for p in spec["paths"] if p == "/ui" or p.startswith("/ui/")}  # the web UI's
    assert {"/ui", "/ui/api/search", "/ui/api/views/{name}", "/ui/api/pit"} <= ui
    assert set(spec["paths"]) == paths | ui
    # every $ref resolves
    refs = re.findall(r'"\$ref": ?"#/components/schemas/(\w+)"', json.dumps(spec))
    assert refs and all(r in spec["components"]["schemas"] for r in refs)
    # every documented operation is served (no 404/405 from the router)
    for path, methods in spec["paths"].items():
        if path in ui:  # GETs with path and query parameters, none of them a body
            r = client.get(re.sub(r"\{\w+\}", "m", path))
            assert r.status_code in (200, 400, 404) and "No endpoint" not in r.text, (path, r.text)
            continue
        for method in methods:
            r = client.request(
                method.upper(),
                path.replace("{view}", "driver_stats").replace("{name}", "m"),
                content=b"{}",
                headers=JSON,
            )
            if r.status_code >= 400:
                assert r.json()["error"] == "ValidationError", (
                    path,
                    r.text,
                )  # the body, not the route
    docs = client.get("/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    for path in paths:
        assert f"<code>{path}</code>" in docs.text
    assert "<script" not in docs.text  # self-contained: nothing fetched at run time


# -- `featureline serve` in a subprocess ---------------------------------------------------------------


def _start_cli_server(repo: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    env.pop("FEATURELINE_REPO", None)
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
            *args,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(
                f"featureline serve did not come up (exit {proc.returncode}):\n{out}\n{err}"
            )
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err


def test_cli_serve_finishes_in_flight_request_on_sigterm(repo: Path) -> None:
    proc, url = _start_cli_server(repo, "--graceful-timeout", "10")
    try:
        body = json.dumps({"features": FEATURES, "entities": {"driver_id": [1001, 1002]}}).encode()
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            head = f"POST /features/online HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            s.sendall(
                head.encode() + body[:10]
            )  # the request is in flight: headers read, body incomplete
            time.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            assert proc.poll() is None, "the server quit with a request in flight"
            with pytest.raises(httpx.TransportError):  # no new connections once shutting down
                httpx.get(f"{url}/health", timeout=2)
            s.sendall(body[10:])
            raw = b""
            while b"\r\n\r\n" not in raw or len(raw.split(b"\r\n\r\n", 1)[1]) < content_length(raw):
                chunk = s.recv(65536)
                if not chunk:
                    break
                raw += chunk
        head_b, payload = raw.split(b"\r\n\r\n", 1)
        assert head_b.startswith(b"HTTP/1.1 200"), raw[:300]
        assert json.loads(payload)["statuses"]["conv_rate"] == ["PRESENT", "PRESENT"]
        _, err = proc.communicate(timeout=30)  # already stopping: it exits by itself, with code 0
        assert proc.returncode == 0, err
        assert (
            f"Featureline serving {repo} at {url}" in err and "Featureline server stopped." in err
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_cli_serve_with_workers(repo: Path) -> None:
    proc, url = _start_cli_server(repo, "--workers", "2", "--max-entities", "2")
    try:
        with httpx.Client(base_url=url, timeout=10) as c:
            for _ in range(4):
                r = c.post(
                    "/get-online-features",
                    json={"features": FEATURES, "entities": {"driver_id": [1001]}},
                )
                assert r.status_code == 200 and r.json()["results"][1]["statuses"] == ["PRESENT"]
            error(
                c.post(
                    "/features/online",
                    json={"features": FEATURES, "entities": {"driver_id": [1, 2, 3]}},
                ),
                413,
                "limit of 2",
            )
        code, err = _stop(proc, signal.SIGINT)  # Ctrl+C: a clean stop, exit code 0, no "Aborted!"
        assert code == 0, err
        assert (
            "Featureline server stopped." in err and "Aborted" not in err and "Traceback" not in err
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_cli_serve_without_repo(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    env.pop("FEATURELINE_REPO", None)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "featureline.cli",
            "--repo",
            str(tmp_path / "nope"),
            "serve",
            "--port",
            str(free_port()),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1 and r.stderr.startswith("Error: "), r.stderr
    assert "Traceback" not in r.stderr
