"""The broker boundary of the stream worker: one small Protocol, one module per broker.

A broker hands out batches of messages to one consumer of a group (several consumers of a
group share a stream, each message going to one of them), takes acknowledgements, moves a
refused message to its dead-letter stream with the reason, and says how far behind the group
is. Delivery is at-least-once: a message delivered and not acknowledged within
`redeliver_after` seconds (its consumer died) is delivered again, to any consumer of the group.
Everything else (parsing, validation, the write, when to acknowledge) lives one layer up, in
the worker, so a new broker (Kafka) is one module that passes `testing.broker_contract`.

Every failure to reach the broker is a `StorageError` naming the broker and the fix; the
worker reconnects with backoff on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(slots=True)
class Message:
    """One delivered message. `id` is the broker's id (a Redis entry id, a JetStream stream
    sequence), unique and stable across redeliveries; `published_us` the broker's publish time
    (Unix microseconds) when it has one; `deliveries` how often it was delivered (1: first)."""

    id: str
    data: bytes
    published_us: int | None = None
    deliveries: int = 1
    handle: Any = None  # what the broker needs to acknowledge it
    problem: str | None = None  # the broker could not read it as a message (the reason)


@dataclass(frozen=True)
class DeadLetter:
    """A refused message as its dead-letter stream holds it. `payload` is cut to the dead-letter
    size bound (`size` is the original length); the original stays in the source stream under
    `message_id` until the stream is trimmed."""

    message_id: str
    reason: str
    payload: bytes
    size: int
    stream: str


@dataclass(frozen=True)
class Lag:
    """How far behind the group is: `waiting` messages not yet delivered to any consumer, and
    `pending` delivered but not acknowledged. None: the broker cannot tell."""

    waiting: int | None
    pending: int | None

    @property
    def total(self) -> int | None:
        if self.waiting is None and self.pending is None:
            return None
        return (self.waiting or 0) + (self.pending or 0)


DEAD_LETTER_PAYLOAD_BYTES = 64 * 1024  # a dead letter keeps at most this much of the payload


class Broker(Protocol):
    """One consumer of one group on one stream (configured at construction)."""

    kind: str  # "redis", "nats"
    stream: str
    group: str
    consumer: str

    def publish(self, payloads: Sequence[bytes]) -> list[str]:
        """Append messages to the stream; their ids (producers, tests and benches use it)."""
        ...

    def read(self, max_messages: int, timeout: float) -> list[Message]:
        """Up to `max_messages` messages for this consumer, waiting at most `timeout` seconds
        for the first; messages left unacknowledged by a dead consumer come first."""
        ...

    def ack(self, messages: Sequence[Message]) -> None:
        """Acknowledge: these messages are never delivered to the group again."""
        ...

    def dead_letter(self, messages: Sequence[tuple[Message, str]]) -> None:
        """Move each message to the dead-letter stream with its reason, and acknowledge it."""
        ...

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The oldest `limit` dead letters."""
        ...

    def lag(self) -> Lag: ...

    def close(self) -> None: ...


def cut_payload(data: bytes) -> bytes:
    return data[:DEAD_LETTER_PAYLOAD_BYTES]
