"""Mergeable statistics of a view's rows (`ProfileState`): what the UI's statistics page keeps per
view version so that, after commits that only append rows, it profiles the new rows alone and
merges (issue 12).

Exact when merged: row and null counts, min/max, the mean (sum and count), the rows per hour of
event time (rolled up to days or months when shown), and the histograms while the new rows fall
inside the kept bins (else the caller recounts the bins over every row: `needs_bins`). Estimates
that merge without losing accuracy: the distinct count (a DataSketches HLL sketch, its
serialized bytes kept) and the percentiles (a DataSketches KLL sketch)."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np

HLL_LG_K = 12  # 4,096 registers: a relative standard error of about 1.6%
KLL_K = 200  # a normalized rank error of about 1.3% (99% confidence)
_HOUR_US, _DAY_US = 3_600_000_000, 86_400_000_000


@dataclass(frozen=True)
class FeatureState:
    """One feature's mergeable figures (`total`, `kll` and `hist` for numeric features only)."""

    dtype: str
    nonnull: int
    lo: Any = None
    hi: Any = None
    total: int | float | None = None  # the sum of the non-null values (an Int64's exactly)
    hll: bytes = b""  # a DataSketches HLL_8 sketch, serialized
    kll: bytes | None = None  # a DataSketches KLL (doubles) sketch, serialized
    edges: tuple[float, float, float] | None = None  # (lo, hi, width) of `hist`
    hist: tuple[int, ...] | None = None


@dataclass(frozen=True)
class ProfileState:
    """The mergeable statistics of some rows of a view version."""

    rows: int
    first_us: int | None = None  # event-time range (µs)
    last_us: int | None = None
    hours: dict[int, int] = field(default_factory=dict)  # hour start (µs): rows
    features: dict[str, FeatureState] = field(default_factory=dict)


def hll_image(registers: Any) -> bytes:
    """The serialized (compact, HLL mode, HLL_8) DataSketches HLL sketch whose registers are
    `registers` (2**HLL_LG_K bytes; `hll_sql`), marked out of order so that its estimate is the composite
    one, not the HIP accumulator (which only a sketch updated value by value has). Lets the
    registers be computed in bulk from 64-bit hashes (`hll_registers_sql`) where the Python
    binding updates one value at a time (~0.3 s a million). An empty sketch when no register is
    set."""
    r = np.asarray(registers, np.uint8)
    assert r.size == 1 << HLL_LG_K
    if not r.any():
        return hll_set_image([])
    inv = np.ldexp(1.0, -r.astype(np.int64))
    kxq0, kxq1 = float(inv[r < 32].sum()), float(inv[r >= 32].sum())
    # preamble ints, serial version, family (HLL), lg k, lg aux array, flags (compact | out of
    # order), current min, mode (HLL | HLL_8 << 2); HIP accumulator, kxq0, kxq1, registers at the
    # current min, aux count
    head = struct.pack("<BBBBBBBB", 10, 1, 7, HLL_LG_K, 0, 8 | 16, 0, 2 | (2 << 2))
    body = struct.pack("<dddii", 0.0, kxq0, kxq1, int((r == 0).sum()), 0)
    return head + body + r.tobytes()


SET_MAX = 384  # coupons a DataSketches HLL (lg k 12, HLL_8) holds before its registers
COUPON_ROWS = 100_000  # up to this many rows a state's HLL sketches come from their coupons


def hll_sql(column_sql: str) -> tuple[str, str, str]:
    """SQL (register, coupon address, value) of the non-null values of `column_sql`, from
    DuckDB's 64-bit hash of each: its low 26 bits the coupon's address (the low `HLL_LG_K` the
    register), the rank of the first set bit of the other 38 the value — as DataSketches
    derives them from its own hash, so a sketch of few values keeps exact coupons
    (`hll_set_image`) and merges into a sketch of registers (`hll_image`) like its own."""
    h = f"hash({column_sql})"
    w = f"({h} >> 26)"  # < 2**38: exact in a DOUBLE, so log2 finds its first set bit
    rank = f"CASE WHEN {w} = 0 THEN 39 ELSE 38 - floor(log2({w}::DOUBLE))::INTEGER END"
    return f"({h} & {(1 << HLL_LG_K) - 1})::INTEGER", f"({h} & {(1 << 26) - 1})::BIGINT", rank


