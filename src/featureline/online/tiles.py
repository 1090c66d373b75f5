"""Online tiles of aggregation features: per key, partial aggregates merged at read time.

Value of a key (one per view version, in the table `<table>_a<hash>`): ORDER (32 bytes: the
offline snapshot the tiles were computed from, then the time they were computed), then
`u32 n, u32 m`, the `n` tile starts and the `m` event times dated ahead (int64 each), and per
aggregation `n + m + 1` u32 offsets into the blobs that follow. Tiles are, in order: a prefix
(start = WHOLE_HISTORY: events older than every finite window, kept for lifetime aggregations)
and one per tile of arrived events; the blob of tile `i` is the partial over tiles `i..n-1` (a
suffix), so a read decodes one partial per aggregation whatever the window, plus one per event
dated ahead that has come due (each counts exactly from its event time on).

Tiles are recomputed from the offline store for the keys a write touched (and for every key by
`materialize`): the kernel is exact and order-independent, so recomputing is idempotent, a
replay or a retry never counts an event twice, and a greater ORDER (a newer snapshot) always
holds every event an older one held. This needs no merge capability from the online store:
the existing greatest-order write is the compare-and-swap (see the note in issue 10).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import struct
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from featureline.aggregation.kernel import kernel
from featureline.aggregation.offline import EventSource, column_type, group_bounds
from featureline.aggregation.windows import (
    WHOLE_HISTORY,
    has_lifetime,
    horizon,
    tile_start,
    window_start,
)
from featureline.definitions import Aggregation, FeatureView
from featureline.online._codec import encode_keys, table_name
from featureline.online._store import ORDER_BYTES, OnlineStore

_FLIP = 1 << 63
_U64 = (1 << 64) - 1


def tiles_table(view: FeatureView) -> str:
    """The online table of a view version's tiles; a changed aggregation starts a new table."""
    spec = json.dumps(
        [view.tile_us, [a.to_dict() for a in view.aggregations]], sort_keys=True
    ).encode()
    return f"{table_name(view)}_a{hashlib.sha256(spec).hexdigest()[:8]}"


def _order(snapshot_us: int, now_us: int) -> bytes:
    part = [((int(x) & _U64) ^ _FLIP).to_bytes(8, "big") for x in (snapshot_us, now_us)]
    return part[0] + part[1] + bytes(ORDER_BYTES - 16)


def _entries(ev: np.ndarray, now_us: int, cut: int, tile_us: int) -> list[tuple[int, int, int]]:
    """(start, i, j) per entry over one key's events `ev` (sorted): prefix, tiles, ahead."""
    out: list[tuple[int, int, int]] = []
    n = len(ev)
    arrived = int(np.searchsorted(ev, now_us, "right"))
    old = int(np.searchsorted(ev[:arrived], cut, "left"))
    if old:
        out.append((WHOLE_HISTORY, 0, old))
    if arrived > old:
        starts = tile_start(ev[old:arrived], tile_us)
        edges = np.flatnonzero(np.diff(starts)) + 1
        lo = 0
        for hi in [*edges.tolist(), len(starts)]:
            out.append((int(starts[lo]), old + lo, old + hi))
            lo = hi
    out += [(int(ev[i]), i, i + 1) for i in range(arrived, n)]
    return out


def refresh(
    source: EventSource,
    online: OnlineStore,
    view: FeatureView,
    key_types: dict[str, str],
    keys: pa.Table | None = None,
    now_us: int | None = None,
) -> int:
    """Recompute the tiles of `keys` (a table of join keys; None: every key with events) from
    the offline store and write them; returns the keys written."""
    if not view.aggregations:
        return 0
    now = time.time_ns() // 1000 if now_us is None else int(now_us)
    h = horizon(view, now)
    lifetime = has_lifetime(view.aggregations)
    cut = h if h is not None else int(tile_start(np.array([now]), view.tile_us)[0])
    events, snapshot = source.window_events(view, keys, None if lifetime else h)
    if snapshot is None:
        return 0
    jk = view.join_keys
    bounds = group_bounds(events, jk)
    heads = events.select(jk).take(pa.array(bounds[:-1])) if events.num_rows else None
    ev = events.column("__event_us").to_numpy() if events.num_rows else np.zeros(0, np.int64)
    kernels = [kernel(a.function, column_type(view, a), a.params) for a in view.aggregations]
    columns = [events.column(a.column).combine_chunks() for a in view.aggregations]
    orders = np.zeros((len(ev), 4), dtype=np.int64)
    orders[:, 0] = ev
    order = _order(snapshot, now)
    out_keys: list[bytes] = encode_keys(heads, jk, key_types) if heads is not None else []
    values: list[bytes] = []
    heads_out: list[bytes] = []
    for g in range(len(bounds) - 1):
        a0, b0 = int(bounds[g]), int(bounds[g + 1])
        entries = _entries(ev[a0:b0], now, cut, view.tile_us)
        tiles = [e for e in entries if not _is_ahead(e, ev[a0:b0], now)]
        ahead = [e for e in entries if _is_ahead(e, ev[a0:b0], now)]
        blobs: list[list[bytes]] = []
        for agg, k, col in zip(view.aggregations, kernels, columns, strict=True):
            row: list[bytes] = [b""] * len(tiles)
            acc = k.empty()
            for pos in range(len(tiles) - 1, -1, -1):  # suffixes, newest tile first
                start, i, j = tiles[pos]
                if start == WHOLE_HISTORY and agg.window_us is not None:
                    continue  # finite windows never reach the prefix
                acc = k.add(acc, col.slice(a0 + i, j - i), orders[a0 + i : a0 + j])
                row[pos] = k.encode(acc)
            row += [
                k.encode(k.add(k.empty(), col.slice(a0 + i, j - i), orders[a0 + i : a0 + j]))
                for _, i, j in ahead
            ]
            blobs.append(row)
        starts = [t[0] for t in tiles]
        values.append(order + _pack(starts, [e[0] for e in ahead], blobs))
        heads_out.append(order + _head(view, now, starts, [e[0] for e in ahead], blobs))
    if keys is not None:  # keys without events left: their tiles are empty now
        asked = encode_keys(keys, jk, key_types)
        have = set(out_keys)
        none: list[list[bytes]] = [[] for _ in view.aggregations]
        empty = order + _pack([], [], none)
        empty_head = order + _head(view, now, [], [], none)
        extra = [k for k in dict.fromkeys(asked) if k not in have]
        out_keys += extra
        values += [empty] * len(extra)
        heads_out += [empty_head] * len(extra)
    if out_keys:  # tails and heads in one write: one snapshot, atomically
        online.write(tiles_table(view), out_keys + [k + HEAD for k in out_keys], values + heads_out)
    return len(out_keys)


