"""Online tiles, upgrade (issue 10): versions before head rows had their own table wrote each
key's head row into the tiles table itself (key + HEAD). A store opened by the new code deletes
those dead rows once (SQLite and Redis), touches nothing else, and reads equal a one-shot
kernel reference before, during and after it; several processes opening the old store at once
all come up, and the rows are gone."""

from __future__ import annotations

import itertools
import multiprocessing
import sqlite3
import struct
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from featureline.aggregation.windows import window_start
from featureline.online import OnlineStore
from featureline.online._codec import key_encoder
from featureline.online._store import ORDER_BYTES
from featureline.online.sqlite import SqliteOnlineStore
from featureline.online.tiles import (
    HEAD,
    HEAD_SPAN_US,
    TileReader,
    heads_table,
    refresh,
    tiles_table,
)
from tests.unit.test_aggregation_tiles_head import (
    KEY_TYPES,
    T0,
    _reference,
    _same,
    _Source,
    _view,
)

S = 1_000_000
KEYS = [0, 1, 2, 3]
PLAIN = "other__v1__0123abcd"  # a view's table: a key ending like an old head is not one
PLAIN_KEY = b"x\x01" + HEAD
ENC = key_encoder(["user_id"], KEY_TYPES)


def _rows() -> list[dict[str, Any]]:
    rows = []
    for k in KEYS[:3]:  # key 3 has no events: its tiles are empty
        for i in range(40):
            at = T0 - i * 250_000 + (2 * S if k == 1 and i < 2 else 0)  # key 1: dated ahead
            rows.append(
                {"user_id": k, "__event_us": at, "x": i * 0.5 - k, "i": i + k, "s": f"s{i % 7}"}
                | {"b": i % 3 == 0}
            )
    return rows


def _old_head(view: Any, now_us: int, tail: bytes) -> bytes:
    """The head row the code before bc33b96 wrote (its `_head`), from the tail row's tiles."""
    body = tail[ORDER_BYTES:]
    n, m = struct.unpack_from("<II", body)
    times = list(struct.unpack_from(f"<{n + m}q", body, 8))
    starts, ahead = times[:n], times[n:]
    pos, blobs = 8 + 8 * (n + m), []
    for _ in view.aggregations:
        offs = struct.unpack_from(f"<{n + m + 1}I", body, pos)
        base = pos + 4 * (n + m + 1)
        blobs.append([body[base + a : base + z] for a, z in itertools.pairwise(offs)])
        pos = base + offs[-1]
    spans = []
    for a in view.aggregations:
        if a.window_us is None:
            spans.append((0, min(n, 1), -(2**63), 2**63 - 1))
            continue
        lo = window_start(now_us, a.window_us, view.tile_us)
        until = lo + HEAD_SPAN_US
        first = int(np.searchsorted(starts, lo, "left"))
        last = min(n, int(np.searchsorted(starts, until, "right")) + 1)
        spans.append((first, last, lo, until))
    bounds = np.array([b for _, _, lo, until in spans for b in (lo, until)], dtype="<i8")
    parts = [bounds.tobytes(), np.array([len(ahead)], "<u4").tobytes()]
    parts.append(np.array(ahead, dtype="<i8").tobytes())
    for (first, last, _, _), row in zip(spans, blobs, strict=True):
        kept = row[first:last] + row[n:]
        parts.append(np.array([last - first], "<u4").tobytes())
        parts.append(np.array(starts[first:last], dtype="<i8").tobytes())
        offs_arr = np.zeros(len(kept) + 1, dtype="<u4")
        if kept:
            offs_arr[1:] = np.cumsum([len(x) for x in kept])
        parts.append(offs_arr.tobytes())
        parts.extend(kept)
    return tail[:ORDER_BYTES] + b"".join(parts)


def _make_old_layout(store: OnlineStore, view: Any, rows: list[dict[str, Any]]) -> None:
    """The store as the old code left it: tails and, beside them, key + HEAD rows in the tiles
    table; no heads table."""
    refresh(_Source(rows), store, view, KEY_TYPES, pa.table({"user_id": KEYS}), now_us=T0)
    store.drop_table(heads_table(view))
    enc = [ENC(k) for k in KEYS]
    tails = store.read(tiles_table(view), enc, T0)
    assert all(t is not None for t in tails)
    old = [_old_head(view, T0, t) for t in tails if t is not None]
    assert store.write(tiles_table(view), [e + HEAD for e in enc], old) == len(KEYS)
    assert store.write(PLAIN, [PLAIN_KEY, b"y\x01"], [bytes(ORDER_BYTES)] * 2) == 2
    assert store.count(tiles_table(view)) == 2 * len(KEYS)


