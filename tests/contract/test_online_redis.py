"""The Redis online store passes the online contract; namespaces sharing a Redis stay apart."""

from __future__ import annotations

import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from featureline.errors import ConfigError, MissingExtraError, StorageError
from featureline.online import OnlineStore, open_online_store
from featureline.online.redis import RedisOnlineStore, redact
from featureline.testing.online_contract import OnlineStoreContract, value

pytestmark = pytest.mark.integration


def _delete_namespace(url: str, namespace: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    name = f"test-online-{uuid.uuid4().hex}"
    yield name
    _delete_namespace(redis_url, name)


class TestRedisOnlineStore(OnlineStoreContract):
    @pytest.fixture
    def store(self, redis_url: str, namespace: str) -> Iterator[OnlineStore]:
        s = RedisOnlineStore(redis_url, namespace, chunk_rows=1000)  # small: many chunks
        yield s
        s.close()


def test_layout(redis_url: str, namespace: str) -> None:
    import redis

    with RedisOnlineStore(redis_url, namespace) as store:
        assert store.capabilities.shared
        store.write("driver_stats__v1", [b"\x00k", b"j"], [value(3, b"\xff"), value(1)])
        store.set_meta("watermark", "7")
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.hgetall(f"{namespace}:driver_stats__v1") == {
            b"\x00k": value(3, b"\xff"),
            b"j": value(1),
        }
        assert client.smembers(f"{namespace}:@tables") == {b"driver_stats__v1"}
        assert client.hgetall(f"{namespace}:@meta") == {b"watermark": b"7"}
        assert sorted(client.scan_iter(match=f"{namespace}:*")) == sorted(
            f"{namespace}:{k}".encode() for k in ("driver_stats__v1", "@tables", "@meta")
        )
    finally:
        client.close()


def test_namespaces_sharing_a_redis_are_separate(redis_url: str, namespace: str) -> None:
    other = f"{namespace}-other"
    try:
        with (
            RedisOnlineStore(redis_url, namespace) as a,
            RedisOnlineStore(redis_url, other) as b,
        ):
            a.write("t", [b"k"], [value(2, b"a")])
            a.set_meta("m", "a")
            assert b.read("t", [b"k"]) == [None]
            assert b.tables() == [] and b.get_meta("m") is None
            assert b.write("t", [b"k"], [value(1, b"b")]) == 1
            assert a.read("t", [b"k"]) == [value(2, b"a")]
            b.drop_table("t")
            assert a.count("t") == 1
    finally:
        _delete_namespace(redis_url, other)


def test_open_online_store_redis(redis_url: str, namespace: str, tmp_path: Path) -> None:
    store = open_online_store({"type": "redis", "url": redis_url}, tmp_path, namespace)
    try:
        assert isinstance(store, RedisOnlineStore)
        assert store.namespace == namespace
        assert store.health()["ok"]
    finally:
        store.close()
    custom = open_online_store(
        {"type": "redis", "url": redis_url, "namespace": f"{namespace}-x"}, tmp_path, "ignored"
    )
    try:
        assert isinstance(custom, RedisOnlineStore) and custom.namespace == f"{namespace}-x"
    finally:
        custom.close()
    assert not list(tmp_path.iterdir())


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_unreachable_redis_fails_fast_with_a_clear_message() -> None:
    port = _closed_port()
    store = RedisOnlineStore(f"redis://:secret@127.0.0.1:{port}/0", "p")  # connects lazily
    try:
        for call in (
            lambda: store.read("t", [b"k"]),
            lambda: store.write("t", [b"k"], [value(1)]),
            lambda: store.get_meta("m"),
        ):
            start = time.monotonic()
            with pytest.raises(StorageError) as info:
                call()
            assert time.monotonic() - start < 2
            text = str(info.value)
            assert f"Redis at `127.0.0.1:{port}` is unreachable" in text
            assert "check that it is running" in text and "secret" not in text
        start = time.monotonic()
        health = store.health()
        assert time.monotonic() - start < 2
        assert health["ok"] is False and "unreachable" in health["detail"]
        assert "secret" not in str(health)
    finally:
        store.close()


def test_bad_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="`mysql://h/0`"):
        RedisOnlineStore("mysql://h/0", "p")


def test_redact_hides_passwords() -> None:
    assert redact("redis://u:pw@h:6379/0") == "redis://u:***@h:6379/0"
    assert redact("redis://:pw@h/0") == "redis://:***@h/0"
    assert redact("redis://h:6379/0") == "redis://h:6379/0"


def test_missing_redis_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(MissingExtraError, match=r"featureline\[redis\]"):
        RedisOnlineStore("redis://127.0.0.1:6379/0", "p")