HEAD = b"\xffhead"
"""Suffix of a key's head row (encoded keys end in 0x01, so it never collides)."""
HEAD_SPAN_US = 3_600_000_000
"""A head holds the suffixes reads need for this long after the tiles were computed."""


def _head(
    view: FeatureView, now_us: int, starts: list[int], ahead: list[int], blobs: list[list[bytes]]
) -> bytes:
    """The small row reads use: per aggregation, the suffixes of the tiles a window starting
    within HEAD_SPAN_US of now can begin at (and the next tile), plus the events dated ahead;
    first, per aggregation, the window starts it serves (from, until): others need the tail."""
    n = len(starts)
    spans = []
    for a in view.aggregations:
        if a.window_us is None:
            spans.append((0, min(n, 1), -(2**63), 2**63 - 1))  # lifetime: the first suffix
            continue
        lo = window_start(now_us, a.window_us, view.tile_us)
        until = lo + HEAD_SPAN_US
        first = int(np.searchsorted(starts, lo, "left"))
        last = min(n, int(np.searchsorted(starts, until, "right")) + 1)
        spans.append((first, last, lo, until))
    bounds = np.array([b for _, _, lo, until in spans for b in (lo, until)], dtype="<i8")
    parts = [bounds.tobytes(), np.array([len(ahead)], "<u4").tobytes()]
    parts.append(np.array(ahead, dtype="<i8").tobytes())
    for (first, last, _, _), row in zip(spans, blobs, strict=True):  # each its own tiles
        kept = row[first:last] + row[n:]  # then the events dated ahead
        parts.append(np.array([last - first], "<u4").tobytes())
        parts.append(np.array(starts[first:last], dtype="<i8").tobytes())
        offs = np.zeros(len(kept) + 1, dtype="<u4")
        if kept:
            offs[1:] = np.cumsum([len(x) for x in kept])
        parts.append(offs.tobytes())
        parts.extend(kept)
    return b"".join(parts)


def _is_ahead(entry: tuple[int, int, int], ev: np.ndarray, now_us: int) -> bool:
    start, i, _ = entry
    return start != WHOLE_HISTORY and int(ev[i]) > now_us


def _pack(starts: list[int], ahead: list[int], blobs: list[list[bytes]]) -> bytes:
    head = np.array([len(starts), len(ahead)], dtype="<u4").tobytes()
    times = np.array(starts + ahead, dtype="<i8").tobytes()
    parts = [head, times]
    for row in blobs:
        offs = np.zeros(len(row) + 1, dtype="<u4")
        if row:
            offs[1:] = np.cumsum([len(b) for b in row])
        parts.append(offs.tobytes())
        parts.extend(row)
    return b"".join(parts)


def tile_dtype(view: FeatureView, agg: Aggregation | None) -> Any:
    """The declared type (a featureline DType) of an aggregation feature's values."""
    from featureline.aggregation.kernel import output_type
    from featureline.types import parse_dtype

    assert agg is not None
    return parse_dtype(output_type(agg.function, column_type(view, agg)))