def _assert_reads_equal_reference(store: OnlineStore, view: Any, rows: list[Any]) -> None:
    names = [a.name for a in view.aggregations]
    reader = TileReader(view, names)
    for dt in (0, 999_999, 3 * S, 11 * S):
        t = T0 + dt
        want = [_reference(view, rows, k, t) for k in KEYS]
        values, found = reader.read(store, [ENC(k) for k in KEYS], t)
        assert found == [True] * len(KEYS)
        for i, col in enumerate(values):
            assert all(map(_same, col, [w[i] for w in want])), (names[i], dt, col)


def _assert_no_dead_rows(store: OnlineStore, view: Any) -> None:
    table = tiles_table(view)
    assert store.count(table) == len(KEYS), "old head rows are still in the tiles table"
    assert store.read(table, [ENC(k) + HEAD for k in KEYS], T0) == [None] * len(KEYS)
    assert all(v is not None for v in store.read(table, [ENC(k) for k in KEYS], T0))
    assert store.read(PLAIN, [PLAIN_KEY, b"y\x01"]) == [bytes(ORDER_BYTES)] * 2  # untouched


def _upgrade_then_refresh(open_store: Callable[[], OnlineStore]) -> None:
    view, rows = _view(1), _rows()
    store = open_store()
    try:
        _make_old_layout(store, view, rows)
        _assert_reads_equal_reference(store, view, rows)  # the old layout reads right too
    finally:
        store.close()
    store = open_store()  # the new code opens the old store
    try:
        _assert_no_dead_rows(store, view)
        _assert_reads_equal_reference(store, view, rows)
        assert store.get_meta("layout:heads_apart") == "1"
        refresh(_Source(rows), store, view, KEY_TYPES, pa.table({"user_id": KEYS}), now_us=T0)
        _assert_no_dead_rows(store, view)
        _assert_reads_equal_reference(store, view, rows)
        assert store.count(heads_table(view)) == len(KEYS)
    finally:
        store.close()


def test_sqlite_store_of_the_old_layout_loses_its_dead_head_rows(tmp_path: Path) -> None:
    path = tmp_path / "online.db"
    _upgrade_then_refresh(lambda: SqliteOnlineStore(path))
    con = sqlite3.connect(path)
    try:
        (table,) = [
            n
            for (n,) in con.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")
            if n.startswith("t:") and n.endswith(tiles_table(_view(1))[-8:])
        ]
        keys = [k for (k,) in con.execute(f'SELECT key FROM "{table}"')]
        assert sorted(keys) == sorted(ENC(k) for k in KEYS)
    finally:
        con.close()


def _open_and_read(path: str) -> None:
    view, rows = _view(1), _rows()
    with SqliteOnlineStore(path) as store:
        _assert_reads_equal_reference(store, view, rows)


def test_sqlite_processes_opening_the_old_store_at_once(tmp_path: Path) -> None:
    path = tmp_path / "online.db"
    view, rows = _view(1), _rows()
    with SqliteOnlineStore(path) as store:
        _make_old_layout(store, view, rows)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_open_and_read, args=(str(path),)) for _ in range(3)]
    for p in procs:
        p.start()
    with SqliteOnlineStore(path) as store:  # this one too, meanwhile
        _assert_reads_equal_reference(store, view, rows)
        for p in procs:
            p.join(timeout=120)
            assert p.exitcode == 0
        _assert_no_dead_rows(store, view)


@pytest.fixture
def redis_namespace(redis_url: str) -> Iterator[str]:
    from tests.contract.test_online_redis import _delete_namespace

    ns = f"test-old-heads-{uuid.uuid4().hex}"
    yield ns
    _delete_namespace(redis_url, ns)


@pytest.mark.integration
def test_redis_store_of_the_old_layout_loses_its_dead_head_rows(
    redis_url: str, redis_namespace: str
) -> None:
    import redis

    from featureline.online.redis import RedisOnlineStore

    _upgrade_then_refresh(lambda: RedisOnlineStore(redis_url, redis_namespace))
    client = redis.Redis.from_url(redis_url)
    try:
        fields = client.hkeys(f"{redis_namespace}:{tiles_table(_view(1))}")
        assert sorted(fields) == sorted(ENC(k) for k in KEYS)
    finally:
        client.close()


@pytest.mark.integration
def test_redis_stores_opening_the_old_namespace_at_once(
    redis_url: str, redis_namespace: str
) -> None:
    from featureline.online.redis import RedisOnlineStore

    view, rows = _view(1), _rows()
    with RedisOnlineStore(redis_url, redis_namespace) as store:
        _make_old_layout(store, view, rows)
    start, errors = threading.Barrier(4), []

    def open_and_read() -> None:
        try:
            with RedisOnlineStore(redis_url, redis_namespace) as s:
                start.wait()
                _assert_reads_equal_reference(s, view, rows)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=open_and_read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    with RedisOnlineStore(redis_url, redis_namespace) as store:
        _assert_no_dead_rows(store, view)