def hll_set_image(coupons: Any) -> bytes:
    """The serialized (compact, SET mode, HLL_8) DataSketches HLL sketch of `coupons`
    ({address: value} as (address | value << 26) integers, at most `SET_MAX`): its estimate
    nearly exact, where registers lose the values two of them share."""
    c = np.asarray(coupons, np.uint32)
    assert c.size <= SET_MAX
    lg = 5
    while c.size > 0.75 * (1 << lg):
        lg += 1
    head = struct.pack("<BBBBBBBBi", 3, 1, 7, HLL_LG_K, lg, 8, 0, 1 | (2 << 2), int(c.size))
    return head + c.astype("<u4").tobytes()


def _hll_union(a: bytes, b: bytes) -> bytes:
    import datasketches as ds

    if not a:
        return b
    if not b:
        return a
    u = ds.hll_union(HLL_LG_K)
    u.update(ds.hll_sketch.deserialize(a))
    u.update(ds.hll_sketch.deserialize(b))
    return bytes(u.get_result(ds.tgt_hll_type.HLL_8).serialize_compact())


def _kll_union(a: bytes | None, b: bytes | None) -> bytes | None:
    import datasketches as ds

    if a is None or b is None:
        return a if b is None else b
    s = ds.kll_doubles_sketch.deserialize(a)
    s.merge(ds.kll_doubles_sketch.deserialize(b))
    return bytes(s.serialize())


def _pick(a: Any, b: Any, f: Any) -> Any:
    return b if a is None else a if b is None else f(a, b)


def inside(edges: tuple[float, float, float] | None, lo: Any, hi: Any) -> bool:
    """Whether values from `lo` to `hi` fall inside the bins of `edges` (no values: they do)."""
    if lo is None or hi is None:
        return True
    return edges is not None and edges[0] <= float(lo) and float(hi) <= edges[1]


def merge(a: ProfileState, b: ProfileState) -> tuple[ProfileState, set[str]]:
    """The state of the rows of `a` and `b` together, and the numeric features whose histogram
    must be counted again over all the rows (`b`'s rows outside `a`'s bins: the bins follow the
    range; their `hist` is then None). `b`'s histograms must be counted in `a`'s bins."""
    hours = dict(a.hours)
    for k, n in b.hours.items():
        hours[k] = hours.get(k, 0) + n
    feats: dict[str, FeatureState] = {}
    rebin: set[str] = set()
    for name in {*a.features, *b.features}:
        x, y = a.features.get(name), b.features.get(name)
        if x is None or y is None:  # a feature some parts lack: null in their rows
            got = x or y
            assert got is not None
            feats[name] = got  # its bins over its own range (the delta's, when no edges given)
            continue
        lo, hi = _pick(x.lo, y.lo, min), _pick(x.hi, y.hi, max)
        hist, edges = None, None
        if not x.nonnull or not y.nonnull:  # the bins of the side with values
            hist, edges = (y.hist, y.edges) if not x.nonnull else (x.hist, x.edges)
        elif x.hist is not None and y.edges == x.edges and inside(x.edges, y.lo, y.hi):
            assert y.hist is not None
            hist, edges = tuple(i + j for i, j in zip(x.hist, y.hist, strict=True)), x.edges
        elif x.kll is not None:
            rebin.add(name)
        feats[name] = FeatureState(
            x.dtype,
            x.nonnull + y.nonnull,
            lo,
            hi,
            _pick(x.total, y.total, lambda i, j: i + j),
            _hll_union(x.hll, y.hll),
            _kll_union(x.kll, y.kll),
            edges,
            hist,
        )
    first, last = _pick(a.first_us, b.first_us, min), _pick(a.last_us, b.last_us, max)
    return ProfileState(a.rows + b.rows, first, last, hours, feats), rebin


