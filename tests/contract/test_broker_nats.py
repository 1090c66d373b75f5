"""NATS JetStream passes the broker contract."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator

import pytest

from featureline.stream import Broker
from featureline.stream.jetstream import JetStreamBroker, _stream_name
from featureline.testing.broker_contract import REDELIVER_AFTER, BrokerContract, MakeBroker

pytestmark = pytest.mark.integration


def _delete_streams(url: str, names: list[str]) -> None:
    import nats
    from nats.js.errors import NotFoundError

    async def go() -> None:
        nc = await nats.connect(url)
        js = nc.jetstream()
        for n in names:
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(n)
        await nc.close()

    asyncio.run(go())


class TestJetStream(BrokerContract):
    @pytest.fixture
    def make_broker(self, nats_url: str) -> Iterator[MakeBroker]:
        subject = f"fltest.{uuid.uuid4().hex}"
        made: list[Broker] = []

        def make(consumer: str) -> Broker:
            b = JetStreamBroker(
                nats_url, subject, "g", consumer, "", redeliver_after=REDELIVER_AFTER
            )
            made.append(b)
            return b

        yield make
        for b in made:
            b.close()
        _delete_streams(nats_url, [_stream_name(subject), _stream_name(f"deadletter.{subject}")])


def test_unreachable_nats_is_a_storage_error() -> None:
    from featureline.errors import StorageError

    with pytest.raises(StorageError, match=r"streams\.nats\.url"):
        JetStreamBroker("nats://127.0.0.1:1", "s", "g", "c", "")
