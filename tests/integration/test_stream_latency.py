"""Publish -> servable latency as the stream worker counts it (issue 10): an event is servable
when the push holding it returned (readable online), not when the broker took its ack."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from featureline.stream import Broker, StreamWorker, open_broker
from tests.integration.stream_kit import fresh_stream, publish, tx_store

ACK_SECONDS = 1.0


@pytest.fixture
def stream(redis_url: str) -> Iterator[str]:
    yield from fresh_stream(redis_url, "lat")


class _SlowAck:
    """A broker whose acknowledgements take `ACK_SECONDS` (a slow link to the broker)."""

    def __init__(self, inner: Broker) -> None:
        self._inner = inner

    def ack(self, messages: Any) -> None:
        time.sleep(ACK_SECONDS)
        self._inner.ack(messages)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_latency_ends_when_the_push_returns_not_after_the_ack(
    tmp_path: Path, stream: str, redis_url: str
) -> None:
    store = tx_store(tmp_path, stream, redis_url, "l")

    def slow(*args: Any, **kw: Any) -> Broker:
        return _SlowAck(open_broker(*args, **kw))  # type: ignore[return-value]

    worker = StreamWorker(
        store, consumer="lat", batch_size=1000, broker_factory=slow, publish_stats=False
    )
    try:
        publish(redis_url, stream, 20)
        t = time.monotonic()
        (stats,) = worker.run(once=True)
        took = time.monotonic() - t
        assert stats.written == 20
        assert took >= ACK_SECONDS  # the ack was slow ...
        q = stats.latency_quantiles((1.0,))
        assert q is not None
        # ... and is not in publish -> servable (the events were read and pushed well within it)
        assert q[1.0] < ACK_SECONDS, q
        resp = store.get_online_features(["tx:amount"], [{"user_id": 3}])
        assert resp.statuses["amount"] == ["PRESENT"]
    finally:
        worker.close()
        store.close()


def test_a_batch_whose_ack_failed_keeps_the_time_its_push_returned(
    tmp_path: Path, stream: str, redis_url: str
) -> None:
    """The push returned, the ack failed: the retry acknowledges it (no second commit), and
    its events count as servable from the first push, not from the retry's ack."""
    store = tx_store(tmp_path, stream, redis_url, "l")
    failed: list[float] = []

    class _AckFailsOnce(_SlowAck):
        def ack(self, messages: Any) -> None:
            if not failed:  # after as long as a slow ack, then lost
                time.sleep(ACK_SECONDS)
                failed.append(time.monotonic())
                from featureline.errors import StorageError

                raise StorageError("ack lost")
            self._inner.ack(messages)

    def flaky(*args: Any, **kw: Any) -> Broker:
        return _AckFailsOnce(open_broker(*args, **kw))  # type: ignore[return-value]

    worker = StreamWorker(
        store, consumer="lat2", batch_size=1000, broker_factory=flaky, publish_stats=False
    )
    try:
        publish(redis_url, stream, 5)
        (stats,) = worker.run(once=True)
        assert stats.written == 5 and stats.errors == 1 and stats.replayed == 0
        q = stats.latency_quantiles((1.0,))
        assert q is not None and q[1.0] < ACK_SECONDS, q  # the retry came later still
        commits = store.offline.log("tx", store.get_feature_view("tx").version).live_commits()
        assert sum(c.rows for c in commits) == 5
    finally:
        worker.close()
        store.close()
