"""Online tiles of aggregation features: per key, partial aggregates merged at read time.

Value of a key (one per view version, in the table `<table>_a<hash>`): ORDER (32 bytes: the
offline snapshot the tiles were computed from, then the time they were computed), then
`u32 n, u32 m`, the `n` tile starts and the `m` event times dated ahead (int64 each), and per
aggregation `n + m + 1` u32 offsets into the blobs that follow. Tiles are, in order: a prefix
(start = WHOLE_HISTORY: events older than every finite window, kept for lifetime aggregations)
and one per tile of arrived events; the blob of tile `i` is the partial over tiles `i..n-1` (a
suffix), so a read decodes one partial per aggregation whatever the window, plus one per event
dated ahead that has come due (each counts exactly from its event time on).

Reads use a key's small head row (`heads_table`, its own table; layout in `_head`): per
aggregation, the value of each suffix a window starting within HEAD_SPAN_US of the refresh can
begin at, already finalized (one scalar decoded per aggregation), or partials when events are
dated ahead. Only a read past a head's span (a key not refreshed for that long) takes the tail.

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
import re
import struct
import sys
import time
from collections.abc import Sequence
from itertools import accumulate
from typing import Any

import numpy as np
import pyarrow as pa

from featureline.aggregation import bulk as bulk_kernel
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
from featureline.errors import ValidationError
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


_MUTATING = frozenset({"approx_count_distinct", "approx_percentile"})
"""Kernels whose partials `add` updates in place (a suffix's partial cannot be kept)."""


def _values(col: pa.ChunkedArray, ctype: str) -> Any:
    """An aggregation's column as `add` takes it, sliced per tile: a NumPy array when the
    kernel reads the same numbers from it (Int64/Float64 without nulls: slicing NumPy costs far
    less than slicing Arrow and converting each slice), else one Arrow array."""
    arr = col.combine_chunks()
    if arr.null_count == 0 and (
        (ctype == "Float64" and pa.types.is_float64(arr.type))
        or (ctype == "Int64" and pa.types.is_int64(arr.type))
    ):
        return arr.to_numpy(zero_copy_only=False)
    return arr


def _valid_per_entry(col: pa.ChunkedArray, lo: list[int]) -> list[int]:
    """The non-null values of each entry (entry `e` holds the events lo[e]..lo[e + 1] - 1):
    what `kernel("count", ...).add` adds for it."""
    if not lo:
        return []
    valid = np.ones(len(col), dtype=np.int64)
    if col.null_count:
        valid = np.asarray(col.is_valid().to_numpy(zero_copy_only=False), dtype=np.int64)
    return [int(x) for x in np.add.reduceat(valid, np.asarray(lo, dtype=np.int64))]


def _memo(cache: dict[int, bytes], k: Any, p: int) -> bytes:
    """`k.encode(p)` of a count partial, encoded once per refresh per value."""
    got = cache.get(p)
    if got is None:
        got = cache[p] = k.encode(p)
    return got


def _segments(
    ev: np.ndarray, bounds: np.ndarray, now_us: int, cut: int, tile_us: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The entries of every key at once (events `ev` sorted by key, then time; key `g` holds
    ev[bounds[g]:bounds[g+1]]): per entry its first and end event and start (WHOLE_HISTORY for
    the prefix: arrived events older than `cut`; the tile start for arrived events; the event
    time for each event dated ahead, one entry each); per key its first entry (and one past
    the last key's), and where its entries dated ahead begin."""
    n = len(ev)
    n_keys = len(bounds) - 1
    if n == 0:
        none = np.zeros(0, dtype=np.int64)
        return none, none, none, np.zeros(n_keys + 1, np.int64), np.zeros(n_keys, np.int64)
    g = np.repeat(np.arange(n_keys), np.diff(bounds))
    ahead = ev > now_us
    old = (ev < cut) & ~ahead
    label = np.where(old, WHOLE_HISTORY, np.where(ahead, ev, tile_start(ev, tile_us)))
    brk = np.ones(n, dtype=bool)
    brk[1:] = (g[1:] != g[:-1]) | (label[1:] != label[:-1]) | ahead[1:]
    lo = np.flatnonzero(brk)
    hi = np.append(lo[1:], n)
    seg_g = g[lo]
    first = np.searchsorted(seg_g, np.arange(n_keys + 1), "left")
    tiled = np.bincount(seg_g[~ahead[lo]], minlength=n_keys)
    return lo, hi, label[lo], first, first[:-1] + tiled


BULK = True
"""Compute the tile suffixes of the kernels `bulk` supports for every key at once (False:
per key, the reference path tests/unit/test_tiles_bulk.py compares with)."""


class _BulkRows:
    """One aggregation's tile suffixes of every key of a refresh, computed at once by `bulk`:
    `key` gives a key's row of blobs and `_put_final` bytes, or None (per key then)."""

    def __init__(self, k: Any, col: np.ndarray, fin: bool, seg: tuple[np.ndarray, ...]) -> None:
        lo, hi, start, key_first, key_tiles = seg
        s0 = key_first[:-1]
        skip = np.zeros(len(s0), dtype=bool)
        if fin and len(lo):  # a finite window never reaches the prefix (always a key's first)
            has = key_tiles > s0
            skip[has] = start[s0[has]] == WHOLE_HISTORY
        first = s0 + skip
        sizes = np.maximum(key_tiles - first, 0)
        has_run = sizes > 0
        self.first = first.tolist()
        self.off = (np.cumsum(sizes) - sizes).tolist()
        self.run = np.where(has_run, np.cumsum(has_run) - 1, -1).tolist()
        pos = np.repeat(first - (np.cumsum(sizes) - sizes), sizes) + np.arange(int(sizes.sum()))
        run_lo = lo[first[has_run]] if len(lo) else lo
        run_hi = hi[key_tiles[has_run] - 1] if len(lo) else hi
        run_of = np.repeat(np.arange(int(has_run.sum())), sizes[has_run])
        self.ok, self.blobs, values = bulk_kernel.float_suffixes(
            k, col, run_lo, run_hi, lo[pos] if len(lo) else lo, run_of
        )
        self.finals = [
            _F_FLOAT + _F64.pack(v) if type(v) is float else _put_final(v) for v in values
        ]

    def key(self, g: int, s0: int, st: int, none: bytes) -> tuple[list[bytes], list[bytes]] | None:
        r = self.run[g]
        if r >= 0 and not self.ok[r]:
            return None
        first, off = self.first[g], self.off[g]
        lead = first - s0
        cnt = st - first
        if cnt <= 0:
            return [b""] * (st - s0), [none] * (st - s0)
        row = [b""] * lead + self.blobs[off : off + cnt]
        return row, [none] * lead + self.finals[off : off + cnt]


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
    columns = [_values(events.column(a.column), column_type(view, a)) for a in view.aggregations]
    keep = [a.function not in _MUTATING for a in view.aggregations]  # partials a head can keep
    orders = np.zeros((len(ev), 4), dtype=np.int64)
    orders[:, 0] = ev
    order = _order(snapshot, now)
    out_keys: list[bytes] = encode_keys(heads, jk, key_types) if heads is not None else []
    values: list[bytes] = []
    heads_out: list[bytes] = []
    seg = _segments(ev, bounds, now, cut, view.tile_us)
    lo_l, hi_l, start_l, key_first, key_tiles = (a.tolist() for a in seg)
    finite = [a.window_us is not None for a in view.aggregations]
    served = _served(view, now)
    counts = [
        _valid_per_entry(events.column(a.column), lo_l) if a.function == "count" else None
        for a in view.aggregations
    ]
    bulk = [
        _BulkRows(k, col, fin, seg) if BULK and bulk_kernel.supports(k, col) else None
        for k, col, fin in zip(kernels, columns, finite, strict=True)
    ]
    no_value = [
        b"" if b is None else _put_final(k.finalize(k.empty()))
        for k, b in zip(kernels, bulk, strict=True)
    ]
    enc_counts: list[dict[int, bytes]] = [{} for _ in view.aggregations]  # a tag per column type
    final_counts: dict[int, bytes] = {}  # `_put_final` of a count, once per refresh per value
    for g in range(len(bounds) - 1):
        s0, s1, st = key_first[g], key_first[g + 1], key_tiles[g]  # tiles s0..st, ahead st..s1
        blobs: list[list[bytes]] = []
        partials: list[list[Any] | None] = []
        finals: list[list[bytes] | None] = []
        for fin, k, col, kp, cnt, enc_count, bk, no_val in zip(
            finite, kernels, columns, keep, counts, enc_counts, bulk, no_value, strict=True
        ):
            got = None if bk is None else bk.key(g, s0, st, no_val)
            if got is not None:  # computed for every key at once: the events dated ahead here
                row, fins = got
                row += [
                    k.encode(k.add(k.empty(), col[lo_l[p] : hi_l[p]], orders[lo_l[p] : hi_l[p]]))
                    for p in range(st, s1)
                ]
                blobs.append(row)
                partials.append(None)
                finals.append(fins)
                continue
            finals.append(None)
            row = [b""] * (st - s0)
            kept: list[Any] = [None] * (st - s0)
            if cnt is not None:  # count: the non-null values of each entry, counted at once
                c = 0
                fins = [_FINAL_ZERO] * (st - s0)
                for pos in range(st - 1, s0 - 1, -1):
                    if fin and start_l[pos] == WHOLE_HISTORY:
                        continue
                    c += cnt[pos]
                    row[pos - s0] = _memo(enc_count, k, c)
                    got_f = final_counts.get(c)
                    if got_f is None:
                        got_f = final_counts[c] = _put_final(c)
                    fins[pos - s0] = got_f
                row += [_memo(enc_count, k, cnt[p]) for p in range(st, s1)]
                blobs.append(row)
                partials.append(None)
                finals[-1] = fins  # a count's value is its partial
                continue
            acc = k.empty()
            for pos in range(st - 1, s0 - 1, -1):  # suffixes, newest tile first
                if fin and start_l[pos] == WHOLE_HISTORY:
                    continue  # finite windows never reach the prefix
                i, j = lo_l[pos], hi_l[pos]
                acc = k.add(acc, col[i:j], orders[i:j])
                row[pos - s0] = k.encode(acc)
                kept[pos - s0] = acc
            row += [
                k.encode(k.add(k.empty(), col[lo_l[p] : hi_l[p]], orders[lo_l[p] : hi_l[p]]))
                for p in range(st, s1)
            ]
            blobs.append(row)
            partials.append(kept if kp else None)
        starts = start_l[s0:st]
        ahead = start_l[st:s1]
        values.append(order + _pack(starts, ahead, blobs))
        heads_out.append(
            order + _head(view, kernels, now, starts, ahead, blobs, partials, served, finals)
        )
    if keys is not None:  # keys without events left: their tiles are empty now
        asked = encode_keys(keys, jk, key_types)
        have = set(out_keys)
        none: list[list[bytes]] = [[] for _ in view.aggregations]
        empty = order + _pack([], [], none)
        empty_head = order + _head(view, kernels, now, [], [], none)
        extra = [k for k in dict.fromkeys(asked) if k not in have]
        out_keys += extra
        values += [empty] * len(extra)
        heads_out += [empty_head] * len(extra)
    if out_keys:  # tails and heads in one write: one snapshot, atomically
        write_tables = getattr(online, "write_tables", None)
        parts = [(tiles_table(view), out_keys, values), (heads_table(view), out_keys, heads_out)]
        if write_tables is not None:
            write_tables(parts)
        else:  # a store without multi-table writes: tails first, so a head is never newer
            for table, ks, vs in parts:
                online.write(table, ks, vs)
    return len(out_keys)


def heads_table(view: FeatureView) -> str:
    """The online table of a view version's head rows (apart from the tails: SQLite looks a
    key up ~4x faster in a table of small rows than among the ~100 KB tails)."""
    return tiles_table(view) + "_h"


HEAD = b"\xffhead"
"""Suffix of a key's head row in the tiles table, as written by Featureline before head rows
had their own table. Such rows are never read: each online store deletes them once, when it
opens on tiles tables written before (the rows of a tiles table whose key ends in OLD_HEAD_END)."""
OLD_HEAD_END = b"\x01" + HEAD
"""How the key of such a row ends (an encoded key ends in 0x01, so no key of a tail does)."""
_TILES_NAME = re.compile(r".+__v[0-9]+__[0-9a-f]{8}_a[0-9a-f]{8}", re.ASCII)
HEAD_SPAN_US = 3_600_000_000
"""A head holds the suffixes reads need for this long after the tiles were computed."""


def is_tiles_table(table: str) -> bool:
    """Whether `table` is named as `tiles_table` names one (not a view's table, not heads)."""
    return _TILES_NAME.fullmatch(table) is not None


def _served(view: FeatureView, now_us: int) -> list[tuple[int, int] | None]:
    """Per aggregation, the window starts a head serves (None: a lifetime aggregation)."""
    out: list[tuple[int, int] | None] = []
    for a in view.aggregations:
        w = a.window_us
        lo = None if w is None else window_start(now_us, w, view.tile_us)
        out.append(None if lo is None else (lo, lo + HEAD_SPAN_US))
    return out


def _head(
    view: FeatureView,
    kernels: Sequence[Any],
    now_us: int,
    starts: list[int],
    ahead: list[int],
    blobs: list[list[bytes]],
    partials: Sequence[list[Any] | None] | None = None,
    served_by: list[tuple[int, int] | None] | None = None,
    finals: Sequence[list[bytes] | None] | None = None,
) -> bytes:
    """The small row reads use: per aggregation, the suffixes of the tiles a window starting
    within HEAD_SPAN_US of now can begin at (and the next tile), plus the events dated ahead.
    `partials` (per aggregation, None or the partial of each tile's suffix, None for an empty
    blob) spares decoding the blobs just encoded (`decode(encode(p))` finalizes as `p` does);
    `served_by` is `_served(view, now_us)`, the same for every key; `finals` (per aggregation,
    None or `_put_final` of each tile suffix's finalized value) spares finalizing them here.

    Layout: per aggregation the window starts it serves (from, until: others need the tail),
    `u32 m` and the `m` event times dated ahead, per aggregation the offset of its section;
    then the sections: `u8 kind, u32 n`, the `n` tile starts, `n + m' + 1` u32 offsets and the
    blobs. Kind FINAL (only when no event is dated ahead, m' = 0): each blob is the *finalized*
    value of the suffix (`_put_final`), so a read decodes one scalar; kind PARTIAL (m' = m):
    kernel partials of the suffixes, then of each event dated ahead, merged at read time."""
    n = len(starts)
    spans = []
    for served in _served(view, now_us) if served_by is None else served_by:
        if served is None:
            spans.append((0, min(n, 1), -(2**63), 2**63 - 1))  # lifetime: the first suffix
            continue
        lo, until = served
        first = bisect.bisect_left(starts, lo)  # starts: sorted, a list (no NumPy per key)
        last = min(n, bisect.bisect_right(starts, until) + 1)
        spans.append((first, last, lo, until))
    bounds = struct.pack(
        f"<{2 * len(spans)}q", *(b for _, _, lo, until in spans for b in (lo, until))
    )
    parts = [bounds, struct.pack(f"<I{len(ahead)}q", len(ahead), *ahead)]
    sections: list[bytes] = []
    parts_of = partials if partials is not None else [None] * len(blobs)
    finals_of = finals if finals is not None else [None] * len(blobs)
    for (first, last, _, _), row, k, ps, fs in zip(
        spans, blobs, kernels, parts_of, finals_of, strict=True
    ):
        if not ahead and fs is not None:
            kind, kept = _FINAL, fs[first:last]
        else:
            kind, kept = _PARTIAL, row[first:last] + row[n:]  # then the events dated ahead
        if not ahead and fs is None:
            try:
                if ps is None:
                    got = [k.decode(x) if x else k.empty() for x in kept]
                else:
                    got = [k.empty() if p is None else p for p in ps[first:last]]
                kept = [_put_final(k.finalize(p)) for p in got]
                kind = _FINAL
            except (ValueError, ValidationError):  # not a plain scalar, or finalize refuses
                pass  # (an Int64 sum out of range): the read finalizes, and raises, as before
        offs = [0, *accumulate(map(len, kept))]
        sections.append(
            struct.pack(
                f"<BI{last - first}q{len(offs)}I", kind, last - first, *starts[first:last], *offs
            )
            + b"".join(kept)
        )
    at = len(parts[0]) + len(parts[1]) + 4 * len(sections)
    table = []
    for sec in sections:
        table.append(at)
        at += len(sec)
    parts.append(struct.pack(f"<{len(table)}I", *table))
    return b"".join(parts + sections)


_PARTIAL, _FINAL = 0, 1
_F_INT, _F_FLOAT, _F_FALSE, _F_TRUE, _F_STR = b"\x01", b"\x02", b"\x03", b"\x04", b"\x05"
_I64 = struct.Struct("<q")
_F64 = struct.Struct("<d")
_FINAL_ZERO = _F_INT + _I64.pack(0)  # `_put_final` of a count of nothing


def _put_final(v: Any) -> bytes:
    """A finalized value as bytes (None: empty); ValueError for any other type (or an int
    beyond Int64): such an aggregation keeps partials in the head."""
    if v is None:
        return b""
    t = type(v)
    if t is bool:
        return _F_TRUE if v else _F_FALSE
    if t is int:
        try:
            return _F_INT + _I64.pack(v)
        except struct.error:
            raise ValueError("int beyond Int64") from None
    if t is float:
        return _F_FLOAT + _F64.pack(v)
    if t is str:
        return _F_STR + v.encode()
    raise ValueError(f"no final encoding for {t.__name__}")


def _get_final(body: memoryview, a: int, z: int) -> Any:
    """The inverse of `_put_final` for the blob at body[a:z]."""
    if z == a:
        return None
    tag = body[a]
    if tag == 1:
        return _I64.unpack_from(body, a + 1)[0]
    if tag == 2:
        return _F64.unpack_from(body, a + 1)[0]
    if tag == 3 or tag == 4:
        return tag == 4
    if tag == 5:
        return str(body[a + 1 : z], "utf-8")
    raise ValidationError(
        f"A head row holds a finalized value of unknown kind {tag}. Fix: materialize again."
    )


def _pack(starts: list[int], ahead: list[int], blobs: list[list[bytes]]) -> bytes:
    parts = [
        struct.pack(f"<II{len(starts) + len(ahead)}q", len(starts), len(ahead), *starts, *ahead)
    ]
    for row in blobs:
        offs = [0, *accumulate(map(len, row))]
        parts.append(struct.pack(f"<{len(offs)}I", *offs))
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
        self.heads = heads_table(view)
        self.tile = view.tile_us
        self.n_aggs = len(view.aggregations)
        self.idx = [i for i, _, _ in self.items]
        self.windows = [a.window_us for _, a, _ in self.items]
        self.empties = [k.finalize(k.empty()) for _, _, k in self.items]
        self._bounds = struct.Struct(f"<{2 * self.n_aggs}q")
        self._table = struct.Struct(f"<{self.n_aggs}I")

    def read(
        self, online: OnlineStore, enc_keys: list[bytes], now_us: int
    ) -> tuple[list[list[Any]], list[bool]]:
        """Per requested aggregation, the value of every key; and whether each key was found.

        Reads each key's head row; only a key whose tiles were computed longer ago than a head
        covers (or written before heads had their own table) is read again, from its tail row."""
        tile = self.tile
        starts_of = [window_start(now_us, w, tile) for w in self.windows]
        n_aggs = self.n_aggs
        heads = online.read(self.heads, enc_keys, now_us)
        if len(heads) == 1:  # one key (the usual online read): no per-row lists
            raw = heads[0]
            got = None if raw is None else self._from_head(raw, now_us, starts_of, n_aggs)
            if got is not None:
                return [[v] for v in got], [True]
        out: list[list[Any]] = [[] for _ in self.items]
        found: list[bool] = []
        again: list[int] = []
        for r, raw in enumerate(heads):
            got = None if raw is None else self._from_head(raw, now_us, starts_of, n_aggs)
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
                got = empty if raw is None else self._values(raw, now_us, starts_of, n_aggs)
                found[r] = raw is not None
                for col, v in zip(out, got or empty, strict=True):
                    col[r] = v
        return out, found

    def _values(
        self, raw: bytes, now_us: int, starts_of: list[int], n_aggs: int
    ) -> list[Any] | None:
        """The requested aggregations from one tail row."""
        body = memoryview(raw)[ORDER_BYTES:]
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
        self, raw: bytes, now_us: int, starts_of: list[int], n_aggs: int
    ) -> list[Any] | None:
        """The requested aggregations from one head row; None when it does not reach a window.

        struct and bisect, not NumPy: a read decodes ~20 small fields, and a NumPy call costs
        more than the work on each (this is the in-process read's hot path)."""
        body = memoryview(raw)[ORDER_BYTES:]
        b = self._bounds.unpack_from(body)
        for idx, lo in zip(self.idx, starts_of, strict=True):
            if not b[2 * idx] <= lo <= b[2 * idx + 1]:
                return None  # a window this head does not serve: read the tail
        pos = 16 * n_aggs
        (m,) = _U32.unpack_from(body, pos)
        pos += 4 + 8 * m
        table = self._table.unpack_from(body, pos)
        out: list[Any] = []
        ahead: list[int] | None = None
        for (idx, _, k), lo, empty in zip(self.items, starts_of, self.empties, strict=True):
            at = table[idx]
            kind, n = _KIND_N.unpack_from(body, at)
            starts: Sequence[int] = (
                body[at + 5 : at + 5 + 8 * n].cast("q")  # bisect reads ~6 of the n starts
                if _LITTLE
                else struct.unpack_from(f"<{n}q", body, at + 5)
            )
            offs_at = at + 5 + 8 * n
            first = bisect.bisect_left(starts, lo)
            if kind == _FINAL:
                if first >= n:
                    out.append(empty)
                    continue
                base = offs_at + 4 * (n + 1)
                a, z = _U32X2.unpack_from(body, offs_at + 4 * first)
                out.append(_get_final(body, base + a, base + z))
                continue
            if ahead is None:
                ahead = list(struct.unpack_from(f"<{m}q", body, 16 * n_aggs + 4)) if m else []
            base = offs_at + 4 * (n + m + 1)
            out.append(self._merge_one(k, body, now_us, lo, starts, offs_at, base, ahead))
        return out

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
            out.append(self._merge_one(k, body, now_us, lo, starts, offs_at, base, ahead))
        return out

    @staticmethod
    def _merge_one(
        k: Any,
        body: memoryview,
        now_us: int,
        lo: int,
        starts: Sequence[int],
        offs_at: int,
        base: int,
        ahead: list[int],
    ) -> Any:
        """One aggregation from partials: the suffix from window start `lo`, and each event
        dated ahead that has come due inside the window."""
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
        return k.finalize(p)


_Section = tuple[Sequence[int], int, int]  # tile starts, where the offsets are, where blobs are
_U32 = struct.Struct("<I")
_U32X2 = struct.Struct("<II")
_KIND_N = struct.Struct("<BI")
_LITTLE = sys.byteorder == "little"  # a native int64 view of the (little-endian) starts


__all__ = [
    "HEAD",
    "HEAD_SPAN_US",
    "OLD_HEAD_END",
    "TileReader",
    "heads_table",
    "is_tiles_table",
    "refresh",
    "tile_dtype",
    "tiles_table",
]
