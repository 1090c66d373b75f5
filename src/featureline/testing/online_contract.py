"""The contract every online store backend passes (see `featureline.online._store`).

Subclass `OnlineStoreContract` in a backend's tests and override the `store` fixture to yield a
fresh, empty store.
"""

from __future__ import annotations

import itertools
import os
import pickle
import random
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featureline.errors import StorageError, ValidationError
from featureline.online import ORDER_BYTES, OnlineCapabilities, OnlineStore, due_bytes

TABLE = "driver_stats__v1"


def order(n: int) -> bytes:
    """The 32-byte order of integer `n` (big-endian, so bytes order = integer order)."""
    return n.to_bytes(ORDER_BYTES, "big")


def value(n: int, payload: bytes = b"") -> bytes:
    return order(n) + payload


def dated(event_us: int, tie: int = 0, payload: bytes = b"") -> bytes:
    """A value whose order starts with event time `event_us` (then `tie` breaks ties)."""
    return due_bytes(event_us) + tie.to_bytes(ORDER_BYTES - 8, "big") + payload


def payload_of(key: bytes, n: int) -> bytes:
    """A payload determined by key and order, so equal orders always carry equal values."""
    return b"p" + key + (n % 2**64).to_bytes(8, "big") * (n % 5)


# Binary keys that trip up naive encodings: empty, NUL, invalid UTF-8, separators, long.
AWKWARD_KEYS = [b"", b"\x00", b"\x00\x00", b"\xff" * 40, b"\xc3\x28", b"a:b", b"\r\n", b"*"]
AWKWARD_KEYS += ["ünï".encode(), bytes(range(256)), b"A", b"a"]


def _converges(
    store: OnlineStore, writes: list[tuple[int, int]], cuts: list[int], rnd: random.Random
) -> None:
    keys = [b"key-%d" % i for i in range(8)]
    table = f"t_{uuid.uuid4().hex[:12]}"  # hypothesis runs many examples on one store
    try:
        shuffled = list(writes)
        rnd.shuffle(shuffled)
        bounds = sorted({0, len(shuffled), *(c for c in cuts if c < len(shuffled))})
        applied = 0
        for lo, hi in itertools.pairwise(bounds):
            ks = [keys[k] for k, _ in shuffled[lo:hi]]
            vs = [value(o, payload_of(keys[k], o)) for k, o in shuffled[lo:hi]]
            got = store.write(table, ks, vs)
            assert 0 <= got <= len(set(ks))
            applied += got
        best: dict[bytes, int] = {}
        for k, o in writes:
            best[keys[k]] = max(o, best.get(keys[k], -1))
        assert store.read(table, keys) == [
            value(best[k], payload_of(k, best[k])) if k in best else None for k in keys
        ]
        assert store.count(table) == len(best)
        assert applied >= len(best)
    finally:
        store.drop_table(table)


