"""THE read paths (DESIGN §2): every read of feature values goes through one of two functions.

`training_set` and `online_features` both do, in order: resolve the references against a
catalog → check the principal (a hook, outside any plan cache: plans are cached by feature
list, not by principal; permissions plug in here) → plan → engine (the offline engine's
point-in-time join, or the online store) → on-demand views (`on_demand`, the one merge of
their outputs) → result. `FeatureStore` delegates to them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from featureline.definitions import FeatureService, FeatureView
from featureline.errors import ValidationError
from featureline.online import entity_columns, read_with_plan  # the hot path: no import per call

if TYPE_CHECKING:
    from featureline.catalog import Catalog
    from featureline.offline.store import OfflineStore
    from featureline.offline.training import TrainingSet
    from featureline.online import OnlineResponse, OnlineStore


@dataclass(frozen=True)
class ReadSource:
    """What a read reaches: the offline store, the online store (opened on first use), the repo's code."""

    offline: OfflineStore
    online: Callable[[], OnlineStore]
    load_repo: Callable[[], object]
    staleness: Any = None  # a freshness.StalenessCache, made on first use

    def newest_servable_us(self, view: FeatureView) -> int | None:
        """The newest event time written online for `view` (re-read at most every second)."""
        from featureline.freshness import StalenessCache, log_dir, view_key

        cache = self.staleness
        if cache is None:
            cache = StalenessCache(log_dir(self.offline.root))
            object.__setattr__(self, "staleness", cache)
        return cache.newest_event_us(view_key(view.name, view.version))


def mark_stale(src: ReadSource, plan: Any, resp: OnlineResponse, now_us: int) -> None:
    """Values of a view that misses its freshness objective read as `STALE` (DESIGN §3)."""
    for view, outs in plan.outputs_by_view():
        objective = view.freshness_us
        if objective is None:
            continue
        newest = src.newest_servable_us(view)
        if newest is None or now_us - newest <= objective:
            continue
        for o in outs:
            resp.statuses[o] = ["STALE" if s == "PRESENT" else s for s in resp.statuses[o]]


def check_principal(
    principal: Any,
    action: str,
    views: Sequence[FeatureView],
    features: Callable[[], list[tuple[FeatureView, Any]]] | None = None,
    cache_key: Any = None,
    current: Any = None,
    service: FeatureService | None = None,
) -> None:
    """Whether `principal` may `action` (read_offline / read_online) these views and read their
    `features` (a callable: (view, feature names) pairs, for the pii check; called only when the
    decision is not cached under `cache_key`; `current`: the current catalog's version, when the
    read holds that catalog). `principal` is None with auth off: nothing to do;
    else a `featureline.auth.Caller` (PermissionDeniedError, 403)."""
    if principal is not None:
        principal.check_read(action, views, features, cache_key, current, service)


def _service(cat: Catalog, features: Any) -> FeatureService | None:
    """The feature service a read names (an object, or a name: the registered one), else None."""
    if isinstance(features, FeatureService):
        return features
    if isinstance(features, str) and ":" not in features:
        return cat.services.get(features)
    return None


def _plan_features(plan: Any, hidden: Any) -> list[tuple[FeatureView, list[str]]]:
    """(view, feature names) read by an online plan (and its on-demand inputs)."""
    out = []
    for p in (plan, hidden):
        if p is None:
            continue
        for view, outs in p.outputs_by_view():
            prefix = f"{view.name}__"
            out.append((view, [o.removeprefix(prefix) for o in outs]))
    return out


def on_demand(
    cat: Catalog,
    od: list[Any],
    inputs: dict[str, list[Any]],
    request: dict[str, list[Any]],
    n: int,
    load_repo: Callable[[], object],
    full_feature_names: bool,
) -> list[tuple[str, list[Any], Any]]:
    """Run the on-demand views `od` over their inputs: (output name, values, dtype) per feature."""
    from featureline._ondemand import compute

    return [
        (name, values, dtype)
        for name, (values, dtype) in compute(
            cat, od, inputs, request, n, load_repo, full_feature_names
        ).items()
    ]


def training_set(
    src: ReadSource,
    cat: Catalog,
    entity_df: Any,
    features: Any,
    as_of_us: int | None,
    full_feature_names: bool,
    timestamp_column: str | None,
    principal: Any = None,
) -> TrainingSet:
    """A point-in-time correct training set (DESIGN §3) with `cat`'s definitions, as of `as_of_us`."""
    import pyarrow as pa

    from featureline._frames import to_arrow
    from featureline._ondemand import hidden_inputs, split
    from featureline.offline.store import us_to_dt
    from featureline.offline.training import TrainingSet, join_training_set

    resolved = cat.resolve(features)
    plain, od = split(resolved)
    hidden = hidden_inputs(cat, od) if od else []
    if principal is not None:
        pairs = [*plain, *hidden]
        check_principal(
            principal,
            "read_offline",
            [v for _, v in pairs],
            lambda: [(v, [r.feature]) for r, v in pairs],
            service=_service(cat, features),
        )
    if od:
        entity_df = to_arrow(entity_df, "entity frame")
    table, names = join_training_set(
        src.offline, entity_df, plain, as_of_us, full_feature_names, timestamp_column
    )
    if od:
        inputs, _ = join_training_set(
            src.offline, entity_df, hidden, as_of_us, True, timestamp_column
        )
        cols = {c: inputs.column(c).to_pylist() for c in inputs.column_names}
        for name, values, dtype in on_demand(
            cat, od, cols, cols, table.num_rows, src.load_repo, full_feature_names
        ):
            table = table.append_column(name, _typed(name, values, dtype, pa))
            names.append(name)
    return TrainingSet(
        table,
        [str(r) for r, _ in resolved],
        us_to_dt(as_of_us) if as_of_us is not None else None,
        cat.version,
        {"columns": names},
    )


