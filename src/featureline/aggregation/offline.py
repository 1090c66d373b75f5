"""Aggregation features in training sets: for each entity row (keys, t), the function over the
view's events in the window ending at `t`, visible as of `as_of` (DESIGN §3).

Events come from the offline engine (one per key and event time, by the tie rule; only the
aggregated columns), sorted by key and time; each entity row's window is a slice found with
one vectorised binary search (the entity rows in (key, time) order). Each aggregation then
works on the events some window covers. count, min, max and last are vectorised; sum, mean
and stddev come from the column as exact int64 fixed-point values (prefix sums, rounded once,
as the kernel rounds; stddev from exact deviations in extended precision where the rounding is
proven), and every window those cannot prove goes through the kernel's own finalize or its
add over the slice -- the same kernel the online tiles use, so both give the same number
(tests/unit/test_aggregation_offline_fast.py compares every path with it).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal, NamedTuple, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featureline.aggregation.kernel import FloatMoments, IntMoments, kernel, output_type
from featureline.aggregation.windows import WHOLE_HISTORY, window_starts
from featureline.definitions import Aggregation, FeatureView
from featureline.types import parse_dtype

KEY_FILTER_MAX = 20_000
"""Up to this many distinct entity keys, only their events are read."""


class EventSource(Protocol):
    """What the aggregation needs from the offline store (`OfflineStore.window_events`)."""

    def window_events(
        self,
        view: FeatureView,
        keys: pa.Table | None = None,
        start_us: int | None = None,
        as_of_us: int | None = None,
    ) -> tuple[pa.Table, int | None]: ...


def column_type(view: FeatureView, agg: Aggregation) -> str:
    f = view.feature(agg.column)
    return str(f.dtype) if f is not None else "Float64"


def arrow_type(view: FeatureView, agg: Aggregation) -> pa.DataType:
    return parse_dtype(output_type(agg.function, column_type(view, agg))).to_arrow()


def group_bounds(events: pa.Table, keys: list[str]) -> np.ndarray:
    """Start index of each run of equal keys in `events` (sorted by keys), plus len(events)."""
    n = events.num_rows
    if n == 0:
        return np.zeros(1, dtype=np.int64)
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for k in keys:
        col = events.column(k).combine_chunks()
        if n > 1:
            diff = pc.not_equal(col.slice(1), col.slice(0, n - 1))
            change[1:] |= np.asarray(pc.fill_null(diff, True).to_numpy(zero_copy_only=False))
    return np.append(np.flatnonzero(change), n).astype(np.int64)


class Windows:
    """Each entity row's key group in `events` (sorted by keys, then event time), prepared once;
    `slice(t, start)` then finds every row's event slice [i, j) with `start <= event <= t` in
    one vectorised binary search."""

    def __init__(self, events: pa.Table, keys: list[str], ent: pa.Table) -> None:
        bounds = group_bounds(events, keys)
        self.ngroups = ngroups = len(bounds) - 1
        n = ent.num_rows
        self.g = np.full(n, -1, dtype=np.int64)
        if ngroups == 0:
            return
        heads = events.select(keys).take(pa.array(bounds[:-1]))
        heads = heads.append_column("__g", pa.array(np.arange(ngroups, dtype=np.int64)))
        rows = ent.select(keys).append_column("__pos", pa.array(np.arange(n, dtype=np.int64)))
        joined = rows.join(heads, keys, join_type="left outer")
        pos = joined.column("__pos").to_numpy()
        self.g[pos] = pc.fill_null(joined.column("__g"), -1).to_numpy()
        ev = events.column("__event_us").to_numpy().astype(np.int64)
        group_of = np.repeat(np.arange(ngroups, dtype=np.int64), np.diff(bounds))
        # one sortable int64 per event: (group, time) packed when the time span allows it,
        # else (group, rank of the time)
        self.lo_t, hi_t = int(ev.min()), int(ev.max())
        span = hi_t - self.lo_t + 3  # room for times clipped to just outside the range
        if span * (ngroups + 1) < 2**62:
            self.times = None
            self.width = np.int64(span)
            self.combined = group_of * self.width + (ev - self.lo_t + 1)
        else:
            self.times = np.unique(ev)
            self.width = np.int64(len(self.times) + 1)
            self.combined = group_of * self.width + np.searchsorted(self.times, ev)

    def _code(self, t: np.ndarray, side: Literal["left", "right"]) -> np.ndarray:
        if self.times is None:
            return np.clip(t, self.lo_t - 1, self.lo_t + int(self.width) - 2) - self.lo_t + 1
        return np.searchsorted(self.times, t, side).astype(np.int64)

    def slice(self, t_us: np.ndarray, start_us: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.g)
        i = np.zeros(n, dtype=np.int64)
        j = np.zeros(n, dtype=np.int64)
        if self.ngroups == 0:
            return i, j
        # the searches go in (group, time) order: sorted needles walk `combined` forwards
        # (numpy narrows each search from the previous one), many times faster than random ones
        order = self._order(t_us)
        g = self.g[order]
        base = g * self.width
        t, s = t_us[order], start_us[order]
        if self.times is None:  # packed times: `<= t` is `< t + 1`
            lo = base + self._code(s, "left")
            hi = base + self._code(t, "left") + 1
        else:
            lo = base + self._code(s, "left")
            hi = base + self._code(t, "right")
        a = np.searchsorted(self.combined, lo, "left")
        b = np.searchsorted(self.combined, hi, "left")
        i[order] = a
        j[order] = np.maximum(a, b)
        return i, j

    def _order(self, t_us: np.ndarray) -> np.ndarray:
        """The rows that have a key group, by (group, time) (computed once per `t_us`)."""
        cached = getattr(self, "_cached_order", None)
        if cached is not None and cached[0] is t_us:
            return cached[1]
        rows = np.flatnonzero(self.g >= 0)
        order = rows[np.lexsort((t_us[rows], self.g[rows]))]
        self._cached_order = (t_us, order)
        return order


def slices(
    events: pa.Table, keys: list[str], ent: pa.Table, t_us: np.ndarray, start_us: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per entity row, the event slice [i, j) of its key with `start <= event <= t`."""
    return Windows(events, keys, ent).slice(t_us, start_us)