def _race(
    writer: Any, reader: Any, readers: int, stop: Any, errors: list[str], reads: list[int]
) -> None:
    """Run `writer` and `readers` readers (each given its index) for 1.5 s, then stop them; no
    error, and the readers read more than 10 times."""
    threads = [threading.Thread(target=writer)]
    threads += [threading.Thread(target=reader, args=(i,)) for i in range(readers)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert errors[:5] == []
    assert reads[0] > 10


class OnlineStoreContract:
    """Base class of online store backend tests. Override the `store` fixture."""

    @pytest.fixture
    def store(self) -> Iterator[OnlineStore]:
        raise NotImplementedError("override the `store` fixture to yield a fresh, empty store")

    # ---- basics ---------------------------------------------------------------------------

    def test_is_an_online_store(self, store: OnlineStore) -> None:
        assert isinstance(store, OnlineStore)
        caps = store.capabilities
        assert isinstance(caps, OnlineCapabilities)
        assert all(isinstance(getattr(caps, f), bool) for f in caps.__dataclass_fields__)

    def test_empty_store(self, store: OnlineStore) -> None:
        assert store.tables() == []
        assert store.read(TABLE, [b"a"]) == [None]
        assert store.read(TABLE, [b"a", b"b", b"a"]) == [None, None, None]
        assert store.read(TABLE, []) == []
        assert store.count(TABLE) == 0
        assert store.delete(TABLE, [b"a"]) == 0
        store.drop_table(TABLE)
        assert store.write(TABLE, [], []) == 0
        assert store.tables() == []

    def test_round_trip_one_key(self, store: OnlineStore) -> None:
        assert store.write(TABLE, [b"k"], [value(7, b"hello")]) == 1
        assert store.read(TABLE, [b"k"]) == [value(7, b"hello")]
        assert store.read(TABLE, (b"k", b"nope")) == [value(7, b"hello"), None]
        assert store.count(TABLE) == 1
        assert store.tables() == [TABLE]

    def test_round_trip_many_binary_keys_in_order(self, store: OnlineStore) -> None:
        rng = random.Random(42)
        keys = list(
            dict.fromkeys(AWKWARD_KEYS + [rng.randbytes(rng.randint(1, 64)) for _ in range(1000)])
        )
        values = [
            value(rng.getrandbits(256), b"" if i % 3 == 0 else rng.randbytes(rng.randint(1, 300)))
            for i in range(len(keys))
        ]
        assert store.write(TABLE, keys, values) == len(keys)
        assert store.count(TABLE) == len(keys)
        assert store.read(TABLE, keys) == values
        expected = dict(zip(keys, values, strict=True))
        probe = [*rng.sample(keys, 500), *(b"missing%d" % i for i in range(50)), *keys[:20]]
        rng.shuffle(probe)
        assert store.read(TABLE, probe) == [expected.get(k) for k in probe]
        for n in (1, 2, 3, 5, 17, 100, 513, 1001):
            assert store.read(TABLE, probe[:n]) == [expected.get(k) for k in probe[:n]]

    def test_values_of_exactly_an_order_and_large_values(self, store: OnlineStore) -> None:
        big = value(1, os.urandom(1 << 20))
        assert store.write(TABLE, [b"empty", b"big"], [order(1), big]) == 2
        assert store.read(TABLE, [b"empty", b"big"]) == [order(1), big]

    # ---- the greatest order wins ----------------------------------------------------------

    def test_greater_order_wins(self, store: OnlineStore) -> None:
        assert store.write(TABLE, [b"k"], [value(1, b"one")]) == 1
        assert store.write(TABLE, [b"k"], [value(2, b"two")]) == 1
        assert store.read(TABLE, [b"k"]) == [value(2, b"two")]

    def test_smaller_or_equal_order_is_ignored(self, store: OnlineStore) -> None:
        store.write(TABLE, [b"k", b"j"], [value(5, b"five"), value(5, b"j")])
        assert store.write(TABLE, [b"k"], [value(4, b"four")]) == 0
        assert store.write(TABLE, [b"k"], [value(5, b"other payload")]) == 0
        assert store.write(TABLE, [b"k", b"j"], [value(3), value(6, b"six")]) == 1
        assert store.read(TABLE, [b"k", b"j"]) == [value(5, b"five"), value(6, b"six")]

    def test_orders_compare_as_unsigned_bytes_at_every_position(self, store: OnlineStore) -> None:
        base = bytes(range(100, 100 + ORDER_BYTES))
        for pos in range(ORDER_BYTES):
            for low, high in ((0x00, 0x01), (0x7F, 0x80), (0x00, 0xFF), (0xFE, 0xFF)):
                key = b"pos%d-%d-%d" % (pos, low, high)
                small = base[:pos] + bytes([low]) + b"\xff" * (ORDER_BYTES - pos - 1)
                large = base[:pos] + bytes([high]) + b"\x00" * (ORDER_BYTES - pos - 1)
                assert small < large
                assert store.write(TABLE, [key], [large + b"L"]) == 1
                assert store.write(TABLE, [key], [small + b"S"]) == 0, (pos, low, high)
                assert store.read(TABLE, [key]) == [large + b"L"]
                key2 = key + b"-up"
                assert store.write(TABLE, [key2], [small + b"S"]) == 1
                assert store.write(TABLE, [key2], [large + b"L"]) == 1, (pos, low, high)
                assert store.read(TABLE, [key2]) == [large + b"L"]

    def test_only_the_first_32_bytes_are_the_order(self, store: OnlineStore) -> None:
        store.write(TABLE, [b"k"], [value(1, b"\x00")])
        assert store.write(TABLE, [b"k"], [value(1, b"\xff\xff")]) == 0
        assert store.read(TABLE, [b"k"]) == [value(1, b"\x00")]

    def test_duplicates_in_one_call(self, store: OnlineStore) -> None:
        keys = [b"a", b"b", b"a", b"a", b"b"]
        vals = [value(1, b"a1"), value(9, b"b9"), value(3, b"a3"), value(2, b"a2"), value(8)]
        assert store.write(TABLE, keys, vals) == 2
        assert store.read(TABLE, [b"a", b"b"]) == [value(3, b"a3"), value(9, b"b9")]
        assert store.write(TABLE, [b"a", b"a", b"b"], [value(2), value(3, b"x"), value(1)]) == 0
        assert store.write(TABLE, [b"a", b"a"], [value(4, b"first"), value(4, b"second")]) == 1
        assert store.read(TABLE, [b"a"]) == [value(4, b"first")]

    def test_duplicates_across_a_large_call(self, store: OnlineStore) -> None:
        n = 12_000  # more than one chunk for chunked backends
        keys = [b"k%d" % (i % (n // 2)) for i in range(n)]
        vals = [value(i, b"v%d" % i) for i in range(n)]
        assert store.write(TABLE, keys, vals) == n // 2
        assert store.count(TABLE) == n // 2
        assert store.read(TABLE, [b"k0", b"k5999"]) == [vals[6000], vals[11999]]
        assert store.write(TABLE, keys, vals) == 0

    def test_replay_is_a_no_op(self, store: OnlineStore) -> None:
        keys = [b"k%d" % i for i in range(300)]
        vals = [value(i, b"x" * i) for i in range(300)]
        assert store.write(TABLE, keys, vals) == 300
        assert store.write(TABLE, keys, vals) == 0
        assert store.write(TABLE, keys[::-1], vals[::-1]) == 0
        assert store.read(TABLE, keys) == vals

    def test_out_of_order_batches_converge(self, store: OnlineStore) -> None:
        """Any permutation of writes, cut into any batches, ends at the greatest order per key."""

        @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(
            writes=st.lists(
                st.tuples(st.integers(0, 7), st.integers(0, 2**256 - 1) | st.integers(0, 20)),
                min_size=1,
                max_size=40,
            ),
            cuts=st.lists(st.integers(0, 40), max_size=6),
            rnd=st.randoms(use_true_random=False),
        )
        def check(writes: list[tuple[int, int]], cuts: list[int], rnd: random.Random) -> None:
            _converges(store, writes, cuts, rnd)

        check()

    # ---- delete, drop, count, tables ------------------------------------------------------

    def test_delete(self, store: OnlineStore) -> None:
        store.write(TABLE, [b"a", b"b", b"c"], [value(5), value(5), value(5)])
        assert store.delete(TABLE, [b"a", b"zz", b"a"]) == 1
        assert store.read(TABLE, [b"a", b"b"]) == [None, value(5)]
        assert store.count(TABLE) == 2
        assert store.delete(TABLE, []) == 0
        # delete forgets the order too: any later write applies
        assert store.write(TABLE, [b"a"], [value(1, b"again")]) == 1
        assert store.read(TABLE, [b"a"]) == [value(1, b"again")]
        assert store.delete(TABLE, [b"a", b"b", b"c"]) == 3
        assert store.count(TABLE) == 0
        assert store.tables() == [TABLE]  # emptied, not dropped

    def test_drop_table(self, store: OnlineStore) -> None:
        store.write(TABLE, [b"a"], [value(5)])
        store.write("other", [b"a"], [value(6)])
        store.drop_table(TABLE)
        store.drop_table(TABLE)
        assert store.tables() == ["other"]
        assert store.read(TABLE, [b"a"]) == [None]
        assert store.count(TABLE) == 0
        assert store.read("other", [b"a"]) == [value(6)]
        assert store.write(TABLE, [b"a"], [value(1)]) == 1
        assert store.tables() == sorted(["other", TABLE])

    # ---- values dated ahead (staged until due) -------------------------------------------

    def test_a_staged_value_is_served_from_its_event_time_on(self, store: OnlineStore) -> None:
        store.write(TABLE, [b"k", b"j"], [dated(100, payload=b"now"), dated(100, payload=b"j")])
        assert store.stage(TABLE, [b"k", b"k", b"n"], [dated(200), dated(300), dated(250)]) == 3
        assert store.read(TABLE, [b"k"], 199) == [dated(100, payload=b"now")]
        assert store.read(TABLE, [b"k"], 200) == [dated(200)]
        assert store.read(TABLE, [b"k", b"j", b"n", b"x"], 299) == [
            dated(200),
            dated(100, payload=b"j"),
            dated(250),
            None,
        ]
        assert store.read(TABLE, [b"n", b"k"], 300) == [dated(250), dated(300)]
        assert store.read(TABLE, [b"n"], 249) == [None]
        assert store.count(TABLE) == 2  # written keys only
        assert store.tables() == [TABLE]

    def test_staging_the_same_order_twice_is_one_value(self, store: OnlineStore) -> None:
        assert store.stage(TABLE, [b"k", b"k"], [dated(200, 1), dated(200, 1)]) == 1
        assert store.stage(TABLE, [b"k"], [dated(200, 1)]) == 0
        assert store.stage(TABLE, [b"k"], [dated(200, 2)]) == 1
        assert store.read(TABLE, [b"k"], 200) == [dated(200, 2)]
        assert store.stage(TABLE, [], []) == 0

    def test_a_written_value_with_a_greater_order_beats_a_due_staged_one(
        self, store: OnlineStore
    ) -> None:
        store.stage(TABLE, [b"k"], [dated(200, 1)])
        store.write(TABLE, [b"k"], [dated(200, 5)])
        assert store.read(TABLE, [b"k"], 500) == [dated(200, 5)]
        assert store.promote(TABLE, 500) == 1
        assert store.read(TABLE, [b"k"], 500) == [dated(200, 5)]

    def test_promote_moves_due_values_and_changes_no_answer(self, store: OnlineStore) -> None:
        keys = [b"a", b"b", b"c"]
        store.write(TABLE, [b"a"], [dated(10)])
        store.stage(
            TABLE, keys * 2, [dated(20), dated(30), dated(40), dated(50), dated(5), dated(60)]
        )
        before = {t: store.read(TABLE, keys, t) for t in (30, 45, 55, 70)}
        assert store.promote(TABLE, 30) == 3  # a@20, b@30, b@5
        assert store.promote(TABLE, 30) == 0
        assert store.count(TABLE) == 2
        for t, want in before.items():
            assert store.read(TABLE, keys, t) == want
        assert store.promote(TABLE, 10**12) == 3  # c@40, a@50, c@60
        assert store.read(TABLE, keys, 10**12) == [dated(50), dated(30), dated(60)]
        assert store.promote(TABLE, 10**12) == 0
        assert store.promote("never_written", 10**12) == 0

    def test_delete_and_drop_forget_staged_values(self, store: OnlineStore) -> None:
        store.write(TABLE, [b"k"], [dated(1)])
        store.stage(TABLE, [b"k", b"j"], [dated(200), dated(200)])
        assert store.delete(TABLE, [b"k", b"j"]) == 1  # j was only staged
        assert store.read(TABLE, [b"k", b"j"], 500) == [None, None]
        store.stage(TABLE, [b"k"], [dated(200)])
        store.drop_table(TABLE)
        assert store.read(TABLE, [b"k"], 500) == [None]
        assert store.tables() == []

    def test_reads_equal_a_reference_whatever_is_staged_or_promoted(
        self, store: OnlineStore
    ) -> None:
        op = st.tuples(
            st.sampled_from(["write", "stage", "promote"]),
            st.integers(0, 3),  # key
            st.integers(0, 6),  # event time
            st.integers(0, 2),  # tie
        )

        @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(ops=st.lists(op, max_size=25), reads=st.lists(st.integers(0, 8), min_size=1))
        def check(ops: list[tuple[str, int, int, int]], reads: list[int]) -> None:
            table = f"s_{uuid.uuid4().hex[:12]}"
            keys = [b"key-%d" % i for i in range(4)]
            try:
                everything: dict[bytes, list[bytes]] = {k: [] for k in keys}
                promoted = -1
                for kind, ki, ev, tie in ops:
                    v = dated(ev, tie, payload_of(keys[ki], ev * 3 + tie))
                    if kind == "write":
                        store.write(table, [keys[ki]], [v])
                        everything[keys[ki]].append(v)
                    elif kind == "stage":
                        store.stage(table, [keys[ki]], [v])
                        everything[keys[ki]].append(v)
                    else:
                        store.promote(table, ev)
                        promoted = max(promoted, ev)
                written_at = {  # a written value counts at any time; a staged one once due
                    k: [
                        v
                        for kind, kk, ev, tie in ops
                        if kind == "write" and keys[kk] == k
                        for v in [dated(ev, tie, payload_of(k, ev * 3 + tie))]
                    ]
                    for k in keys
                }
                for t in reads:
                    t = max(t, promoted)
                    want = []
                    for k in keys:
                        cands = written_at[k] + [
                            v
                            for v in everything[k]
                            if int.from_bytes(v[:8], "big") <= int.from_bytes(due_bytes(t), "big")
                        ]
                        want.append(max(cands, key=lambda v: v[:ORDER_BYTES]) if cands else None)
                    assert store.read(table, keys, t) == want, t
                    assert [store.read(table, [k], t)[0] for k in keys] == want
            finally:
                store.drop_table(table)

        check()

    def test_count_and_tables(self, store: OnlineStore) -> None:
        names = ["b_view__v2", "a_view__v1", "B_view__v2", "_x", "9"]
        for i, name in enumerate(names):
            store.write(name, [b"k%d" % j for j in range(i + 1)], [value(1)] * (i + 1))
        assert store.tables() == sorted(names)
        assert [store.count(n) for n in names] == [1, 2, 3, 4, 5]

    def test_tables_do_not_mix(self, store: OnlineStore) -> None:
        store.write("one", [b"k"], [value(1, b"one")])
        store.write("One", [b"k"], [value(1, b"One")])
        store.write("two", [b"k", b"j"], [value(2, b"two"), value(2)])
        assert store.read("one", [b"k", b"j"]) == [value(1, b"one"), None]
        assert store.read("One", [b"k"]) == [value(1, b"One")]
        assert store.read("two", [b"k"]) == [value(2, b"two")]
        assert store.delete("one", [b"k", b"j"]) == 1
        assert store.read("two", [b"k", b"j"]) == [value(2, b"two"), value(2)]
        assert store.read("One", [b"k"]) == [value(1, b"One")]

    # ---- meta and health --------------------------------------------------------------------

    def test_meta_round_trip(self, store: OnlineStore) -> None:
        assert store.get_meta("watermark:driver_stats__v1") is None
        store.set_meta("watermark:driver_stats__v1", "2024-05-01T00:00:00+00:00")
        assert store.get_meta("watermark:driver_stats__v1") == "2024-05-01T00:00:00+00:00"
        store.set_meta("watermark:driver_stats__v1", "later")
        store.set_meta("ünïcode name", "")
        store.set_meta("json", '{"a": [1, 2]}')
        assert store.get_meta("watermark:driver_stats__v1") == "later"
        assert store.get_meta("ünïcode name") == ""
        assert store.get_meta("json") == '{"a": [1, 2]}'
        assert store.tables() == []

    def test_health(self, store: OnlineStore) -> None:
        health = store.health()
        assert health["ok"] is True
        assert isinstance(health["backend"], str) and health["backend"]
        assert isinstance(health["detail"], str)

    # ---- bad input --------------------------------------------------------------------------

    @pytest.mark.parametrize("bad", ["", "a-b", "a b", "x;drop", "ünï", "a:b", "t@", "x" * 201])
    def test_bad_table_names_are_refused(self, store: OnlineStore, bad: str) -> None:
        for call in (
            lambda: store.write(bad, [b"k"], [value(1)]),
            lambda: store.read(bad, [b"k"]),
            lambda: store.delete(bad, [b"k"]),
            lambda: store.count(bad),
            lambda: store.drop_table(bad),
        ):
            with pytest.raises(ValidationError, match="identifier") as info:
                call()
            assert f"`{bad!r}`" in str(info.value)

    def test_bad_batches_are_refused_and_write_nothing(self, store: OnlineStore) -> None:
        good = [value(1), value(2)]
        cases: list[tuple[list[Any], list[Any], str]] = [
            ([b"a", "b"], good, "bytes"),
            ([b"a", b"b"], [value(1), b"short"], "32-byte order"),
            ([b"a", b"b"], [value(1), "x" * 40], "bytes"),
            ([b"a", b"b"], [value(1)], "values"),
        ]
        for keys, vals, match in cases:
            with pytest.raises(ValidationError, match=match):
                store.write(TABLE, keys, vals)
        assert store.count(TABLE) == 0
        assert store.tables() == []
        with pytest.raises(ValidationError, match="bytes"):
            store.read(TABLE, ["a"])  # type: ignore[list-item]
        with pytest.raises(ValidationError):
            store.set_meta("", "x")
        with pytest.raises(ValidationError):
            store.set_meta("n", 5)  # type: ignore[arg-type]

    # ---- several tables in one write --------------------------------------------------------

    def test_write_tables_writes_each_table_with_the_greatest_order(
        self, store: OnlineStore
    ) -> None:
        other = TABLE + "_h"
        store.write(TABLE, [b"a"], [value(5, b"old")])
        n = store.write_tables(
            [
                (TABLE, [b"a", b"b", b"b"], [value(4), value(1), value(2, b"b2")]),
                (other, [b"a"], [value(7, b"h")]),
            ]
        )
        assert n == 2  # b in TABLE and a in `other`; a in TABLE keeps its greater order
        assert store.read(TABLE, [b"a", b"b"]) == [value(5, b"old"), value(2, b"b2")]
        assert store.read(other, [b"a", b"b"]) == [value(7, b"h"), None]
        assert set(store.tables()) >= {TABLE, other}
        assert store.write_tables([]) == 0
        assert store.write_tables([(TABLE, [], [])]) == 0
        # a replay changes nothing
        assert store.write_tables([(other, [b"a"], [value(7, b"h")])]) == 0

    def test_write_tables_refuses_a_bad_batch_and_writes_nothing(self, store: OnlineStore) -> None:
        with pytest.raises(ValidationError):
            store.write_tables([(TABLE, [b"a"], [value(1)]), (TABLE + "_h", [b"a"], [b"short"])])
        with pytest.raises(ValidationError):
            store.write_tables([(TABLE, [b"a"], [value(1)]), ("bad name!", [b"a"], [value(1)])])
        assert store.read(TABLE, [b"a"]) == [None]
        assert store.count(TABLE) == 0

    def test_write_tables_is_atomic_for_concurrent_readers(self, store: OnlineStore) -> None:
        """Each write puts order n at every key of both tables: a read after another (any
        tables, any keys) never sees an older order than the first did, as it would in the
        middle of a write visible in part (one table before the other, or some chunks of it)."""
        heads = TABLE + "_h"
        keys = [b"key-%d" % i for i in range(300)]
        big = b"x" * 4000  # large enough that a backend chunking its writes uses several calls
        pair, ends = (TABLE, heads), (keys[0], keys[-1])
        errors: list[str] = []
        stop = threading.Event()
        reads = [0]

        def writer() -> None:
            try:
                for n in range(1, 10**9):
                    if stop.is_set():
                        return
                    store.write_tables(
                        [
                            (TABLE, keys, [value(n, big) for _ in keys]),
                            (heads, keys, [value(n) for _ in keys]),
                        ]
                    )
            except Exception as e:
                errors.append(f"writer: {type(e).__name__}: {e}")

        def reader(seed: int) -> None:
            rng = random.Random(seed)
            try:
                while not stop.is_set():
                    (t1, k1), (t2, k2) = [(rng.choice(pair), rng.choice(ends)) for _ in "ab"]
                    v1 = store.read(t1, [k1])[0]
                    v2 = store.read(t2, [k2])[0]
                    n1 = -1 if v1 is None else int.from_bytes(v1[:ORDER_BYTES], "big")
                    n2 = -1 if v2 is None else int.from_bytes(v2[:ORDER_BYTES], "big")
                    if n2 < n1:
                        errors.append(f"{t1} {k1!r} at order {n1}, then {t2} {k2!r} at {n2}")
                    reads[0] += 1
            except Exception as e:
                errors.append(f"reader: {type(e).__name__}: {e}")

        _race(writer, reader, 3, stop, errors, reads)

    # ---- concurrency and durability ---------------------------------------------------------

    def test_concurrent_readers_never_see_torn_or_older_values(self, store: OnlineStore) -> None:
        keys = [b"key-%d" % i for i in range(50)]
        errors: list[str] = []
        stop = threading.Event()
        reads = [0]

        def writer() -> None:
            try:
                for n in range(1, 10**9):
                    if stop.is_set():
                        return
                    store.write(TABLE, keys, [value(n, payload_of(k, n)) for k in keys])
            except Exception as e:
                errors.append(f"writer: {type(e).__name__}: {e}")

        def reader(seed: int) -> None:
            rng = random.Random(seed)
            seen = dict.fromkeys(keys, -1)
            try:
                while not stop.is_set():
                    sample = rng.sample(keys, rng.choice([1, 2, 10, 50]))
                    for k, v in zip(sample, store.read(TABLE, sample), strict=True):
                        if v is None:
                            if seen[k] >= 0:
                                errors.append(f"{k!r} vanished after order {seen[k]}")
                            continue
                        n = int.from_bytes(v[:ORDER_BYTES], "big")
                        if v != value(n, payload_of(k, n)):
                            errors.append(f"torn value for {k!r}: {v!r}")
                        if n < seen[k]:
                            errors.append(f"{k!r} went back from order {seen[k]} to {n}")
                        seen[k] = n
                    reads[0] += 1
            except Exception as e:
                errors.append(f"reader: {type(e).__name__}: {e}")

        _race(writer, reader, 4, stop, errors, reads)
        assert store.read(TABLE, keys[:1])[0] is not None

    def test_data_survives_close_and_reopen(self, store: OnlineStore) -> None:
        caps = store.capabilities
        if not (caps.durable or caps.shared):
            pytest.skip("the store keeps data only while it is open")
        keys = [b"k%d" % i for i in range(100)]
        vals = [value(i, b"v") for i in range(100)]
        store.write(TABLE, keys, vals)
        store.set_meta("watermark", "42")
        blob = pickle.dumps(store)
        store.close()
        reopened: OnlineStore = pickle.loads(blob)
        try:
            assert reopened.read(TABLE, keys) == vals
            assert reopened.get_meta("watermark") == "42"
            assert reopened.tables() == [TABLE]
            assert reopened.write(TABLE, keys[:1], [value(1000)]) == 1
        finally:
            reopened.close()

    def test_closed_store_raises_storage_error(self, store: OnlineStore) -> None:
        store.write(TABLE, [b"a"], [value(1)])
        store.close()
        store.close()  # idempotent
        for call in (
            lambda: store.read(TABLE, [b"a"]),
            lambda: store.read(TABLE, [b"a", b"b"]),
            lambda: store.write(TABLE, [b"a"], [value(2)]),
            lambda: store.get_meta("x"),
            lambda: store.tables(),
        ):
            with pytest.raises(StorageError, match="closed"):
                call()
        assert store.health()["ok"] is False


__all__ = ["AWKWARD_KEYS", "OnlineStoreContract", "dated", "order", "payload_of", "value"]