def online_features(
    src: ReadSource,
    cat: Catalog,
    plans: Any,
    features: Any,
    entity_rows: Any,
    full_feature_names: bool,
    principal: Any = None,
    live: bool = False,
) -> OnlineResponse:
    """Feature vectors from the online store; `plans` caches prepared read plans by feature list.
    `live`: the request's HTTP hook checked `principal`'s credential alive just now (see
    `featureline.auth.Caller.check_read`)."""
    if isinstance(features, FeatureService):
        hkey: tuple[Any, ...] = (
            "service",
            features.name,
            tuple(features.refs()),
            full_feature_names,
        )
    else:
        hkey = (features if isinstance(features, str) else tuple(features), full_feature_names)
    plan = plans.get(hkey)
    if plan is None:
        plan = _online_plan(src, cat, features, full_feature_names)
        if plan[3]:
            plans[hkey] = plan  # key types are known once data exists: then the plan is final
    read_plan, od, hidden_plan, _, held = plan
    if principal is not None:  # decided once per (principal, plan, permissions): a dict lookup
        # what the check needs of this plan (views, pii pairs, the service named), made once per
        # plan and catalog (the service a name means is the catalog's)
        check = held[0]
        if check is None or check.catalog is not cat:
            check = held[0] = ReadCheck(cat, features, read_plan, hidden_plan, hkey)
        principal.check_plan(check, live)
    online = src.online()
    now_us = time.time_ns() // 1000
    resp = read_with_plan(online, read_plan, entity_rows, now_us)
    if read_plan.fresh_views:
        mark_stale(src, read_plan, resp, now_us)
    if od and hidden_plan is not None:
        rows = entity_columns(entity_rows)
        hid = read_with_plan(online, hidden_plan, rows)
        n = len(next(iter(rows.values()))) if rows else 0
        for name, values, dtype in on_demand(
            cat, od, hid.values, rows, n, src.load_repo, full_feature_names
        ):
            resp.values[name] = values
            resp.statuses[name] = ["PRESENT" if v is not None else "NOT_FOUND" for v in values]
            resp.event_us[name] = [None] * n
            resp.dtypes[name] = dtype
        for key, col in hid.keys.items():
            resp.keys.setdefault(key, col)
    return resp


class ReadCheck:
    """The arguments of the principal check of one online read plan under catalog `catalog`:
    made once per plan and catalog; a caller keeps the decisions it was allowed by it (by
    identity: a new catalog or plan is a new ReadCheck, decided anew)."""

    __slots__ = ("action", "cache_key", "catalog", "features", "service", "version", "views")

    def __init__(
        self, cat: Catalog, features: Any, read_plan: Any, hidden_plan: Any, cache_key: Any
    ) -> None:
        self.action = "read_online"
        self.catalog = cat
        self.version = cat.version  # the façade's current catalog: also the permissions' version
        self.cache_key = cache_key
        self.views: Sequence[FeatureView] = (
            read_plan.views if hidden_plan is None else (*read_plan.views, *hidden_plan.views)
        )
        self.features: Callable[[], list[tuple[FeatureView, list[str]]]] = lambda: _plan_features(
            read_plan, hidden_plan
        )
        self.service = _service(cat, features)


def _online_plan(
    src: ReadSource, cat: Catalog, features: Any, full_feature_names: bool
) -> tuple[Any, list[Any], Any, bool, list[Any]]:
    """(read plan, on-demand views, their inputs' plan, final, [its principal check's arguments,
    made on the first checked read])."""
    from featureline._ondemand import hidden_inputs, split
    from featureline.online import make_plan

    unique = (
        list(dict.fromkeys(features)) if isinstance(features, list | tuple) else features
    )  # resolve reads a ref once anyway
    plain, od = split(cat.resolve(unique))
    hidden = hidden_inputs(cat, od) if od else []
    key_types: dict[str, str] = {}
    for _, v in [*plain, *hidden]:
        key_types.update({k: str(t) for k, t in v.key_fields.items()})
        key_types.update(src.offline.key_types(v.name, v.version))
    final = all(k in key_types for _, v in [*plain, *hidden] for k in v.join_keys)
    return (
        make_plan(plain, key_types, full_feature_names),
        od,
        make_plan(hidden, key_types, True) if od else None,
        final,
        [None],
    )


def _typed(name: str, values: list[Any], dtype: Any, pa: Any) -> Any:
    try:
        return pa.array(values, type=dtype.to_arrow())
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as e:
        raise ValidationError(
            f"On-demand output `{name}` does not fit its declared type {dtype}: {e}. Fix: return {dtype} values or change the Field dtype."
        ) from e