def _orders(event_us: np.ndarray) -> np.ndarray:
    """`last` orders: one event per key and event time, so the event time decides."""
    out = np.zeros((len(event_us), 4), dtype=np.int64)
    out[:, 0] = event_us
    return out


def evaluate(
    view: FeatureView, agg: Aggregation, events: pa.Table, i: np.ndarray, j: np.ndarray
) -> pa.Array:
    """The aggregation over events[i:j] for every (i, j)."""
    k = kernel(agg.function, column_type(view, agg), agg.params)
    values = events.column(agg.column).combine_chunks()
    typ = arrow_type(view, agg)
    if agg.function == "count":
        valid = np.concatenate([[0], np.cumsum(pc.is_valid(values).to_numpy(zero_copy_only=False))])
        return pa.array(valid[j] - valid[i], type=typ)
    if agg.function != "last":  # (last orders by the events' times: all of them)
        values, i, j = _covered(values, i, j)
    fast = _vectorised(agg.function, column_type(view, agg), values, i, j, typ)
    if fast is not None:
        return fast
    if agg.function in ("sum", "mean", "stddev"):
        moments = _moments(k, values, i, j, typ)
        if moments is not None:
            return moments
    orders = _orders(events.column("__event_us").to_numpy()) if agg.function == "last" else None
    empty = k.finalize(k.empty())
    # each distinct non-empty slice once (entity rows of one key and time share them)
    rows = np.flatnonzero(j > i)
    pairs = np.unique(np.stack([i[rows], j[rows]], axis=1), axis=0) if len(rows) else rows
    out: list[Any] = [empty] * len(i)
    if len(rows):
        found: dict[tuple[int, int], Any] = {}
        plain = (
            values.to_numpy()  # no nulls: numpy slices skip the kernel's Arrow conversion
            if values.null_count == 0 and column_type(view, agg) in ("Int64", "Float64")
            else None
        )
        for a, b in pairs.astype(np.int64).reshape(-1, 2).tolist():
            part = plain[a:b] if plain is not None else values.slice(a, b - a)
            p = k.add(k.empty(), part, None if orders is None else orders[a:b])
            found[(a, b)] = k.finalize(p)
        for r, a, b in zip(rows.tolist(), i[rows].tolist(), j[rows].tolist(), strict=True):
            out[r] = found[(a, b)]
    return pa.array(out, type=typ)