def with_bins(
    state: ProfileState, counted: dict[str, tuple[tuple[float, float, float], list[int]]]
) -> ProfileState:
    """`state` with the histograms `counted` ({feature: (edges, counts)}) put in."""
    feats = dict(state.features)
    for name, (edges, counts) in counted.items():
        feats[name] = replace(feats[name], edges=edges, hist=tuple(counts))
    return replace(state, features=feats)


def bin_edges(lo: Any, hi: Any, bins: int) -> tuple[float, float, float] | None:
    """(lo, hi, width) of `bins` bins over [lo, hi] — the engine profile's —; None without a
    finite range."""
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in (lo, hi)):
        return None
    lo, hi = float(lo), float(hi)
    return lo, hi, (hi - lo) / bins if hi > lo else 1.0


def rows_by_time(state: ProfileState) -> dict[str, Any]:
    """The rows per hour, day (over 10 days) or month (over 400) of event time — the engine
    profile's `rows_by_time` —, rolled up from the state's hours."""
    from featureline._time import from_us

    if state.first_us is None or state.last_us is None or not state.hours:
        return {"unit": "day", "buckets": []}
    days = (state.last_us - state.first_us) / _DAY_US
    unit = "hour" if days <= 10 else "day" if days <= 400 else "month"
    rows: dict[datetime, int] = {}
    for h, n in sorted(state.hours.items()):
        start = from_us(h if unit == "hour" else h // _DAY_US * _DAY_US)
        if unit == "month":
            start = start.replace(day=1)
        rows[start] = rows.get(start, 0) + n
    return {"unit": unit, "buckets": [{"start": t, "rows": n} for t, n in rows.items()]}


def finalize(
    state: ProfileState, superseded_rows: int, quantiles: Sequence[float]
) -> dict[str, Any]:
    """The profile of `state` in the shape of `DuckDBEngine.profile` (with bins, `quantiles`
    and rows by time)."""
    import datasketches as ds

    from featureline._time import from_us

    n = state.rows
    out: dict[str, Any] = {
        "rows": n,
        "first_event": None if state.first_us is None else from_us(state.first_us),
        "last_event": None if state.last_us is None else from_us(state.last_us),
        "superseded_rows": int(superseded_rows),
        "features": {},
    }
    for name, f in state.features.items():
        distinct = 0
        if f.hll and f.nonnull:
            distinct = round(ds.hll_sketch.deserialize(f.hll).get_estimate())
        stat: dict[str, Any] = {
            "dtype": f.dtype,
            "null_rate": (n - f.nonnull) / n if n else 0.0,
            "min": f.lo,
            "max": f.hi,
            "mean": None if f.total is None or not f.nonnull else f.total / f.nonnull,
            "distinct": min(distinct, f.nonnull),
        }
        if f.kll is not None and quantiles:
            k = ds.kll_doubles_sketch.deserialize(f.kll)
            got = [] if k.is_empty() else [k.get_quantile(float(x), True) for x in quantiles]
            if f.dtype == "Int64":
                got = [int(v) for v in got]
            stat["percentiles"] = {
                f"p{round(x * 100)}": v for x, v in zip(quantiles, got, strict=False)
            }
        if f.edges is not None and f.hist is not None:
            lo, hi, width = f.edges
            stat["histogram"] = {"lo": lo, "hi": hi, "width": width, "counts": list(f.hist)}
        out["features"][name] = stat
    out["rows_by_time"] = rows_by_time(state)
    out["approximate"] = {
        "distinct": (
            f"DataSketches HLL estimate: up to {SET_MAX} values exact but for 26-bit hash "
            f"collisions, above from {1 << HLL_LG_K:,} registers, a relative standard error of "
            f"{1.04 / math.sqrt(1 << HLL_LG_K):.1%}"
        ),
        "percentiles": (
            f"DataSketches KLL sketch (k={KLL_K}) of every row, rank error within "
            f"{_kll_error():.1%} (99% confidence)"
        ),
    }
    return out


def _kll_error() -> float:
    import datasketches as ds

    return float(ds.kll_doubles_sketch.get_normalized_rank_error(KLL_K, False))
