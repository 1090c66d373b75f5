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