def _covered(
    values: pa.Array, i: np.ndarray, j: np.ndarray
) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Only the values some slice [i, j) covers, and the slices renumbered over them (each
    slice holds the same values in the same order): short windows touch few of the events."""
    n = len(values)
    some = j > i
    if not n or not some.any():
        return values, i, j
    edge = np.bincount(i[some], minlength=n + 1) - np.bincount(j[some], minlength=n + 1)
    cover = np.cumsum(edge[:n]) > 0
    del edge
    kept = int(np.count_nonzero(cover))
    if kept > 0.75 * n:
        return values, i, j
    before = _prefix(cover)  # covered values before each index
    return values.filter(pa.array(cover)), before[i], before[j]


def _vectorised(
    function: str, ctype: str, values: pa.Array, i: np.ndarray, j: np.ndarray, typ: pa.DataType
) -> pa.Array | None:
    """min / max / last over every slice at once (the same values the kernel gives); None
    where only the kernel's per-slice path applies (strings, timestamps, signed zeros)."""
    n = len(values)
    nonempty = j > i
    if function == "last":
        valid = np.asarray(pc.is_valid(values).to_numpy(zero_copy_only=False), dtype=bool)
        last_valid = np.maximum.accumulate(np.where(valid, np.arange(n), -1)) if n else valid
        idx = np.where(nonempty, last_valid[np.maximum(j - 1, 0)] if n else -1, -1)
        ok = nonempty & (idx >= i)
        picked = values.take(pa.array(np.where(ok, idx, 0))) if n else pa.nulls(len(i), typ)
        return pc.if_else(pa.array(ok), picked, pa.nulls(len(i), picked.type)).cast(typ)
    if function not in ("min", "max") or ctype not in ("Int64", "Float64"):
        return None
    is_max = function == "max"
    if ctype == "Float64":
        x = np.asarray(pc.fill_null(values, -math.inf if is_max else math.inf).to_numpy())
        if np.any((x == 0) & np.signbit(x)):
            return None  # -0.0 against +0.0: the kernel's rule, slice by slice
        pad = np.append(x, 0.0)
    else:
        lim = np.iinfo(np.int64)
        x = np.asarray(pc.fill_null(values, lim.min if is_max else lim.max).to_numpy())
        pad = np.append(x, 0)
    counts = np.concatenate([[0], np.cumsum(pc.is_valid(values).to_numpy(zero_copy_only=False))])
    has = (counts[j] - counts[i]) > 0
    if not len(i):
        return pa.array([], type=typ)
    # reduceat reduces pad[idx[k]:idx[k+1]] for every k: with the slices sorted by start, the
    # in-between segments (j of one slice to i of the next) add up to at most n elements
    order = np.argsort(i, kind="stable")
    idx = np.empty(2 * len(i), dtype=np.int64)
    idx[0::2], idx[1::2] = i[order], j[order]
    sorted_got = (np.maximum if is_max else np.minimum).reduceat(pad, np.minimum(idx, n))[0::2]
    got = np.empty_like(sorted_got)
    got[order] = sorted_got
    return pa.array(got, type=typ, mask=~has)


_LIMIT = 2**62  # bound on exact int64 window sums (prefix sums wrap; differences do not)
_WIDE = np.finfo(np.longdouble).nmant >= 63  # x87 extended (or quad) precision
_SPAN = 64  # stddev windows up to this many events are rounded vectorised
_REFS = 1 << 22  # event references per vectorised stddev chunk (bounded memory)


