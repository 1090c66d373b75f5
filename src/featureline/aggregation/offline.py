"""Aggregation features in training sets: for each entity row (keys, t), the function over the
view's events in the window ending at `t`, visible as of `as_of` (DESIGN §3).

Events come from the offline engine (one per key and event time, by the tie rule), sorted by
key and time; each entity row's window is a slice found with one vectorised binary search,
and the slice goes through the same kernel the online tiles use, so both give the same number.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featureline.aggregation.kernel import kernel, output_type
from featureline.aggregation.windows import WHOLE_HISTORY, window_starts
from featureline.definitions import Aggregation, FeatureView
from featureline.types import parse_dtype


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


def slices(
    events: pa.Table, keys: list[str], ent: pa.Table, t_us: np.ndarray, start_us: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per entity row, the event slice [i, j) of its key with `start <= event <= t`."""
    bounds = group_bounds(events, keys)
    ngroups = len(bounds) - 1
    n = ent.num_rows
    if ngroups == 0:
        zero = np.zeros(n, dtype=np.int64)
        return zero, zero
    heads = events.select(keys).take(pa.array(bounds[:-1]))
    heads = heads.append_column("__g", pa.array(np.arange(ngroups, dtype=np.int64)))
    rows = ent.select(keys).append_column("__pos", pa.array(np.arange(n, dtype=np.int64)))
    joined = rows.join(heads, keys, join_type="left outer")
    pos = joined.column("__pos").to_numpy()
    g = np.full(n, -1, dtype=np.int64)
    g[pos] = pc.fill_null(joined.column("__g"), -1).to_numpy()
    ev = events.column("__event_us").to_numpy()
    times = np.unique(ev)
    width = np.int64(len(times) + 1)
    group_of = np.repeat(np.arange(ngroups, dtype=np.int64), np.diff(bounds))
    combined = group_of * width + np.searchsorted(times, ev).astype(np.int64)
    has = g >= 0
    gg = np.where(has, g, 0)
    lo = gg * width + np.searchsorted(times, start_us, "left").astype(np.int64)
    hi = gg * width + np.searchsorted(times, t_us, "right").astype(np.int64)
    i = np.where(has, np.searchsorted(combined, lo, "left"), 0)
    j = np.where(has, np.searchsorted(combined, hi, "left"), 0)
    return i.astype(np.int64), np.maximum(i, j).astype(np.int64)


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
    orders = _orders(events.column("__event_us").to_numpy()) if agg.function == "last" else None
    memo: dict[tuple[int, int], Any] = {}
    out: list[Any] = []
    for a, b in zip(i.tolist(), j.tolist(), strict=True):
        got = memo.get((a, b), memo)
        if got is memo:
            p = k.empty()
            if b > a:
                p = k.add(p, values.slice(a, b - a), None if orders is None else orders[a:b])
            got = memo[(a, b)] = k.finalize(p)
        out.append(got)
    return pa.array(out, type=typ)


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
    events, _ = source.window_events(
        view, keys, None if lo is None or lo == WHOLE_HISTORY else lo, as_of_us
    )
    out = []
    for a, s in zip(aggs, starts, strict=True):
        i, j = slices(events, view.join_keys, ent, t_us, s)
        out.append(evaluate(view, a, events, i, j))
    return out


__all__ = ["EventSource", "aggregate_columns", "arrow_type", "evaluate", "group_bounds", "slices"]
