"""Stream ingestion: the broker Protocol (Redis Streams, NATS JetStream) and the stream worker
behind `featureline stream`. See `_broker` for the boundary and `worker` for the loop."""

from featureline.stream._broker import (
    Broker,
    DeadLetter,
    Lag,
    Message,
)
from featureline.stream._open import open_broker
from featureline.stream.worker import StreamStats, StreamWorker, batch_key, read_stream_stats

__all__ = [
    "Broker",
    "DeadLetter",
    "Lag",
    "Message",
    "StreamStats",
    "StreamWorker",
    "batch_key",
    "open_broker",
    "read_stream_stats",
]