class TileReader:
    """Reads aggregation features of one view version (prepared once per feature list)."""

    def __init__(self, view: FeatureView, names: Sequence[str]) -> None:
        self.view = view
        self.table = tiles_table(view)
        index = {a.name: i for i, a in enumerate(view.aggregations)}
        self.items: list[tuple[int, Aggregation, Any]] = []
        for n in names:
            a = view.aggregations[index[n]]
            self.items.append((index[n], a, kernel(a.function, column_type(view, a), a.params)))

    def read(
        self, online: OnlineStore, enc_keys: list[bytes], now_us: int
    ) -> tuple[list[list[Any]], list[bool]]:
        """Per requested aggregation, the value of every key; and whether each key was found.

        Reads each key's head row; only a key whose tiles were computed longer ago than a head
        covers (or written before heads existed) is read again, from its tail row."""
        tile = self.view.tile_us
        starts_of = [window_start(now_us, a.window_us, tile) for _, a, _ in self.items]
        n_aggs = len(self.view.aggregations)
        heads = online.read(self.table, [k + HEAD for k in enc_keys], now_us)
        out: list[list[Any]] = [[] for _ in self.items]
        found: list[bool] = []
        again: list[int] = []
        for r, raw in enumerate(heads):
            got = None if raw is None else self._values(raw, now_us, starts_of, n_aggs, True)
            if got is None:
                again.append(r)
                got = [None] * len(self.items)
            found.append(raw is not None)
            for col, v in zip(out, got, strict=True):
                col.append(v)
        if again:
            tails = online.read(self.table, [enc_keys[r] for r in again], now_us)
            empty = [k.finalize(k.empty()) for _, _, k in self.items]
            for r, raw in zip(again, tails, strict=True):
                got = empty if raw is None else self._values(raw, now_us, starts_of, n_aggs, False)
                found[r] = raw is not None
                for col, v in zip(out, got or empty, strict=True):
                    col[r] = v
        return out, found

    def _values(
        self, raw: bytes, now_us: int, starts_of: list[int], n_aggs: int, head: bool
    ) -> list[Any] | None:
        """The requested aggregations from one row; None when a head does not reach a window."""
        body = memoryview(raw)[ORDER_BYTES:]
        if head:
            return self._from_head(body, now_us, starts_of, n_aggs)
        n, m = _U32X2.unpack_from(body)
        times = np.frombuffer(body, "<i8", n + m, 8).tolist()
        pos = 8 + 8 * (n + m)
        sections: list[_Section] = []  # per aggregation: (tile starts, offsets at, blobs at)
        for _ in range(n_aggs):
            base = pos + 4 * (n + m + 1)
            sections.append((times[:n], pos, base))
            pos = base + _U32.unpack_from(body, base - 4)[0]
        return self._merge(body, now_us, starts_of, sections, times[n:])

    def _from_head(
        self, body: memoryview, now_us: int, starts_of: list[int], n_aggs: int
    ) -> list[Any] | None:
        # struct and bisect, not NumPy: a read decodes ~20 small fields, and a NumPy call costs
        # more than the work on each (this is the in-process read's hot path)
        b = struct.unpack_from(f"<{2 * n_aggs}q", body)
        for (idx, _, _), lo in zip(self.items, starts_of, strict=True):
            if not b[2 * idx] <= lo <= b[2 * idx + 1]:
                return None  # a window this head does not serve: read the tail
        pos = 16 * n_aggs
        (m,) = _U32.unpack_from(body, pos)
        ahead = list(struct.unpack_from(f"<{m}q", body, pos + 4)) if m else []
        pos += 4 + 8 * m
        sections: list[_Section] = []
        for _ in range(n_aggs):
            (n,) = _U32.unpack_from(body, pos)
            starts = struct.unpack_from(f"<{n}q", body, pos + 4)
            offs_at = pos + 4 + 8 * n
            base = offs_at + 4 * (n + m + 1)
            sections.append((starts, offs_at, base))
            pos = base + _U32.unpack_from(body, base - 4)[0]
        return self._merge(body, now_us, starts_of, sections, ahead)

    def _merge(
        self,
        body: memoryview,
        now_us: int,
        starts_of: list[int],
        sections: list[_Section],
        ahead: list[int],
    ) -> list[Any]:
        out = []
        for (idx, _, k), lo in zip(self.items, starts_of, strict=True):
            starts, offs_at, base = sections[idx]
            n = len(starts)
            p = k.empty()
            first = bisect.bisect_left(starts, lo)
            if first < n:
                a, z = _U32X2.unpack_from(body, offs_at + 4 * first)
                if z > a:
                    p = k.decode(bytes(body[base + a : base + z]))
            for j, t in enumerate(ahead):
                if lo <= t <= now_us:
                    a, z = _U32X2.unpack_from(body, offs_at + 4 * (n + j))
                    p = k.merge(p, k.decode(bytes(body[base + a : base + z])))
            out.append(k.finalize(p))
        return out


_Section = tuple[Sequence[int], int, int]  # tile starts, where the offsets are, where blobs are
_U32 = struct.Struct("<I")
_U32X2 = struct.Struct("<II")


__all__ = ["HEAD", "HEAD_SPAN_US", "TileReader", "refresh", "tile_dtype", "tiles_table"]
