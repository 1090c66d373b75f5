"""The contract every stream broker passes (DESIGN §5 habit 3).

Subclass `BrokerContract` in a test module and override the `make_broker` fixture: it returns
a factory `make(consumer: str) -> Broker` for one fresh stream and group per test (every
consumer a factory makes shares them; messages left unacknowledged are redelivered after
`REDELIVER_AFTER` seconds). The factory closes what it made at teardown.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from featureline.stream import Broker, Message

REDELIVER_AFTER = 0.5
MakeBroker = Callable[[str], Broker]


def _read_all(b: Broker, n: int, seconds: float = 10.0, batch: int = 100) -> list[Message]:
    """Read until `n` messages arrived (or `seconds` passed)."""
    out: list[Message] = []
    deadline = time.monotonic() + seconds
    while len(out) < n and time.monotonic() < deadline:
        out += b.read(min(batch, n - len(out)), 0.2)
    return out


def _nothing_for(b: Broker, seconds: float) -> list[Message]:
    """What arrives within `seconds` (expected: nothing)."""
    out: list[Message] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        out += b.read(100, 0.1)
    return out


class BrokerContract:
    @pytest.fixture
    def make_broker(self) -> MakeBroker:
        raise NotImplementedError("override make_broker in the backend's test module")

    def test_publish_read_ack_is_not_redelivered(self, make_broker: MakeBroker) -> None:
        a = make_broker("a")
        payloads = [b'{"n": %d}' % i for i in range(5)]
        ids = a.publish(payloads)
        assert len(ids) == 5 and len(set(ids)) == 5
        got = _read_all(a, 5)
        assert [m.id for m in got] == ids
        assert [m.data for m in got] == payloads
        assert all(m.deliveries == 1 for m in got)
        assert all(m.published_us and m.published_us > 1.6e15 for m in got)
        a.ack(got)
        assert _nothing_for(a, REDELIVER_AFTER + 0.3) == []
        a.close()
        b = make_broker("b")  # a restarted consumer gets nothing acknowledged again
        assert _nothing_for(b, REDELIVER_AFTER + 0.3) == []

    def test_unacked_messages_are_redelivered_after_a_restart(
        self, make_broker: MakeBroker
    ) -> None:
        a = make_broker("a")
        ids = a.publish([b"{}" for _ in range(3)])
        first = _read_all(a, 3)
        assert [m.id for m in first] == ids
        a.close()  # dies without acknowledging
        b = make_broker("b")
        again = _read_all(b, 3, seconds=REDELIVER_AFTER * 5 + 5)
        assert sorted(m.id for m in again) == sorted(ids)
        assert all(m.deliveries >= 2 for m in again)
        b.ack(again)
        assert _nothing_for(b, REDELIVER_AFTER + 0.3) == []

    def test_a_restarted_consumer_gets_its_own_unacked_messages(
        self, make_broker: MakeBroker
    ) -> None:
        a = make_broker("same")
        ids = a.publish([b"{}" for _ in range(2)])
        assert len(_read_all(a, 2)) == 2
        a.close()
        again = make_broker("same")
        got = _read_all(again, 2, seconds=REDELIVER_AFTER * 5 + 5)
        assert sorted(m.id for m in got) == sorted(ids)

    def test_two_consumers_of_a_group_share_messages_without_overlap(
        self, make_broker: MakeBroker
    ) -> None:
        a, b = make_broker("a"), make_broker("b")
        ids = a.publish([b'{"n": %d}' % i for i in range(40)])
        seen: dict[str, list[str]] = {"a": [], "b": []}
        deadline = time.monotonic() + 15
        while len(seen["a"]) + len(seen["b"]) < 40 and time.monotonic() < deadline:
            for name, c in (("a", a), ("b", b)):
                got = c.read(3, 0.1)
                c.ack(got)
                seen[name] += [m.id for m in got]
        assert not set(seen["a"]) & set(seen["b"])
        assert sorted(seen["a"] + seen["b"]) == sorted(ids)
        assert seen["a"] and seen["b"], "one consumer got every message"
        assert _nothing_for(a, REDELIVER_AFTER + 0.3) == []

    def test_dead_letters_land_with_their_reason(self, make_broker: MakeBroker) -> None:
        a = make_broker("a")
        ids = a.publish([b'{"ok": 1}', b"not json", b"x" * 200_000])
        got = _read_all(a, 3)
        a.ack([got[0]])
        a.dead_letter([(got[1], "the payload is not JSON"), (got[2], "too big: 200,000 bytes")])
        dead = a.dead_letters()
        assert [(d.message_id, d.reason) for d in dead] == [
            (ids[1], "the payload is not JSON"),
            (ids[2], "too big: 200,000 bytes"),
        ]
        assert dead[0].payload == b"not json" and dead[0].size == 8
        assert dead[1].size == 200_000 and 0 < len(dead[1].payload) < 200_000
        assert dead[1].stream == a.stream
        assert _nothing_for(a, REDELIVER_AFTER + 0.3) == []  # dead letters are acknowledged

    def test_lag_counts_waiting_and_pending(self, make_broker: MakeBroker) -> None:
        a = make_broker("a")
        a.publish([b"{}" for _ in range(4)])
        deadline = time.monotonic() + 5
        while a.lag().waiting != 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert a.lag().waiting == 4
        got = _read_all(a, 2, batch=2)
        assert len(got) == 2
        lag = a.lag()
        assert (lag.waiting, lag.pending, lag.total) == (2, 2, 4)
        a.ack(got)
        assert a.lag().pending == 0
        a.ack(_read_all(a, 2))
        lag = a.lag()
        assert (lag.waiting, lag.pending, lag.total) == (0, 0, 0)
