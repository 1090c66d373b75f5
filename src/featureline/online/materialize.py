"""Offline -> online: per key, the row that wins at read time, streamed in bounded Arrow chunks.

Writes compare ORDER bytes (event, created, ingested, seq), so a run is idempotent, a killed
run can simply be run again, and incremental runs (by *ingested* time, so late and corrected
rows are picked up) converge to the same state as a full one.

A row whose event time is still ahead is staged, not written: the online store serves it from
its event time on and keeps serving the value it replaces until then (online = offline at
now, DESIGN §3). A materialization first promotes the staged values that have come due; a push
does so at most once a second (`PROMOTE_EVERY_SECONDS`).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from featureline._time import now_us as clock_us
from featureline.definitions import FeatureView
from featureline.freshness import log_dir, record, view_key
from featureline.offline.store import OfflineStore
from featureline.online._codec import ViewCodec, encode_keys, table_name
from featureline.online._store import OnlineStore
from featureline.online.tiles import refresh

CHUNK_ROWS = 100_000
WATERMARK = "watermark:{table}"
PROMOTE_EVERY_SECONDS = 1.0
"""A push promotes due staged values at most this often per online store and table: `promote`
is housekeeping (a read returns the due staged values whether it has run or not: the
`OnlineStore` contract), and on Redis each call is a round trip on every push of a stream."""
_promoted: weakref.WeakKeyDictionary[Any, dict[str, float]] = weakref.WeakKeyDictionary()


def _promote_now_and_then(online: OnlineStore, table: str, now: int) -> None:
    """`online.promote(table, now)` unless this process did so for it under a second ago."""
    try:
        seen = _promoted.setdefault(online, {})
    except TypeError:  # a store that takes no weak reference: promote every time
        online.promote(table, now)
        return
    t = time.monotonic()
    if t - seen.get(table, -PROMOTE_EVERY_SECONDS) >= PROMOTE_EVERY_SECONDS:
        online.promote(table, now)
        seen[table] = t


@dataclass(frozen=True)
class MaterializeResult:
    view: str
    version: int
    rows_scanned: int
    keys_written: int
    seconds: float
    watermark_us: int | None


def _put(
    online: OnlineStore,
    table: str,
    t: pa.Table,
    keys: list[bytes],
    now: int,
    codec: ViewCodec,
    log: tuple[Path, str] | None = None,
) -> None:
    """Write the rows of `t` whose event time has arrived; stage the others; record freshness."""
    values = codec.encode(t)
    ev = t.column("__event_us")
    ahead = pc.greater(ev, now)
    if not pc.any(ahead).as_py():
        online.write(table, keys, values)
        if log is not None:
            record(*log, ev.to_numpy())
        return
    mask = ahead.to_pylist()
    now_rows = [i for i, a in enumerate(mask) if not a]
    later = [i for i, a in enumerate(mask) if a]
    online.write(table, [keys[i] for i in now_rows], [values[i] for i in now_rows])
    online.stage(table, [keys[i] for i in later], [values[i] for i in later])
    if log is not None:
        record(*log, ev.to_numpy()[now_rows], ahead=len(later))


def _log(offline: OfflineStore, view: FeatureView) -> tuple[Path, str]:
    return log_dir(offline.root), view_key(view.name, view.version)


def apply_batch(
    offline: OfflineStore,
    online: OnlineStore,
    view: FeatureView,
    stored: pa.Table,
    ingested_at_us: int,
) -> int:
    """Write the per-key winners of one committed batch (as stored) to the online store.

    The batch is applied from memory, not re-read from its commit, so a compaction or vacuum
    that replaced the commit meanwhile cannot lose it; the ORDER compare makes it idempotent.
    Returns the number of keys written (or beaten by a newer online value).
    """
    written = 0
    key_types = offline.key_types(view.name, view.version)
    codec = ViewCodec.for_view(view)
    table = table_name(view)
    now = clock_us()
    _promote_now_and_then(online, table, now)
    for t in offline.engine.batch_winners(view, stored, ingested_at_us, CHUNK_ROWS, now):
        keys = encode_keys(t, view.join_keys, key_types)
        _put(online, table, t, keys, now, codec, _log(offline, view))
        written += t.num_rows
    if view.aggregations:  # the touched keys' tiles, recomputed from the committed events
        keys = stored.select(view.join_keys).group_by(view.join_keys).aggregate([])
        refresh(offline, online, view, key_types, keys, now)
    return written


def materialize_view(
    offline: OfflineStore,
    online: OnlineStore,
    view: FeatureView,
    *,
    start_us: int | None = None,
    end_us: int | None = None,
    incremental: bool = False,
    progress: Callable[[int], Any] | None = None,
) -> MaterializeResult:
    t0 = time.perf_counter()
    table = table_name(view)
    mark_key = WATERMARK.format(table=table)
    since = None
    if incremental:
        raw = online.get_meta(mark_key)
        since = int(raw) if raw else None
    commits = offline.commits(view.name, view.version)
    cut = commits[-1].ingested_at_us if commits else None
    # parts whose commit is newer than the watermark (a compacted part may hold old and new rows)
    parts = [
        p
        for p in offline.parts(view.name, view.version)
        if since is None or p.compacted or p.ingested_at_us > since
    ]
    scanned = sum(c.rows for c in commits if since is None or c.ingested_at_us > since)
    written = 0
    if parts:
        key_types = offline.key_types(view.name, view.version)
        codec = ViewCodec.for_view(view)
        now = clock_us()
        online.promote(table, now)
        for t in offline.engine.winners(view, parts, since, start_us, end_us, CHUNK_ROWS, now):
            keys = encode_keys(t, view.join_keys, key_types)
            _put(online, table, t, keys, now, codec, _log(offline, view))
            written += t.num_rows
        if view.aggregations:
            refresh(offline, online, view, key_types, None, now)
            if progress is not None:
                progress(t.num_rows)
    if cut is not None and start_us is None and end_us is None:
        online.set_meta(mark_key, str(cut))
    return MaterializeResult(
        view.name, view.version, scanned, written, time.perf_counter() - t0, cut
    )
