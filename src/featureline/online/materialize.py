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
from featureline.offline._pit import CREATED_TS, EVENT_TS, INGESTED_AT, SEQ, PartRef, lit, q
from featureline.offline.store import OfflineStore
from featureline.online._codec import NULL_CREATED, ViewCodec, encode_keys
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


def _scan_sql(
    view: FeatureView,
    parts: list[PartRef],
    since_us: int | None,
    start_us: int | None,
    end_us: int | None,
) -> str:
    feats = [f.name for f in view.features]
    selects = []
    for p in parts:
        ing = INGESTED_AT if p.compacted else f"{p.ingested_at_us}::BIGINT AS {INGESTED_AT}"
        cols = [*(q(k) for k in view.join_keys), EVENT_TS, CREATED_TS, ing, SEQ]
        cols += [q(f) if p.columns is None or f in p.columns else f"NULL AS {q(f)}" for f in feats]
        where = []
        if p.compacted and since_us is not None:
            where.append(f"{INGESTED_AT} > {since_us}")
        if start_us is not None:
            where.append(f"{EVENT_TS} >= make_timestamptz({start_us}::BIGINT)")
        if end_us is not None:
            where.append(f"{EVENT_TS} <= make_timestamptz({end_us}::BIGINT)")
        sql = f"SELECT {', '.join(cols)} FROM read_parquet([{lit(p.path)}])"
        selects.append(sql + (f" WHERE {' AND '.join(where)}" if where else ""))
    return _winners_sql(view, "\n  UNION ALL ".join(selects))


def _winners_sql(view: FeatureView, union: str) -> str:
    """Per key, the row with the greatest (event, created, ingested, seq) of `union`."""
    feats = [f.name for f in view.features]
    keys = ", ".join(q(k) for k in view.join_keys)
    order = (
        f"struct_pack(a := epoch_us({EVENT_TS}), b := coalesce(epoch_us({CREATED_TS}), {NULL_CREATED + 1}::BIGINT - 1), "
        f"c := {INGESTED_AT}, d := {SEQ})"
    )
    row = ", ".join(
        [
            f"__event_us := epoch_us({EVENT_TS})",
            f"__created_us := epoch_us({CREATED_TS})",
            f"__ingested_us := {INGESTED_AT}",
            f"__seq := {SEQ}",
            *(f"{q(f)} := {q(f)}" for f in feats),
        ]
    )
    return f"SELECT {keys}, unnest(arg_max(struct_pack({row}), {order})) FROM (\n  {union}\n) GROUP BY {keys}"


def apply_batch(
    offline: OfflineStore, online: OnlineStore, view: FeatureView, stored: pa.Table, ingested_at_us: int
) -> int:
    """Write the per-key winners of one committed batch (as stored) to the online store.

    The batch is applied from memory, not re-read from its commit, so a compaction or vacuum
    that replaced the commit meanwhile cannot lose it; the ORDER compare makes it idempotent.
    Returns the number of keys written (or beaten by a newer online value).
    """
    feats = [f.name for f in view.features]
    cols = [*(q(k) for k in view.join_keys), EVENT_TS, CREATED_TS, f"{int(ingested_at_us)}::BIGINT AS {INGESTED_AT}", SEQ]
    cols += [q(f) for f in feats]
    con = offline.connection()
    written = 0
    try:
        con.register("__batch", stored)
        reader = con.sql(_winners_sql(view, f"SELECT {', '.join(cols)} FROM __batch")).to_arrow_reader(CHUNK_ROWS)
        key_types = offline.key_types(view.name, view.version)
        codec = ViewCodec.for_view(view)
        table = table_name(view)
        for batch in reader:
            t = pa.Table.from_batches([batch])
            online.write(table, encode_keys(t, view.join_keys, key_types), codec.encode(t))
            written += t.num_rows
    finally:
        con.close()
    return written


def materialize_view(
    offline: OfflineStore,
    online: OnlineStore,
    view: FeatureView,
    *,
    start_us: int | None = None,
    end_us: int | None = None,
    incremental: bool = False,
    only_commit: int | None = None,
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
        if (since is None or p.compacted or p.ingested_at_us > since)
        and (only_commit is None or p.commit == only_commit)
    ]
    scanned = sum(
        c.rows
        for c in commits
        if (since is None or c.ingested_at_us > since)
        and (only_commit is None or c.seq == only_commit)
    )
    written = 0
    if parts:
        key_types = offline.key_types(view.name, view.version)
        codec = ViewCodec.for_view(view)
        con = offline.connection()
        try:
            reader = con.sql(_scan_sql(view, parts, since, start_us, end_us)).to_arrow_reader(
                CHUNK_ROWS
            )
            for batch in reader:
                t = pa.Table.from_batches([batch])
                keys = encode_keys(t, view.join_keys, key_types)
                online.write(table, keys, codec.encode(t))
                written += t.num_rows
                if progress is not None:
                    progress(t.num_rows)
        finally:
            con.close()
    if cut is not None and start_us is None and end_us is None and only_commit is None:
        online.set_meta(mark_key, str(cut))
    return MaterializeResult(
        view.name, view.version, scanned, written, time.perf_counter() - t0, cut
    )
