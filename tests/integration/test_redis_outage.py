"""The Redis online store survives a real Redis outage: a private `redis-server` is killed
(SIGKILL) and restarted on the same port, and the same store object works again.

The shared Redis on 6379 is never touched: each test starts its own server on a free port,
without persistence (so a restart loses the data and the loaded script).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from featureline.errors import StorageError
from featureline.online.redis import RedisOnlineStore
from featureline.testing.online_contract import value

pytestmark = pytest.mark.integration

FAST = 2.0  # seconds: a dead Redis must be reported faster than this


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class PrivateRedis:
    """A throwaway `redis-server` on a fixed port that can be killed and started again."""

    def __init__(self, binary: str, port: int, workdir: Path) -> None:
        self.binary, self.port, self.workdir = binary, port, workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = (self.workdir / "redis.log").open("ab")
        try:
            self.proc = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        finally:
            log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                text = (self.workdir / "redis.log").read_text(errors="replace")
                pytest.fail(f"redis-server exited with {self.proc.returncode}:\n{text[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        pytest.fail(f"redis-server did not answer PING on port {self.port} within 10 s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)
        self.proc = None

    def command(self, *args: str) -> Any:
        import redis

        client = redis.Redis.from_url(self.url)
        try:
            return client.execute_command(*args)
        finally:
            client.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PrivateRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        msg = "`redis-server` is not on PATH: it is needed to stop and restart a private Redis."
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + " (CI=true: failing instead of skipping)")
        pytest.skip(msg)
    srv = PrivateRedis(binary, _free_port(), tmp_path)
    srv.start()
    yield srv
    srv.kill()


def _raises_fast(call: Callable[[], object], port: int) -> str:
    start = time.monotonic()
    with pytest.raises(StorageError) as info:
        call()
    elapsed = time.monotonic() - start
    assert elapsed < FAST, f"took {elapsed:.2f} s"
    text = str(info.value)
    assert f"Redis at `127.0.0.1:{port}` is unreachable" in text
    assert "check that it is running" in text
    return text


def test_store_recovers_after_redis_is_killed_and_restarted(server: PrivateRedis) -> None:
    store = RedisOnlineStore(server.url, "outage", chunk_rows=100)
    try:
        keys = [b"k%d" % i for i in range(250)]  # 3 chunks: the MULTI/EXEC path
        assert store.write("t", keys, [value(1)] * 250) == 250
        assert store.write("t", [b"one"], [value(1)]) == 1  # the single-call path
        store.set_meta("watermark", "1")
        assert store.health()["ok"]

        server.kill()
        _raises_fast(lambda: store.read("t", [b"k1"]), server.port)
        _raises_fast(lambda: store.read("t", keys), server.port)
        _raises_fast(lambda: store.write("t", [b"one"], [value(2)]), server.port)
        _raises_fast(lambda: store.write("t", keys, [value(2)] * 250), server.port)
        _raises_fast(lambda: store.get_meta("watermark"), server.port)
        _raises_fast(lambda: store.count("t"), server.port)
        start = time.monotonic()
        health = store.health()
        assert time.monotonic() - start < FAST
        assert health["ok"] is False
        assert f"127.0.0.1:{server.port}" in health["detail"]
        assert "unreachable" in health["detail"]

        server.start()  # same port, empty: the data and the loaded script are gone
        assert store.health()["ok"]
        assert store.read("t", [b"k1", b"one"]) == [None, None]
        assert store.get_meta("watermark") is None
        assert store.write("t", [b"one"], [value(3, b"x")]) == 1  # NOSCRIPT -> loaded again
        assert store.write("t", keys, [value(3)] * 250) == 250
        assert store.read("t", [b"one", keys[-1]]) == [value(3, b"x"), value(3)]
        assert store.tables() == ["t"]
    finally:
        store.close()


def test_store_created_while_redis_is_down_works_once_it_starts(server: PrivateRedis) -> None:
    server.kill()
    store = RedisOnlineStore(server.url, "late")
    try:
        assert store.health()["ok"] is False
        _raises_fast(lambda: store.write("t", [b"k"], [value(1)]), server.port)
        server.start()
        assert store.write("t", [b"k"], [value(1)]) == 1
        assert store.read("t", [b"k"]) == [value(1)]
    finally:
        store.close()


@pytest.mark.parametrize("rows", [1, 250])
def test_script_flushed_while_running_is_loaded_again(server: PrivateRedis, rows: int) -> None:
    store = RedisOnlineStore(server.url, "flush", chunk_rows=100)
    try:
        keys = [b"k%d" % i for i in range(rows)]
        assert store.write("t", keys, [value(1)] * rows) == rows
        server.command("SCRIPT", "FLUSH")
        assert store.write("t", keys, [value(2)] * rows) == rows
        assert store.read("t", keys[-1:]) == [value(2)]
    finally:
        store.close()


def test_script_lost_between_check_and_exec_is_retried(
    server: PrivateRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pipeline checks SCRIPT EXISTS before MULTI; a restart in between gives NOSCRIPT."""
    import redis.client

    store = RedisOnlineStore(server.url, "race", chunk_rows=100)
    try:
        keys = [b"k%d" % i for i in range(250)]
        assert store.write("t", keys, [value(1)] * 250) == 250
        monkeypatch.setattr(redis.client.Pipeline, "load_scripts", lambda self: None)
        server.command("SCRIPT", "FLUSH")
        assert store.write("t", keys, [value(2)] * 250) == 250
        assert store.read("t", keys[:1]) == [value(2)]
    finally:
        store.close()


def test_a_hung_redis_times_out_instead_of_hanging(server: PrivateRedis) -> None:
    """SIGSTOP: the port still accepts connections, but nothing answers."""
    store = RedisOnlineStore(server.url, "hung", timeout=1.0)
    try:
        assert store.write("t", [b"k"], [value(1)]) == 1
        assert server.proc is not None
        server.proc.send_signal(signal.SIGSTOP)
        try:
            start = time.monotonic()
            health = store.health()
            assert time.monotonic() - start < FAST
            assert health["ok"] is False and "Timeout" in health["detail"]
            _raises_fast(lambda: store.read("t", [b"k"]), server.port)
        finally:
            server.proc.send_signal(signal.SIGCONT)
        assert store.read("t", [b"k"]) == [value(1)]
        assert store.health()["ok"]
    finally:
        store.close()
