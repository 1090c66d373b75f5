"""What the feature-server tests share: uvicorn on a loopback socket in a thread
(`ThreadServer`), the test limits, and the error-response assertion."""

from __future__ import annotations

import re
import socket
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn

import featureline as fl

SRC = str(Path(fl.__file__).resolve().parents[1])
FEATURES = ["driver_stats:conv_rate", "driver_stats:acc_rate", "driver_stats:avg_daily_trips"]
NAMES = ["conv_rate", "acc_rate", "avg_daily_trips"]
MAX_ENTITIES = 50
MAX_BODY = 20_000


class ThreadServer:
    """uvicorn in a background thread, on a socket bound before it starts (no port race)."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(
            app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


def parse_ts(s: str | None) -> datetime | None:
    return None if s is None else datetime.fromisoformat(s.replace("Z", "+00:00"))


def error(resp: httpx.Response, status: int, *needles: str) -> str:
    """Assert an error response: the status, JSON {error, message}, and each needle in the message."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"error", "message"}, body
    for n in needles:
        assert n in body["message"], (n, body["message"])
    return str(body["message"])


def feast_error(resp: httpx.Response, *needles: str) -> str:
    """Assert a Feast route's answer to an invalid body: 422 with FastAPI's `{"detail": [...]}`
    (as Feast's server) and Featureline's `error` and `message`; each needle in the message."""
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"detail", "error", "message"}, body
    [detail] = body["detail"]
    assert set(detail) == {"type", "loc", "msg", "input"}, detail
    assert detail["loc"][0] == "body" and detail["msg"] == body["message"], detail
    for n in needles:
        assert n in body["message"], (n, body["message"])
    return str(body["message"])


JSON = {"content-type": "application/json"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def content_length(raw: bytes) -> int:
    m = re.search(rb"content-length: (\d+)", raw.split(b"\r\n\r\n", 1)[0], re.IGNORECASE)
    return int(m.group(1)) if m else 0
