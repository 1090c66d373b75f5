"""Online reads: entity rows in, feature vectors with per-feature statuses out (DESIGN §3)."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from featureline._keys import INT64_MAX, INT64_MIN, key_out_of_range, missing_key, wrong_key_type
from featureline.definitions import FeatureRef, FeatureView
from featureline.errors import ValidationError
from featureline.online._codec import ViewCodec, key_encoder, table_name
from featureline.online.tiles import TileReader, tile_dtype

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from featureline.online._store import OnlineStore


class Status(StrEnum):
    PRESENT = "PRESENT"
    NOT_FOUND = "NOT_FOUND"
    EXPIRED = "EXPIRED"
    STALE = "STALE"  # present, but the view misses its freshness objective


_PRESENT, _NOT_FOUND, _EXPIRED = "PRESENT", "NOT_FOUND", "EXPIRED"  # plain str on the hot path


@dataclass
class OnlineResponse:
    """Feature vectors for entity rows: `.to_dict()`, `.to_arrow()`, `.to_pandas()`, `.statuses`."""

    keys: dict[str, list[Any]]
    values: dict[str, list[Any]]
    statuses: dict[str, list[str]]
    event_us: dict[str, list[int | None]]  # event time of the value read, microseconds
    dtypes: dict[str, Any] = field(default_factory=dict)

    @property
    def event_timestamps(self) -> dict[str, list[datetime | None]]:
        from featureline.offline.store import us_to_dt

        conv: dict[int, list[datetime | None]] = {}
        out = {}
        for name, evs in self.event_us.items():
            if id(evs) not in conv:  # features of one view share one list
                conv[id(evs)] = [us_to_dt(e) if e is not None else None for e in evs]
            out[name] = conv[id(evs)]
        return out

    @property
    def feature_names(self) -> list[str]:
        return list(self.values)

    def to_dict(self) -> dict[str, list[Any]]:
        return {**self.keys, **self.values}

    def to_arrow(self) -> pa.Table:
        import pyarrow as pa

        cols: dict[str, Any] = {k: pa.array(v) for k, v in self.keys.items()}
        for name, vals in self.values.items():
            t = self.dtypes.get(name)
            cols[name] = pa.array(vals, type=t.to_arrow() if t is not None else None)
        return pa.table(cols)

    def to_pandas(self) -> pd.DataFrame:
        return self.to_arrow().to_pandas()


def entity_columns(entity_rows: Any) -> dict[str, list[Any]]:
    """list of dicts / dict of columns / Arrow table -> dict of equal-length columns."""
    if isinstance(entity_rows, dict):
        cols = {k: list(v) if isinstance(v, list | tuple) else [v] for k, v in entity_rows.items()}
    elif isinstance(entity_rows, list):
        if not entity_rows:
            raise ValidationError(
                'No entity rows given. Fix: pass entity_rows=[{"driver_id": 1001}, ...].'
            )
        names = list(entity_rows[0])
        for i, r in enumerate(entity_rows):
            if not isinstance(r, dict) or list(r) != names:
                raise ValidationError(
                    f"Entity row {i} `{r!r}` does not have the keys {names} of the first row. Fix: give every row the same keys."
                )
        cols = {k: [r[k] for r in entity_rows] for k in names}
    elif hasattr(entity_rows, "to_pydict"):
        cols = entity_rows.to_pydict()
    elif hasattr(entity_rows, "to_dict") and type(entity_rows).__module__.startswith("pandas"):
        cols = {k: list(v) for k, v in entity_rows.to_dict(orient="list").items()}
    else:
        raise ValidationError(
            f"Unsupported entity rows of type `{type(entity_rows).__name__}`. Fix: pass a list of dicts, a dict of columns or a pyarrow Table."
        )
    lengths = {len(v) for v in cols.values()}
    if len(lengths) > 1:
        raise ValidationError(
            f"Entity columns have different lengths {sorted(lengths)}. Fix: give every key column one value per entity."
        )
    return cols


def _check_keys(
    cols: dict[str, list[Any]], keys: list[str], key_types: dict[str, str], views: list[FeatureView]
) -> None:
    problems = []
    for k in keys:
        if k not in cols:
            problems.append(missing_key(k, [v.name for v in views if k in v.join_keys], cols))
            continue
        want = key_types.get(k)
        ok_type = (int,) if want == "Int64" else (str,) if want == "String" else (int, str)
        for v in cols[k]:
            if not isinstance(v, ok_type) or isinstance(v, bool):
                problems.append(
                    wrong_key_type(k, f"value `{v!r}` of type {type(v).__name__}", want)
                )
                break
            if type(v) is int and not INT64_MIN <= v <= INT64_MAX:
                problems.append(key_out_of_range(k, v))
                break
    if problems:
        raise ValidationError("Bad entity rows: " + " ".join(problems))


class PlanCache:
    """A least-recently-used map of read plans by feature list: at most `maxsize` entries, and at
    most `max_refs` feature references in their keys together (64 a plan on average by default).

    Clients choose the feature lists, so a plain dict grew with every distinct list sent, by the
    plan (about 4 KB) plus the key: the list itself, whose strings come from the request (a list
    of 1,000 refs keeps about 80 KB). A key heavier than an eighth of `max_refs` is not kept (its
    request pays for resolving, as it pays for parsing). Lock-free: each OrderedDict call is
    atomic under the GIL, and the races between two calls (a key evicted between `get` and
    `move_to_end`, two inserts evicting at once) only cost a rebuilt plan, never a wrong one. A
    hit costs about 0.2 us more than a dict's."""

    __slots__ = ("_data", "_weights", "max_refs", "maxsize", "refs")

    def __init__(self, maxsize: int = 1024, max_refs: int | None = None) -> None:
        if maxsize < 1:
            raise ValidationError(
                f"The read-plan cache size must be at least 1, got {maxsize}. Fix: set `server.read_plan_cache` to a positive integer."
            )
        self.maxsize = maxsize
        self.max_refs = max_refs if max_refs is not None else 64 * maxsize
        self.refs = 0  # feature references in the keys held
        self._data: OrderedDict[Any, Any] = OrderedDict()
        self._weights: dict[Any, int] = {}

    def get(self, key: Any) -> Any:
        data = self._data
        value = data.get(key)
        if value is not None:
            try:  # noqa: SIM105 - contextlib.suppress costs more than the whole lookup
                data.move_to_end(key)
            except KeyError:  # evicted by another thread meanwhile
                pass
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        weight = (
            1 + sum(len(k) for k in key if isinstance(k, tuple)) if isinstance(key, tuple) else 1
        )
        if weight > self.max_refs // 8 + 1:
            return
        data, weights = self._data, self._weights
        old = weights.get(key)
        data[key] = value
        weights[key] = weight
        self.refs += weight - (old or 0)
        while len(data) > self.maxsize or (self.refs > self.max_refs and len(data) > 1):
            try:
                gone, _ = data.popitem(last=False)
            except KeyError:  # emptied by another thread meanwhile
                break
            self.refs -= weights.pop(gone, 0)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: Any) -> bool:
        return key in self._data

    def clear(self) -> None:
        self._data.clear()
        self._weights.clear()
        self.refs = 0


