"""Point-in-time correct training sets: entity frame in, one row per entity row out (DESIGN §3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from featureline._frames import as_utc_timestamps, to_arrow
from featureline._keys import missing_key, wrong_key_type
from featureline.definitions import FeatureRef, FeatureView, output_names
from featureline.errors import ValidationError, did_you_mean
from featureline.offline._pit import JoinSpec
from featureline.types import Int64, String, from_arrow

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

    from featureline.offline.store import OfflineStore

DEFAULT_TS = "event_timestamp"


@dataclass
class TrainingSet:
    """The result of `get_training_set`: input columns unchanged, then one column per feature."""

    table: pa.Table
    features: list[str]
    as_of: datetime | None = None
    registry_version: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_arrow(self) -> pa.Table:
        return self.table

    def to_pandas(self) -> pd.DataFrame:
        return self.table.to_pandas()

    def to_polars(self) -> pl.DataFrame:
        import polars as pl

        return pl.from_arrow(self.table)  # type: ignore[return-value]

    def to_parquet(self, path: str | Path) -> Path:
        import pyarrow.parquet as pq

        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(self.table, p)
        return p

    def __len__(self) -> int:
        return self.table.num_rows


def _timestamp_column(table: pa.Table, name: str | None) -> str:
    if name is not None:
        if name not in table.column_names:
            raise ValidationError(
                f"Entity frame has no column `{name}`.{did_you_mean(name, table.column_names)} Found: {', '.join(table.column_names)}."
            )
        return name
    if DEFAULT_TS in table.column_names:
        return DEFAULT_TS
    ts_cols = [f.name for f in table.schema if pa.types.is_timestamp(f.type)]
    if len(ts_cols) == 1:
        return ts_cols[0]
    raise ValidationError(
        f"Cannot tell which column of the entity frame holds the entity times (found timestamp columns: "
        f"{ts_cols or 'none'}). Fix: name it `event_timestamp` or pass timestamp_column=..."
    )


def entity_table(
    data: Any, views: list[FeatureView], key_types: dict[str, str], timestamp_column: str | None
) -> tuple[pa.Table, pa.Table]:
    """(the user's table unchanged, the join relation __rid/keys/__ts), after checking everything."""
    table = to_arrow(data, "entity frame")
    if table.num_rows == 0:
        raise ValidationError(
            "The entity frame is empty (0 rows). Fix: pass at least one entity row."
        )
    ts_name = _timestamp_column(table, timestamp_column)
    problems: list[str] = []
    keys: list[str] = []
    for v in views:
        for k in v.join_keys:
            if k not in keys:
                keys.append(k)
    cols: dict[str, Any] = {"__rid": pa.array(np.arange(table.num_rows, dtype=np.int64))}
    for k in keys:
        if k not in table.column_names:
            problems.append(
                missing_key(k, [v.name for v in views if k in v.join_keys], table.column_names)
            )
            continue
        col = table.column(k)
        found = from_arrow(col.type)
        want = key_types.get(k)
        if found not in (Int64, String) or (want is not None and str(found) != want):
            problems.append(wrong_key_type(k, f"type `{col.type}`", want))
            continue
        cols[k] = col.cast((String if str(found) == "String" else Int64).to_arrow())
    try:
        ts = as_utc_timestamps(table.column(ts_name), ts_name, "entity frame")
        if ts.null_count:
            problems.append(
                f"entity time column `{ts_name}` has {ts.null_count} null value(s). Fix: fill or drop those rows."
            )
        cols["__ts"] = ts
    except ValidationError as e:
        problems.append(str(e))
    if problems:
        raise ValidationError(
            "The entity frame was refused:\n" + "\n".join(f"  - {p}" for p in problems)
            if len(problems) > 1
            else f"The entity frame was refused: {problems[0]}"
        )
    return table, pa.table(cols)


def join_training_set(
    offline: OfflineStore,
    entity_data: Any,
    resolved: list[tuple[FeatureRef, FeatureView]],
    as_of_us: int | None,
    full_feature_names: bool,
    timestamp_column: str | None = None,
) -> tuple[pa.Table, list[str]]:
    """The point-in-time join behind `FeatureStore.get_training_set`: (table, output names).

    (The pipeline step that builds a training set is `featureline.models.steps.build_training_set`.)"""
    groups: dict[tuple[str, int], tuple[FeatureView, list[str]]] = {}
    for ref, view in resolved:
        groups.setdefault((view.name, view.version), (view, []))[1].append(ref.feature)
    views = [v for v, _ in groups.values()]
    key_types: dict[str, str] = {}
    for v in views:
        key_types.update(offline.key_types(v.name, v.version))
    table, ent = entity_table(entity_data, views, key_types, timestamp_column)

    triples = [(v.name, v.version, f) for v, feats in groups.values() for f in feats]
    out_names = output_names(triples, full_feature_names)
    outs_by_view: dict[tuple[str, int], list[str]] = {(name, n): [] for name, n, _ in triples}
    for (name, n, _), o in zip(triples, out_names, strict=True):
        outs_by_view[(name, n)].append(o)
    twice = sorted({n for n in out_names if out_names.count(n) > 1})
    taken = sorted(set(out_names) & set(table.column_names))
    if twice and not full_feature_names:
        raise ValidationError(
            f"Output column(s) {', '.join(f'`{c}`' for c in twice)} would clash (two views share a feature name). "
            "Fix: pass full_feature_names=True (columns become `view__feature`)."
        )
    if twice or taken:
        clash = twice or taken
        raise ValidationError(
            f"Output column(s) {', '.join(f'`{c}`' for c in clash)} would clash with "
            + ("each other" if twice else "columns of the entity frame")
            + ". Fix: rename those entity columns"
            + (
                ""
                if full_feature_names
                else ", or pass full_feature_names=True (columns become `view__feature`)"
            )
            + "."
        )

    n = table.num_rows
    result = table
    for v, feats in groups.values():
        outs = outs_by_view[(v.name, v.version)]
        cols: dict[str, Any] = {}
        stored = [(f, o) for f, o in zip(feats, outs, strict=True) if v.feature(f) is not None]
        if stored:
            spec = JoinSpec(
                offline.parts(v.name, v.version, as_of_us),
                v.join_keys,
                stored,
                ttl_us=v.ttl // timedelta(microseconds=1) if v.ttl else None,
                as_of_us=as_of_us,
            )
            joined = offline.join(ent.select(["__rid", *v.join_keys, "__ts"]), spec)
            rid = joined.column("__rid").to_numpy()
            inv = np.empty(n, dtype=np.int64)
            inv[rid] = np.arange(n, dtype=np.int64)
            joined = joined.take(pa.array(inv))
            dtypes = {f.name: f.dtype.to_arrow() for f in v.features}
            for f, o in stored:
                col = joined.column(o)
                cols[o] = col.cast(dtypes[f]) if col.type != dtypes[f] else col
        windowed = [(v.aggregation(f), o) for f, o in zip(feats, outs, strict=True)]
        windowed_aggs = [(a, o) for a, o in windowed if a is not None]
        if windowed_aggs:
            from featureline.aggregation.offline import aggregate_columns

            got = aggregate_columns(
                offline,
                ent.select([*v.join_keys, "__ts"]),
                v,
                [a for a, _ in windowed_aggs],
                as_of_us,
            )
            cols.update({o: c for (_, o), c in zip(windowed_aggs, got, strict=True)})
        for o in outs:
            result = result.append_column(o, cols[o])
    return result, out_names
