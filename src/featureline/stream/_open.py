"""Opening a broker by kind: each broker module is imported only here, when used, so a
missing client library names its extra (`featureline[redis]`, `featureline[nats]`)."""

from __future__ import annotations

from featureline.errors import ConfigError, did_you_mean
from featureline.stream._broker import Broker


def open_broker(
    kind: str,
    url: str,
    stream: str,
    group: str,
    consumer: str,
    dead_letter: str,
    *,
    redeliver_after: float = 30.0,
) -> Broker:
    """The broker of `kind` ("redis" or "nats") for one consumer (the module of each is
    imported only here, so a missing client library names its extra)."""
    if kind == "redis":
        from featureline.stream.redis import RedisStreamBroker

        return RedisStreamBroker(
            url, stream, group, consumer, dead_letter, redeliver_after=redeliver_after
        )
    if kind == "nats":
        from featureline.stream.jetstream import JetStreamBroker

        return JetStreamBroker(
            url, stream, group, consumer, dead_letter, redeliver_after=redeliver_after
        )
    raise ConfigError(
        f"Unknown broker `{kind}`.{did_you_mean(kind, ('redis', 'nats'))} Valid: redis, nats."
    )
