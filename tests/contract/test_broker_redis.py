"""Redis Streams pass the broker contract."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from featureline.stream import Broker
from featureline.stream.redis import RedisStreamBroker
from featureline.testing.broker_contract import REDELIVER_AFTER, BrokerContract, MakeBroker

pytestmark = pytest.mark.integration


class TestRedisStreams(BrokerContract):
    @pytest.fixture
    def make_broker(self, redis_url: str) -> Iterator[MakeBroker]:
        stream = f"fltest:{uuid.uuid4().hex}"
        made: list[Broker] = []

        def make(consumer: str) -> Broker:
            b = RedisStreamBroker(
                redis_url, stream, "g", consumer, "", redeliver_after=REDELIVER_AFTER
            )
            made.append(b)
            return b

        yield make
        for b in made:
            b.close()
        import redis

        r = redis.Redis.from_url(redis_url)
        r.delete(stream, f"{stream}:dead")
        r.close()


def test_unreachable_redis_is_a_storage_error() -> None:
    from featureline.errors import StorageError

    with pytest.raises(StorageError, match=r"unreachable.*streams\.redis\.url"):
        RedisStreamBroker("redis://127.0.0.1:1/0", "s", "g", "c", "")


def test_a_restarted_consumer_gets_each_of_its_pending_entries_once(redis_url: str) -> None:
    """Before: every read of a restarted consumer re-read its pending entries from the start
    (`XREADGROUP ... 0`), so a read made while a batch was still unacknowledged handed the same
    entries back again."""
    import redis

    stream = f"fltest:{uuid.uuid4().hex}"
    b = RedisStreamBroker(redis_url, stream, "g", "c1", "", redeliver_after=60)
    try:
        b.publish([b'{"i": %d}' % i for i in range(10)])
        first = b.read(10, 0.1)
        assert len(first) == 10  # delivered, never acknowledged
        b.close()
        b = RedisStreamBroker(redis_url, stream, "g", "c1", "", redeliver_after=60)  # restarted
        again = [b.read(4, 0.1) for _ in range(4)]
        assert [m.id for batch in again for m in batch] == [m.id for m in first]
        assert again[-1] == []  # nothing new, and nothing handed back twice
        assert all(m.deliveries == 2 for batch in again for m in batch)
    finally:
        b.close()
        r = redis.Redis.from_url(redis_url)
        r.delete(stream, f"{stream}:dead")
        r.close()
