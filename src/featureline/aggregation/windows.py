"""Window arithmetic shared by training sets and online tiles (DESIGN §3).

The value of an aggregation at time `t` covers the events with `start(t) <= event <= t`,
`start(t) = ceil((t - window) / tile) * tile` (`tile` 0: exactly `t - window`; no window: the
whole history). Every time is in µs since the epoch.
"""

from __future__ import annotations

import numpy as np

from featureline.definitions import Aggregation, FeatureView

WHOLE_HISTORY = -(2**63)
"""`start(t)` of a window-less (lifetime) aggregation."""


def window_start(t_us: int, window_us: int | None, tile_us: int) -> int:
    """The first event time (µs) the window ending at `t_us` covers."""
    if window_us is None:
        return WHOLE_HISTORY
    lo = t_us - window_us
    if tile_us <= 0:
        return lo
    return -((-lo) // tile_us) * tile_us


def window_starts(t_us: np.ndarray, window_us: int | None, tile_us: int) -> np.ndarray:
    """`window_start` of every time in `t_us` (int64), vectorised."""
    if window_us is None:
        return np.full(len(t_us), WHOLE_HISTORY, dtype=np.int64)
    lo = t_us.astype(np.int64) - np.int64(window_us)
    if tile_us <= 0:
        return lo
    return -((-lo) // np.int64(tile_us)) * np.int64(tile_us)


def tile_start(event_us: np.ndarray, tile_us: int) -> np.ndarray:
    """The start of the tile each event falls in (exact mode: each event time is a tile)."""
    if tile_us <= 0:
        return event_us.astype(np.int64)
    return (event_us.astype(np.int64) // np.int64(tile_us)) * np.int64(tile_us)


def horizon(view: FeatureView, now_us: int) -> int | None:
    """The oldest event time a read at `now_us` or later can need from finite windows
    (None when the view has no finite window)."""
    starts = [
        window_start(now_us, a.window_us, view.tile_us)
        for a in view.aggregations
        if a.window_us is not None
    ]
    return min(starts) if starts else None


def has_lifetime(aggs: list[Aggregation]) -> bool:
    return any(a.window_us is None for a in aggs)


__all__ = [
    "WHOLE_HISTORY",
    "has_lifetime",
    "horizon",
    "tile_start",
    "window_start",
    "window_starts",
]