@dataclass(frozen=True)
class _Group:
    """One view version's share of a read, prepared once per feature list (the hot path)."""

    view: FeatureView
    table: str
    keys: tuple[str, ...]
    decode: Any
    enc_key: Any
    pos: tuple[int, ...]
    outs: tuple[str, ...]
    dtypes: tuple[Any, ...]
    ttl_us: int


@dataclass(frozen=True)
class _TileGroup:
    """One view version's aggregation features in a read (merged from online tiles)."""

    reader: TileReader
    keys: tuple[str, ...]
    enc_key: Any
    outs: tuple[str, ...]
    dtypes: tuple[Any, ...]


@dataclass(frozen=True)
class ReadPlan:
    groups: tuple[_Group, ...]
    keys: tuple[str, ...]
    views: tuple[FeatureView, ...]
    key_types: dict[str, str]
    tiles: tuple[_TileGroup, ...] = ()
    fresh_views: bool = False  # whether any view read declares a freshness objective

    def outputs_by_view(self) -> list[tuple[FeatureView, tuple[str, ...]]]:
        return [(g.view, g.outs) for g in self.groups] + [
            (t.reader.view, t.outs) for t in self.tiles
        ]


def make_plan(
    resolved: list[tuple[FeatureRef, FeatureView]],
    key_types: dict[str, str],
    full_feature_names: bool,
) -> ReadPlan:
    """Group the features by view version and prepare codecs, table names and output names."""
    by_view: dict[tuple[str, int], tuple[FeatureView, list[str]]] = {}
    for ref, view in resolved:
        by_view.setdefault((view.name, view.version), (view, []))[1].append(ref.feature)
    groups, tiles, seen = [], [], set()
    for view, all_feats in by_view.values():
        codec = ViewCodec.for_view(view)
        index = {name: i for i, name in enumerate(codec.names)}
        for o in (f"{view.name}__{f}" if full_feature_names else f for f in all_feats):
            if o in seen:
                raise ValidationError(
                    f"Output name `{o}` is requested twice (two views share a feature name). Fix: pass full_feature_names=True."
                )
            seen.add(o)
        windowed = [f for f in all_feats if view.aggregation(f) is not None]
        if windowed:
            tiles.append(
                _TileGroup(
                    TileReader(view, windowed),
                    tuple(view.join_keys),
                    key_encoder(view.join_keys, key_types),
                    tuple(f"{view.name}__{f}" if full_feature_names else f for f in windowed),
                    tuple(tile_dtype(view, view.aggregation(f)) for f in windowed),
                )
            )
        feats = [f for f in all_feats if view.aggregation(f) is None]
        if not feats:
            continue
        outs = tuple(f"{view.name}__{f}" if full_feature_names else f for f in feats)
        ftypes = {f.name: f.dtype for f in view.features}
        groups.append(
            _Group(
                view,
                table_name(view),
                tuple(view.join_keys),
                codec.decoder(),
                key_encoder(view.join_keys, key_types),
                tuple(index[f] for f in feats),
                outs,
                tuple(ftypes[f] for f in feats),
                view.ttl // timedelta(microseconds=1) if view.ttl else 0,
            )
        )
    views = tuple(v for v, _ in by_view.values())
    keys = tuple(dict.fromkeys(k for v in views for k in v.join_keys))
    fresh = any(v.freshness is not None for v in views)
    return ReadPlan(tuple(groups), keys, views, key_types, tuple(tiles), fresh)


