"""Validate a batch against its view and lay it out for storage (tie-resolved once, here).

Public to the write path (`featureline.write`) and to engine authors: an `OfflineEngine`
receives batches in this stored layout (`featureline.testing.offline_contract` builds them
with `prepare_batch`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featureline._frames import UTC_US, as_utc_timestamps
from featureline.definitions import FeatureView
from featureline.errors import ValidationError, did_you_mean
from featureline.offline._batch_order import ARROW_MAX_ROWS, firsts, has_nulls
from featureline.types import DType, Int64, String, compatible, from_arrow

EVENT_TS = "__event_ts"
CREATED_TS = "__created_ts"
SEQ = "__seq"
SHADOWED_UNTIL = (
    "__shadowed_until"  # int64 us system time from which a later tie wins; null = never
)
NEVER_VISIBLE = -(2**63) + 1  # shadowed within its own batch: never the winner at any system time


def timestamp_columns(view: FeatureView) -> tuple[str, str | None]:
    if view.source is not None:
        return view.source.timestamp_field, view.source.created_timestamp_field
    return "event_timestamp", None


def prepare_batch(
    view: FeatureView,
    table: pa.Table,
    key_types: dict[str, str],
    seq_offset: int = 0,
    shadow: bool = True,
    max_future_seconds: float | None = None,
) -> tuple[pa.Table, dict[str, str]]:
    """Check `table` against `view` and return (stored layout, key types).

    Every problem in the batch is collected and reported at once; nothing is written when
    any is found.
    """
    what = f"batch for feature view `{view.name}`"
    if table.num_rows == 0:
        raise ValidationError(
            f"The {what} is empty (0 rows). Fix: pass at least one row; nothing was written."
        )
    ts_col, created_col = timestamp_columns(view)
    cols = set(table.column_names)
    problems: list[str] = []
    needed = [
        *view.join_keys,
        ts_col,
        *([created_col] if created_col else []),
        *(f.name for f in view.features),
    ]
    spare = cols - set(
        needed
    )  # a suggestion must be a column that is not already used for something else
    for c in needed:
        if c not in cols:
            problems.append(
                f"column `{c}` is missing.{did_you_mean(c, spare)} Found: {', '.join(table.column_names)}."
            )
    if problems:
        raise _batch_error(what, problems)

    out: dict[str, pa.ChunkedArray] = {}
    new_key_types = dict(key_types)
    declared = view.key_fields
    for k in view.join_keys:
        col = table.column(k)
        found = from_arrow(col.type)
        expected = declared.get(k) or (_dtype(key_types[k]) if k in key_types else None)
        if expected is None:
            expected = found if found in (Int64, String) else None
        if (
            found is None
            or expected is None
            or expected not in (Int64, String)
            or not compatible(expected, found)
            or expected != found
        ):
            problems.append(
                f"join key `{k}` has type `{col.type}` ({found}); expected {expected or 'Int64 or String'}. "
                f"Fix: cast the column, e.g. df[{k!r}].astype({'str' if expected == String else 'int'!r})."
            )
            continue
        if col.null_count:
            problems.append(
                f"join key `{k}` has {col.null_count} null value(s). Fix: drop or fill those rows."
            )
        try:
            out[k] = col.cast(expected.to_arrow())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            problems.append(
                f"join key `{k}` has values that do not fit {expected} ({col.type}: {e}); Int64 keys range from "
                f"-9223372036854775808 to 9223372036854775807. Fix: map those keys into that range, or declare the key as a String."
            )
            continue
        new_key_types[k] = str(expected)
    for name, target, required in ((ts_col, EVENT_TS, True), (created_col, CREATED_TS, False)):
        if name is None:
            out[target] = pa.chunked_array([pa.nulls(table.num_rows, UTC_US)])
            continue
        try:
            ts = as_utc_timestamps(table.column(name), name, what)
        except ValidationError as e:
            problems.append(str(e))
            continue
        if required and ts.null_count:
            problems.append(
                f"event timestamp column `{name}` has {ts.null_count} null value(s). Fix: drop or fill those rows."
            )
        if required and max_future_seconds is not None:
            problems += _too_far_ahead(ts, name, max_future_seconds)
        out[target] = ts
    for f in view.features:
        col = table.column(f.name)
        found = from_arrow(col.type)
        if pa.types.is_null(col.type):
            out[f.name] = pa.chunked_array([pa.nulls(table.num_rows, f.dtype.to_arrow())])
            continue
        if found is None or not compatible(f.dtype, found):
            problems.append(
                f"column `{f.name}` has type {found or col.type}; the view declares {f.dtype}. Fix: cast the column or change the Field dtype."
            )
            continue
        try:
            out[f.name] = (
                as_utc_timestamps(col, f.name, what)
                if f.dtype.name == "Timestamp"
                else col.cast(f.dtype.to_arrow())
            )
        except (pa.ArrowInvalid, ValidationError) as e:
            problems.append(f"column `{f.name}` cannot be stored as {f.dtype}: {e}")
    if problems:
        raise _batch_error(what, problems)
    out[SEQ] = pa.chunked_array(
        [pa.array(np.arange(seq_offset, seq_offset + table.num_rows, dtype=np.int64))]
    )
    stored = pa.table(out)
    marks = (
        _in_batch_shadow(stored, view.join_keys) if shadow else pa.nulls(table.num_rows, pa.int64())
    )
    stored = stored.append_column(SHADOWED_UNTIL, pa.chunked_array([marks]))
    return stored, new_key_types


def _too_far_ahead(ts: pa.ChunkedArray, name: str, bound_s: float) -> list[str]:
    """The write bound on future event times (featureline.yaml `writes.max_future_seconds`)."""
    import time

    limit_us = time.time_ns() // 1000 + int(bound_s * 1_000_000)
    late = pc.sum(pc.greater(pc.cast(ts, pa.int64()), limit_us)).as_py() or 0
    if not late:
        return []
    worst = pc.max(ts).as_py()
    return [
        f"{late} row(s) have an event time more than {bound_s:g} s in the future (latest `{worst.isoformat()}`). "
        f"Fix: correct the `{name}` values, or raise `writes: {{max_future_seconds: N}}` in featureline.yaml (null: no bound)."
    ]


def _dtype(name: str) -> DType:
    from featureline.types import parse_dtype

    return parse_dtype(name)


def _batch_error(what: str, problems: list[str]) -> ValidationError:
    body = "\n".join(f"  - {p}" for p in problems)
    return ValidationError(
        f"The {what} was refused ({len(problems)} problem(s)); nothing was written:\n{body}"
    )


def _in_batch_shadow(stored: pa.Table, keys: list[str]) -> pa.Array:
    """NEVER_VISIBLE for rows that lose to a later tie in the same batch, else null.

    Among rows with equal keys and event time, the winner has the greatest created time, then
    the greatest position in the batch (DESIGN §3: write sequence).
    """
    part_cols = [*keys, EVENT_TS]
    if stored.num_rows <= ARROW_MAX_ROWS and not has_nulls(stored, part_cols):
        winners = firsts(stored, part_cols, [CREATED_TS, SEQ])  # a push: sorted in memory
        if len(winners) == stored.num_rows:  # no two rows tie (the common case)
            return pa.nulls(stored.num_rows, pa.int64())
        losers = np.ones(stored.num_rows, dtype=bool)
        losers[winners] = False
        values = np.full(stored.num_rows, NEVER_VISIBLE, dtype=np.int64)
        return pa.array(values, mask=~losers)
    distinct = stored.select(part_cols).group_by(part_cols).aggregate([]).num_rows
    if distinct == stored.num_rows:  # no two rows tie (the common case): no DuckDB needed
        return pa.nulls(stored.num_rows, pa.int64())
    import duckdb

    con = duckdb.connect()
    try:
        con.register("b", stored.select([*keys, EVENT_TS, CREATED_TS, SEQ]))
        part = ", ".join(_q(k) for k in [*keys, EVENT_TS])
        # only groups with more than one row can have losers: find those by hashing first
        losers = con.sql(
            f"""WITH d AS (SELECT {part} FROM b GROUP BY ALL HAVING count(*) > 1)
            SELECT {SEQ} FROM (SELECT b.* FROM b SEMI JOIN d USING ({part}))
            QUALIFY row_number() OVER (PARTITION BY {part} ORDER BY {CREATED_TS} DESC NULLS LAST, {SEQ} DESC) > 1"""
        ).fetchnumpy()[SEQ]
    finally:
        con.close()
    mask = np.zeros(stored.num_rows, dtype=bool)
    mask[np.asarray(losers, dtype=np.int64)] = True
    values = np.full(stored.num_rows, NEVER_VISIBLE, dtype=np.int64)
    return pa.array(values, mask=~mask)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def batch_stats(stored: pa.Table, view: FeatureView) -> dict[str, Any]:
    """Small per-batch facts kept in the commit log (time range, row counts)."""
    ev = stored.column(EVENT_TS)
    mm = pc.min_max(ev)
    return {
        "min_event_us": mm["min"].value if mm["min"].is_valid else None,
        "max_event_us": mm["max"].value if mm["max"].is_valid else None,
        "shadowed_in_batch": int(stored.num_rows - stored.column(SHADOWED_UNTIL).null_count),
    }


__all__ = ["NEVER_VISIBLE", "batch_stats", "prepare_batch", "timestamp_columns"]
