"""The stream parser's batch fast path (Arrow's JSON reader) decides nothing on its own: for any
batch, `parse` returns what the per-message path returns (the same rows, the same refused
messages with the same reasons), and a well-formed batch does take the fast path."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

import featureline as fl
from featureline.stream._broker import Message
from featureline.stream._parse import MessageParser

USER = fl.Entity("user", ["user_id"])


def _parser(fmt: str = "iso") -> MessageParser:
    view = fl.FeatureView(
        "tx",
        [USER],
        [
            fl.Field("user_id", fl.Int64),
            fl.Field("amount", fl.Float64),
            fl.Field("tag", fl.String),
            fl.Field("flag", fl.Bool),
            fl.Field("seen", fl.Timestamp),
        ],
        stream_source=fl.StreamSource("redis", "s", timestamp_field="ts", timestamp_format=fmt),
    )
    assert view.stream_source is not None
    return MessageParser(view, view.stream_source, max_future_seconds=3600)


BASE = datetime(2026, 1, 1, tzinfo=UTC)
ISO_FORMS = [
    lambda d: d.isoformat(),
    lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    lambda d: d.strftime("%Y-%m-%d %H:%M:%SZ"),
    lambda d: d.astimezone(UTC).replace(tzinfo=None).isoformat(),  # naive: refused
    lambda d: d.strftime("%Y-%m-%dT%H:%M:%S+0530"),
    lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%f1Z"),  # 7 digits
    lambda d: d.strftime("%Y%m%dT%H%M%SZ"),  # basic format
    lambda d: "2026-02-30T00:00:00Z",
    lambda d: "yesterday",
]

good_event = st.fixed_dictionaries(
    {
        "user_id": st.integers(-(2**63), 2**63 - 1),
        "ts": st.builds(
            lambda s, f: ISO_FORMS[f](BASE + timedelta(microseconds=s)),
            st.integers(0, 10**12),
            st.sampled_from([0, 1, 2]),
        ),
        "amount": st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
        # (a batch holding the text NaN or Infinity anywhere takes the per-message path: the
        # fast path cannot tell such a string from a non-finite number Arrow's reader takes)
        "tag": st.one_of(
            st.none(), st.text(max_size=8).filter(lambda t: "NaN" not in t and "Inf" not in t)
        ),
        "flag": st.one_of(st.none(), st.booleans()),
        "seen": st.one_of(st.none(), st.just("2026-01-02T03:04:05.000006+01:00")),
    }
)


@st.composite
def payload(draw: st.DrawFn, kinds: int = 24) -> bytes:
    ev = draw(good_event)
    how = draw(st.integers(0, kinds))
    if how == 0:
        ev.pop("user_id")
    elif how == 1:
        ev["user_id"] = draw(st.sampled_from(["7", 1.5, True, None, 2**64]))
    elif how == 2:
        ev["ts"] = draw(st.sampled_from(ISO_FORMS))(BASE)
    elif how == 3:
        ev["amount"] = draw(st.sampled_from(["1.5", True, [1], {"a": 1}]))
    elif how == 4:
        ev["tag"] = draw(st.sampled_from([5, False, ["x"]]))
    elif how == 5:
        ev["flag"] = draw(st.sampled_from([1, "true"]))
    elif how == 6:
        ev["extra"] = {"nested": [1, 2, {"x": None}]}
    elif how == 7:
        ev.pop("ts")
    elif how == 8:
        ev["ts"] = (datetime.now(UTC) + timedelta(days=2)).isoformat()  # too far ahead
    text = json.dumps(ev)
    if how == 9:
        return text.replace("{", '{"extra": NaN, ', 1).encode()
    if how == 10:
        return text.encode()[:-1] + b', "x": "\xff"}'  # not UTF-8
    if how == 11:
        return (text + text).encode()  # two objects
    if how == 12:
        return b"  "
    if how == 13:
        return json.dumps(ev, indent=1).encode()  # newlines inside
    if how == 14:
        return text.replace("{", '{"user_id": 3, ', 1).encode()  # a field twice
    if how == 15:
        return b"[1, 2]"
    if how == 16:
        return json.dumps(ev, ensure_ascii=False).encode()
    return text.encode()


def _msgs(payloads: list[bytes]) -> list[Message]:
    return [Message(f"{i}-0", p, i * 1000) for i, p in enumerate(payloads)]


def _same(a: tuple, b: tuple) -> None:
    ta, ga, ba = a
    tb, gb, bb = b
    assert [m.id for m in ga] == [m.id for m in gb]
    assert [(m.id, r) for m, r in ba] == [(m.id, r) for m, r in bb]
    if ta is None or tb is None:
        assert ta is None and tb is None
    else:
        assert ta.schema == tb.schema
        assert ta.to_pylist() == tb.to_pylist()


@settings(max_examples=300, deadline=None)
@given(st.lists(payload(), min_size=1, max_size=12))
def test_parse_equals_the_per_message_path(payloads: list[bytes]) -> None:
    p = _parser()
    msgs = _msgs(payloads)
    _same(p.parse(msgs), p.parse_each(msgs, time.time_ns() // 1000))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(good_event.map(lambda e: json.dumps(e).encode()), max_size=6),
    payload(kinds=16),
    st.integers(0, 6),
)
def test_one_odd_message_among_good_ones(good: list[bytes], odd: bytes, at: int) -> None:
    p = _parser()
    msgs = _msgs([*good[:at], odd, *good[at:]])
    _same(p.parse(msgs), p.parse_each(msgs, time.time_ns() // 1000))


@settings(max_examples=100, deadline=None)
@given(st.lists(good_event, min_size=1, max_size=20))
def test_a_well_formed_batch_takes_the_fast_path_with_the_same_rows(events: list[dict]) -> None:
    p = _parser()
    msgs = _msgs([json.dumps(e).encode() for e in events])
    now = time.time_ns() // 1000
    fast = p.fast.table(msgs, now)
    assert fast is not None
    slow, _good, bad = p.parse_each(msgs, now)
    assert not bad and slow is not None
    assert fast.schema == slow.schema and fast.to_pylist() == slow.to_pylist()


def test_epoch_times_and_their_range() -> None:
    p = _parser("epoch_ms")
    ok = _msgs([json.dumps({"user_id": 1, "ts": 1_767_225_600_123}).encode()])
    t = p.fast.table(ok, time.time_ns() // 1000)
    assert t is not None and t.column("event_timestamp").type == pa.timestamp("us", tz="UTC")
    assert t.column("event_timestamp")[0].as_py() == datetime(
        2026, 1, 1, 0, 0, 0, 123000, tzinfo=UTC
    )
    for raw in [2**62, 1.5e12, "1767225600123", 2**63 - 1]:
        msgs = _msgs([json.dumps({"user_id": 1, "ts": raw}).encode()])
        _same(p.parse(msgs), p.parse_each(msgs, time.time_ns() // 1000))
        refused = bool(p.parse(msgs)[2])  # with the per-message reason
        assert refused == (raw != 1.5e12)  # a float is read (rounded to the microsecond)


def test_a_batch_larger_than_one_block_is_read_whole_and_alike() -> None:
    """Over one block (1 MiB) Arrow's reader takes its thread pool (a smaller batch is read on
    the calling thread): the rows are the same either way."""
    p = _parser()
    events = [
        {"user_id": i, "ts": (BASE + timedelta(seconds=i)).isoformat(), "tag": "x" * 40}
        for i in range(16_000)
    ]
    msgs = _msgs([json.dumps(e).encode() for e in events])
    assert sum(len(m.data) for m in msgs) > 1 << 20
    now = time.time_ns() // 1000
    for batch in (msgs, msgs[:50]):
        fast = p.fast.table(batch, now)
        assert fast is not None and fast.num_rows == len(batch)
        slow, _good, bad = p.parse_each(batch, now)
        assert not bad and slow is not None
        assert fast.schema == slow.schema and fast.to_pylist() == slow.to_pylist()