def read_online(
    store: OnlineStore,
    resolved: list[tuple[FeatureRef, FeatureView]],
    entity_rows: Any,
    key_types: dict[str, str],
    full_feature_names: bool = False,
    now_us: int | None = None,
) -> OnlineResponse:
    """Read features for every entity row; TTL is applied at read time (value null, EXPIRED)."""
    return read_with_plan(
        store, make_plan(resolved, key_types, full_feature_names), entity_rows, now_us
    )


def read_with_plan(
    store: OnlineStore, plan: ReadPlan, entity_rows: Any, now_us: int | None = None
) -> OnlineResponse:
    cols = entity_columns(entity_rows)
    _check_keys(cols, list(plan.keys), plan.key_types, list(plan.views))
    n = len(next(iter(cols.values()))) if cols else 0
    now = time.time_ns() // 1000 if now_us is None else now_us
    values: dict[str, list[Any]] = {}
    statuses: dict[str, list[str]] = {}
    stamps: dict[str, list[int | None]] = {}
    dtypes: dict[str, Any] = {}
    for g in plan.groups:
        enc_key = g.enc_key
        if len(g.keys) == 1:
            enc = [enc_key(v) for v in cols[g.keys[0]]]
        else:
            enc = [enc_key(*vals) for vals in zip(*(cols[k] for k in g.keys), strict=True)]
        raws = store.read(g.table, enc, now)
        oldest = now - g.ttl_us if g.ttl_us else None
        pos = g.pos
        col_vals: list[list[Any]] = [[None] * n for _ in pos]
        col_status: list[list[str]] = [[_NOT_FOUND] * n for _ in pos]
        col_ts: list[int | None] = [None] * n
        decode = g.decode
        for r, raw in enumerate(raws):
            if raw is None:
                continue
            ev, row = decode(raw)
            col_ts[r] = ev
            if oldest is not None and ev < oldest:
                for st in col_status:
                    st[r] = _EXPIRED
            else:
                for j, p in enumerate(pos):
                    col_vals[j][r] = row[p]
                    col_status[j][r] = _PRESENT
        for j, o in enumerate(g.outs):
            values[o], statuses[o], stamps[o], dtypes[o] = (
                col_vals[j],
                col_status[j],
                col_ts,
                g.dtypes[j],
            )
    for tg in plan.tiles:
        if len(tg.keys) == 1:
            enc = [tg.enc_key(v) for v in cols[tg.keys[0]]]
        else:
            enc = [tg.enc_key(*vals) for vals in zip(*(cols[k] for k in tg.keys), strict=True)]
        got, found = tg.reader.read(store, enc, now)
        status = [_PRESENT if f else _NOT_FOUND for f in found]
        for o, col, dt in zip(tg.outs, got, tg.dtypes, strict=True):
            values[o], statuses[o], stamps[o], dtypes[o] = col, list(status), [None] * n, dt
    return OnlineResponse({k: cols[k] for k in plan.keys}, values, statuses, stamps, dtypes)