class _Fixed(NamedTuple):
    """A numeric column as exact integers: value = fixed * 2**scale (0 for nulls and
    non-finite floats), with prefix counts of the non-null and the special values."""

    fixed: np.ndarray  # int64
    scale: int
    bound: float  # max |fixed|
    valid: np.ndarray | None  # None: no nulls
    n: np.ndarray | None  # prefix counts of the non-null values; None: no nulls
    special: np.ndarray | None  # prefix counts (n+1, 4): -0.0, NaN, +inf, -inf; None: none

    def counts(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Non-null values (NaN and inf included) in each slice [i, j)."""
        return (j - i) if self.n is None else self.n[j] - self.n[i]


def _prefix(x: np.ndarray) -> np.ndarray:
    out = np.empty(len(x) + 1, dtype=np.int64)
    out[0] = 0
    np.cumsum(x, dtype=np.int64, out=out[1:])
    return out


def _fixed_point(values: pa.Array, ctype: str) -> _Fixed | None:
    """The column as int64 multiples of one power of two, when every value fits in 62 bits
    that way (else None: the kernel's exact Python integers)."""
    valid = None
    n = None
    if values.null_count:
        valid = np.asarray(pc.is_valid(values).to_numpy(zero_copy_only=False), dtype=bool)
        n = _prefix(valid)
    if ctype == "Int64":
        x = np.asarray(pc.fill_null(values, 0).to_numpy(), dtype=np.int64)
        if len(x) and (x.min() < -_LIMIT or x.max() >= _LIMIT):
            return None
        bound = float(max(-int(x.min()), int(x.max()))) if len(x) else 0.0
        return _Fixed(x, 0, bound, valid, n, None)
    x = np.asarray(pc.fill_null(values, 0.0).to_numpy(), dtype=np.float64)
    finite = np.isfinite(x)
    special = None
    negz = (x == 0) & np.signbit(x)  # nulls were filled with +0.0
    if not finite.all() or negz.any():
        flags = np.stack([negz, np.isnan(x), x == math.inf, x == -math.inf], axis=1)
        special = np.concatenate([np.zeros((1, 4), np.int64), np.cumsum(flags, 0, np.int64)])
        del flags
        x = np.where(finite, x, 0.0)
    del negz, finite
    nz = x[x != 0]
    if not len(nz):
        return _Fixed(np.zeros(len(x), np.int64), 0, 0.0, valid, n, special)
    m, e = np.frexp(nz)
    del nz
    mant = (m * 2.0**53).astype(np.int64)  # x = mant * 2**(e - 53), |mant| < 2**53
    del m
    _, low = np.frexp((mant & -mant).astype(np.float64))  # 2**(low - 1): mant's lowest bit
    del mant
    scale = int((e + low).min()) - 54
    top = int(e.max())  # |x| < 2**top
    del e, low
    if scale < -990 or top > 960 or top - scale > 62:  # subnormal, huge, or too wide a range
        return None
    fixed = np.ldexp(x, -scale)
    del x
    fixed = fixed.astype(np.int64)  # exact: integers below 2**62
    bound = float(max(-int(fixed.min()), int(fixed.max())))
    return _Fixed(fixed, scale, bound, valid, n, special)


def _moments(
    k: Any, values: pa.Array, i: np.ndarray, j: np.ndarray, typ: pa.DataType
) -> pa.Array | None:
    """sum / mean / stddev of every slice from exact integers (the column in fixed point):
    the same numbers as the kernel, whose own finalize takes the windows where that cannot be
    shown cheaply. None: the column does not fit (the caller's per-slice kernel path)."""
    fx = _fixed_point(values, k.column_type) if len(values) < 2**30 else None
    if fx is None:
        return None
    cnt = fx.counts(i, j)
    prefix = _prefix(fx.fixed)
    s1 = prefix[j] - prefix[i]  # exact where cnt * bound < 2**62 (wrapping cancels out)
    del prefix
    ok = cnt.astype(np.float64) * fx.bound < _LIMIT
    fn = k.function
    null = cnt < (2 if fn == "stddev" else 1)
    out = np.zeros(len(i), dtype=np.float64)
    zeros = np.zeros(len(i), np.int64)
    negz, nan, pinf, ninf = zeros, zeros, zeros, zeros
    if fx.special is not None:
        sp = fx.special[j] - fx.special[i]
        negz, nan, pinf, ninf = sp[:, 0], sp[:, 1], sp[:, 2], sp[:, 3]
    if fn == "stddev":
        nonfinite = (nan + pinf + ninf) > 0
        out[nonfinite] = math.nan
        slow = ~null & ~nonfinite
        if _WIDE:
            fast = slow & ok & ((j - i) <= _SPAN)
            rows = np.flatnonzero(fast)
            got, done = _stddev_rows(fx, i[rows], j[rows], cnt[rows], s1[rows])
            out[rows[done]] = got[done]
            slow[rows[done]] = False
    else:
        nanv = (nan > 0) | ((pinf > 0) & (ninf > 0))
        posv = ~nanv & (pinf > 0)
        negv = ~nanv & ~posv & (ninf > 0)
        out[nanv], out[posv], out[negv] = math.nan, math.inf, -math.inf
        finite = ~null & ~nanv & ~posv & ~negv
        zero = finite & ok & (s1 == 0)
        out[zero] = np.where(negz[zero] == cnt[zero], -0.0, 0.0)
        rest = finite & ok & (s1 != 0)
        if fn == "sum":
            if k.column_type == "Int64":  # exact integers (an overflow: the kernel raises)
                return None if np.any(~null & ~ok) else pa.array(s1, type=typ, mask=null)
            out[rest] = np.ldexp(s1[rest].astype(np.float64), fx.scale)  # one rounding
            slow = finite & ~ok
        else:
            # both exact in float64 (below 2**53): IEEE division rounds once; the scaling by
            # a power of two is exact (the result stays a normal number)
            easy = rest & (np.abs(s1) < 2**53)
            q = s1[easy].astype(np.float64) / cnt[easy].astype(np.float64)
            out[easy] = np.ldexp(q, fx.scale)
            slow = (rest & ~easy) | (finite & ~ok)
    rows = np.flatnonzero(slow)
    if len(rows):
        out[rows] = _finalize_rows(k, fx, values, i[rows], j[rows], ok[rows])
    return pa.array(out, type=typ, mask=null)


def _distinct(i: np.ndarray, j: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices of the first row of each distinct slice, each row's distinct slice)."""
    _, first, inverse = np.unique(i * np.int64(n + 1) + j, return_index=True, return_inverse=True)
    return first, inverse.reshape(-1)


def _stddev_rows(
    fx: _Fixed, i: np.ndarray, j: np.ndarray, cnt: np.ndarray, s1: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The sample stddev of each slice [i, j) (n >= 2 finite values, exact sum s1, at most
    _SPAN events), correctly rounded, and a mask of the rows where that rounding is proven.

    n**2 (n - 1) var = W = sum over the values v of (n v - s1)**2: squares of exact int64
    (no cancellation) summed in extended precision, so sqrt(W / (n**2 (n - 1))) is known to a
    relative 2**-58.9 (m <= 64 terms: (m / 2 + 2) * 2**-64); where that interval holds no
    Float64 rounding boundary (a midpoint between two doubles), the nearest double of the
    extended value is the correctly rounded result. The other rows are the kernel's."""
    first, inverse = _distinct(i, j, len(fx.fixed))
    a, b, n, s = i[first], j[first], cnt[first], s1[first]
    res = np.zeros(len(a), dtype=np.float64)
    proven = np.zeros(len(a), dtype=bool)
    m = b - a
    ends = np.cumsum(m)
    lo = 0
    while lo < len(a):
        hi = int(np.searchsorted(ends, (ends[lo - 1] if lo else 0) + _REFS, "right"))
        hi = max(hi, lo + 1)
        mm, aa = m[lo:hi], a[lo:hi]
        offs = np.concatenate([[0], np.cumsum(mm)[:-1]])
        w = np.repeat(np.arange(hi - lo), mm)
        pos = np.arange(len(w), dtype=np.int64) - offs[w] + aa[w]
        d = n[lo:hi][w] * fx.fixed[pos] - s[lo:hi][w]  # exact: |d| <= 2 n bound < 2**63
        if fx.valid is not None:
            d[~fx.valid[pos]] = 0
        sq = d.astype(np.longdouble)
        sq *= sq
        big_w = np.add.reduceat(sq, offs)
        nn = n[lo:hi].astype(np.longdouble)
        y = np.ldexp(np.sqrt(big_w / (nn * nn * (nn - 1))), fx.scale)
        dbl = y.astype(np.float64)
        r = y - dbl.astype(np.longdouble)  # exact (Sterbenz)
        up = np.nextafter(dbl, math.inf) - dbl
        down = dbl - np.nextafter(dbl, 0.0)
        half = np.where(r >= 0, up, down).astype(np.longdouble) / 2
        safe = (np.abs(r) < half - y * np.longdouble(2.0**-56)) | (big_w == 0)
        res[lo:hi] = np.where(big_w == 0, 0.0, dbl)
        proven[lo:hi] = safe
        lo = hi
    return res[inverse], proven[inverse]


def _finalize_rows(
    k: Any, fx: _Fixed, values: pa.Array, i: np.ndarray, j: np.ndarray, ok: np.ndarray
) -> np.ndarray:
    """The kernel's own finalize of each slice [i, j) (each distinct slice once): from the
    exact window sums where they are known (`ok`), else from the kernel's add over the slice."""
    first, inverse = _distinct(i, j, len(fx.fixed))
    i, j, ok = i[first], j[first], ok[first]
    squares = k.function == "stddev"
    cnt = fx.counts(i, j).tolist()
    prefix = _prefix(fx.fixed)
    s1 = (prefix[j] - prefix[i]).tolist()
    del prefix
    if fx.special is not None:
        sp = (fx.special[j] - fx.special[i]).tolist()
    else:
        sp = [[0, 0, 0, 0]] * len(i)
    sh = fx.scale + 1074  # the kernel's unit is 2**-1074 (Int64: 1)
    got: list[Any] = []
    plain = k.column_type == "Float64"
    fixed = fx.fixed
    for r, (a, b, good) in enumerate(zip(i.tolist(), j.tolist(), ok.tolist(), strict=True)):
        if not good or (squares and b - a > 4 * _SPAN):
            got.append(k.finalize(k.add(k.empty(), values.slice(a, b - a))))
            continue
        t1 = s1[r]
        t2 = sum(v * v for v in fixed[a:b].tolist()) if squares else 0  # nulls are 0
        if plain:
            z, nan, pinf, ninf = sp[r]
            part: Any = FloatMoments(cnt[r], z, nan, pinf, ninf, t1 << sh, t2 << (2 * sh))
        else:
            part = IntMoments(cnt[r], t1, t2)
        got.append(k.finalize(part))
    res = np.array([math.nan if v is None else v for v in got], dtype=np.float64)
    return res[inverse]


def _narrowed(view: FeatureView, aggs: list[Aggregation]) -> FeatureView:
    """`view` with only the features `aggs` read (the events' scan and sort carry no other
    column); its name, version, keys and source are unchanged, so are the rows it finds."""
    used = {a.column for a in aggs}
    keep = [f for f in view.schema if f.name in used or view.feature(f.name) is None]
    if len(keep) == len(view.schema):
        return view
    return dataclasses.replace(view, schema=keep)


def aggregate_columns(
    source: EventSource,
    ent: pa.Table,
    view: FeatureView,
    aggs: list[Aggregation],
    as_of_us: int | None,
) -> list[pa.Array]:
    """One column per aggregation, aligned with `ent` (`__ts` plus the view's join keys)."""
    t_us = ent.column("__ts").cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy()
    t_us = np.asarray(t_us, dtype=np.int64)
    starts = [window_starts(t_us, a.window_us, view.tile_us) for a in aggs]
    lo = min(int(s.min()) for s in starts) if len(t_us) else None
    keys = ent.select(view.join_keys).group_by(view.join_keys).aggregate([])
    if keys.num_rows > KEY_FILTER_MAX:  # most keys anyway: filtering costs more than it saves
        keys = None
    events, _ = source.window_events(
        _narrowed(view, aggs), keys, None if lo is None or lo == WHOLE_HISTORY else lo, as_of_us
    )
    windows = Windows(events, view.join_keys, ent)
    cut: dict[int | None, tuple[np.ndarray, np.ndarray]] = {}  # aggregations sharing a window
    out = []
    for a, s in zip(aggs, starts, strict=True):
        key = a.window_us
        if key not in cut:
            cut[key] = windows.slice(t_us, s)
        out.append(evaluate(view, a, events, *cut[key]))
    return out


__all__ = [
    "EventSource",
    "Windows",
    "aggregate_columns",
    "arrow_type",
    "evaluate",
    "group_bounds",
    "slices",
]
