"""Offline -> online: per key, the row that wins at read time, streamed in bounded Arrow chunks.

Writes compare ORDER bytes (event, created, ingested, seq), so a run is idempotent, a killed
run can simply be run again, and incremental runs (by *ingested* time, so late and corrected
rows are picked up) converge to the same state as a full one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from featureline.definitions import FeatureView
from featureline.offline.store import OfflineStore
from featureline.online._codec import ViewCodec, encode_keys
from featureline.online._read import table_name
from featureline.online._store import OnlineStore

CHUNK_ROWS = 100_000
WATERMARK = "watermark:{table}"


@dataclass(frozen=True)
class MaterializeResult:
    view: str
    version: int
    rows_scanned: int
    keys_written: int
    seconds: float
    watermark_us: int | None


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
    for t in offline.engine.batch_winners(view, stored, ingested_at_us, CHUNK_ROWS):
        online.write(table, encode_keys(t, view.join_keys, key_types), codec.encode(t))
        written += t.num_rows
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
        for t in offline.engine.winners(view, parts, since, start_us, end_us, CHUNK_ROWS):
            online.write(table, encode_keys(t, view.join_keys, key_types), codec.encode(t))
            written += t.num_rows
            if progress is not None:
                progress(t.num_rows)
    if cut is not None and start_us is None and end_us is None:
        online.set_meta(mark_key, str(cut))
    return MaterializeResult(
        view.name, view.version, scanned, written, time.perf_counter() - t0, cut
    )
