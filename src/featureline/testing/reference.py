"""A tiny, obviously-correct reference of the point-in-time join (DESIGN §3); the offline
contract suite (`featureline.testing.offline_contract`) compares every engine with it.

Plain loops over lists of dict rows: no DuckDB, no Arrow. Slow on purpose; it exists only to
be compared with the real implementation on small generated data.

For each entity row (keys `k`, time `t`) and each view `V`:

1. candidates = rows of `V` with keys `k`, `event_ts <= t` and, when `V.ttl` is set and
   non-zero, `event_ts >= t - ttl`;
2. with `as_of=T`, only rows of batches with `ingested_at <= T`;
3. the winner has the greatest `(event_ts, created_ts, ingested_at, write sequence)`, where a
   null created time sorts lowest and the write sequence is the row's position in its batch;
4. no candidate -> null. One output row per input row, in input order, input columns kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any


@dataclass
class RefBatch:
    """One `store.ingest(view, rows)` call: its rows in write order and its ingested time."""

    ingested_at: datetime
    rows: list[dict[str, Any]]


@dataclass
class RefView:
    name: str
    keys: list[str]
    features: list[str]
    ttl: timedelta | None = None
    batches: list[RefBatch] = field(default_factory=list)
    event_ts: str = "event_timestamp"
    created_ts: str = "created"


def _rank(row: dict[str, Any], view: RefView, batch: RefBatch, seq: int) -> tuple[Any, ...]:
    created = row.get(view.created_ts)
    created_rank = (0,) if created is None else (1, created)  # null created sorts lowest
    return (row[view.event_ts], created_rank, batch.ingested_at, seq)


def winner(
    view: RefView, keys: dict[str, Any], t: datetime, as_of: datetime | None = None
) -> dict[str, Any] | None:
    """The row of `view` a training set returns for entity `keys` at time `t`, or None."""
    best: dict[str, Any] | None = None
    best_rank: tuple[Any, ...] | None = None
    for batch in view.batches:
        if as_of is not None and batch.ingested_at > as_of:
            continue
        for seq, row in enumerate(batch.rows):
            if any(row[k] != keys[k] for k in view.keys):
                continue
            ts = row[view.event_ts]
            if ts > t:
                continue
            if view.ttl and ts < t - view.ttl:  # ttl None or zero: no limit
                continue
            rank = _rank(row, view, batch, seq)
            if best_rank is None or rank > best_rank:
                best, best_rank = row, rank
    return best


def point_in_time_join(
    entity_rows: list[dict[str, Any]],
    features: list[tuple[RefView, str]],
    as_of: datetime | None = None,
    timestamp_column: str = "event_timestamp",
    full_feature_names: bool = False,
) -> list[dict[str, Any]]:
    """The training set as a list of dict rows: input columns unchanged, then the features."""
    out = []
    for entity in entity_rows:
        row = dict(entity)
        t = entity[timestamp_column]
        for view, feature in features:
            name = f"{view.name}__{feature}" if full_feature_names else feature
            w = winner(view, {k: entity[k] for k in view.keys}, t, as_of)
            row[name] = None if w is None else w[feature]
        out.append(row)
    return out
