"""Validate a whole set of definitions, collecting every problem before raising once."""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta
from typing import Any

from featureline.definitions._aggregation import Aggregation
from featureline.definitions._checks import view_check_problems
from featureline.definitions._objects import (
    RESERVED_PREFIX,
    Entity,
    FeatureService,
    FeatureView,
    FileSource,
)
from featureline.definitions._stream import stream_source_problems
from featureline.errors import DefinitionError, did_you_mean
from featureline.types import DType, compatible

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_identifier(kind: str, name: Any) -> str | None:
    """A problem with a name used as an identifier, or None when it is fine."""
    if not isinstance(name, str) or not name:
        return f"{kind} name `{name!r}` must be a non-empty string. Fix: give it a name like `driver_stats`."
    if name.startswith(RESERVED_PREFIX):
        return f"{kind} name `{name}` is reserved (names starting with `__` are internal). Fix: rename it, e.g. `{name.lstrip('_') or 'x'}`."
    if not _IDENT.match(name):
        safe = re.sub(r"[^A-Za-z0-9_]", "_", name)
        if safe[:1].isdigit():
            safe = "_" + safe
        return f"{kind} name `{name}` is not a safe identifier (letters, digits and `_`, not starting with a digit). Fix: rename it, e.g. `{safe}`."
    return None


def _dupes(kind: str, names: list[str]) -> list[str]:
    return [
        f"Duplicate {kind} name `{n}` (defined {c} times). Fix: give each {kind} a unique name."
        for n, c in Counter(names).items()
        if c > 1
    ]


def validate_definitions(
    entities: list[Entity],
    views: list[FeatureView],
    services: list[FeatureService],
    source_schemas: dict[str, dict[str, DType | None]] | None = None,
    odfvs: list[Any] | None = None,
) -> None:
    """Raise one DefinitionError listing every problem found, or return None.

    `source_schemas` maps a view name to the columns its source has (with their types), when
    the caller could read the source; problems with missing columns are then reported too.
    """
    problems: list[str] = []
    problems += _dupes("entity", [e.name for e in entities])
    problems += _dupes("feature view", [v.name for v in views])
    problems += _dupes("feature service", [s.name for s in services])
    entity_names = {e.name: e for e in entities}

    for e in entities:
        if p := check_identifier("Entity", e.name):
            problems.append(p)
        for k in e.join_keys:
            if p := check_identifier(f"Join key of entity `{e.name}`", k):
                problems.append(p)

    for v in views:
        problems += _view_problems(v, entity_names, (source_schemas or {}).get(v.name))

    view_by_name: dict[str, Any] = {v.name: v for v in views}
    for o in odfvs or []:
        where = f"on-demand feature view `{o.name}`"
        if p := check_identifier("On-demand feature view", o.name):
            problems.append(p)
        if o.name in view_by_name:
            problems.append(f"{where} has the name of a feature view. Fix: give it a unique name.")
        for src in o.source_views:
            if src not in view_by_name:
                problems.append(
                    f"{where} uses unknown feature view `{src}`.{did_you_mean(src, view_by_name)}"
                )
        if not o.schema:
            problems.append(f"{where} declares no outputs. Fix: pass schema=[Field(...)].")
        for f in o.schema:
            if p := check_identifier(f"Output of {where}", f.name):
                problems.append(p)
        view_by_name[o.name] = o
    for s in services:
        if p := check_identifier("Feature service", s.name):
            problems.append(p)
        for ref in s.refs():
            problems += _ref_problems(f"feature service `{s.name}`", ref, view_by_name)

    if problems:
        raise DefinitionError.from_problems(problems)


def _view_problems(
    v: FeatureView, entities: dict[str, Entity], source_cols: dict[str, DType | None] | None
) -> list[str]:
    problems: list[str] = []
    where = f"feature view `{v.name}`"
    if p := check_identifier("Feature view", v.name):
        problems.append(p)
    if not v.entities:
        problems.append(
            f"{where} has no entities. Fix: pass entities=[...] with at least one Entity."
        )
    for e in v.entities:
        if not isinstance(e, Entity):
            problems.append(
                f"{where}: entities must be Entity objects, got `{e!r}`. Fix: pass the Entity, e.g. entities=[driver]."
            )
        elif e.name not in entities:
            problems.append(
                f"{where} uses unknown entity `{e.name}`.{did_you_mean(e.name, entities)} Fix: define the Entity in the repo."
            )
        elif entities[e.name].join_keys != e.join_keys:
            problems.append(
                f"{where} uses entity `{e.name}` with join keys {e.join_keys}, but the repo defines it with {entities[e.name].join_keys}."
            )
    if v.ttl is not None and (not isinstance(v.ttl, timedelta) or v.ttl < timedelta(0)):
        problems.append(
            f"{where} has a bad ttl `{v.ttl!r}`. Fix: use a non-negative timedelta, e.g. ttl=timedelta(days=1), or None for no limit."
        )
    if v.freshness is not None and (
        not isinstance(v.freshness, timedelta) or v.freshness <= timedelta(0)
    ):
        problems.append(
            f"{where} has a bad freshness objective `{v.freshness!r}`. Fix: use a positive "
            "timedelta, e.g. freshness=timedelta(minutes=5), or None for no objective."
        )
    names = [f.name for f in v.schema]
    problems += [f"{where}: {p}" for p in _dupes("field", names)]
    for f in v.schema:
        if p := check_identifier(f"Field in {where}", f.name):
            problems.append(p)
    if not v.features:
        problems.append(f"{where} has no features. Fix: list at least one Field in schema=[...].")
    for k in v.join_keys:
        if k in {f.name for f in v.features}:
            problems.append(f"{where}: `{k}` is both a join key and a feature.")
    problems += _aggregation_problems(v, where)
    problems += stream_source_problems(v, where)
    problems += view_check_problems(v, where, check_identifier)
    src = v.source
    if src is not None and not isinstance(src, FileSource):
        problems.append(f"{where}: source must be a FileSource, got `{type(src).__name__}`.")
    elif src is not None and source_cols is not None:
        needed = [
            src.timestamp_field,
            *v.join_keys,
            *([src.created_timestamp_field] if src.created_timestamp_field else []),
        ]
        for col in needed:
            if col not in source_cols:
                problems.append(
                    f"{where}: column `{col}` is missing from source `{src.path}`.{did_you_mean(col, source_cols)} Found: {', '.join(sorted(source_cols))}."
                )
        for f in v.schema:
            if f.name not in source_cols:
                problems.append(
                    f"{where}: field `{f.name}` is missing from source `{src.path}`.{did_you_mean(f.name, source_cols)} Fix: add the column or remove the field."
                )
            else:
                found = source_cols[f.name]
                if found is not None and not compatible(f.dtype, found):
                    problems.append(
                        f"{where}: field `{f.name}` is declared {f.dtype} but source `{src.path}` has {found}. Fix: change the dtype or the data."
                    )
    return problems


def _aggregation_problems(v: FeatureView, where: str) -> list[str]:
    """Every problem of the view's aggregations at once (DESIGN §3, issue 10 item 1)."""
    if not v.aggregations and v.tile_us == 0:
        return []
    out: list[str] = []
    if not isinstance(v.tile, timedelta) or v.tile < timedelta(0):
        out.append(
            f"{where} has a bad tile `{v.tile!r}`. Fix: use a non-negative timedelta, e.g. "
            "tile=timedelta(minutes=1), or timedelta(0) for exact windows."
        )
    tile = v.tile_us if isinstance(v.tile, timedelta) and v.tile > timedelta(0) else 0
    fields = {f.name: f for f in v.features}
    taken = set(fields) | set(v.join_keys)
    seen: set[str] = set()
    for a in v.aggregations:
        if not isinstance(a, Aggregation):
            out.append(
                f"{where}: aggregations must be Aggregation objects, got `{a!r}`. Fix: write "
                'Aggregation("amount", "sum", timedelta(hours=1)).'
            )
            continue
        what = f"{where}, aggregation `{a.name}` ({a.function} of `{a.column}`)"
        if p := check_identifier(f"Aggregation in {where}", a.name):
            out.append(p)
        if a.name in taken:
            out.append(f"{what}: the name is already a field of the view. Fix: pass name=...")
        elif a.name in seen:
            out.append(f"{what}: two aggregations have this name. Fix: pass distinct name=...")
        seen.add(a.name)
        col = fields.get(a.column)
        if col is None:
            out.append(
                f"{what}: column `{a.column}` is not a feature of the view."
                f"{did_you_mean(a.column, list(fields))} Features: {', '.join(fields) or 'none'}."
            )
        # function, column type and params: the kernel's own checks (imported here, not at
        # `import featureline`: the kernel needs numpy and pyarrow)
        from featureline.aggregation.kernel import problems

        ctype = str(col.dtype) if col is not None else "Float64"
        out += [f"{what}: {p}" for p in problems(a.function, ctype, a.params)]
        if a.window is not None:
            if not isinstance(a.window, timedelta) or a.window <= timedelta(0):
                out.append(
                    f"{what}: bad window `{a.window!r}`. Fix: use a positive timedelta, e.g. "
                    "window=timedelta(hours=1), or None for the whole history."
                )
            elif tile and (a.window_us or 0) % tile:
                out.append(
                    f"{what}: the window {a.window} is not a multiple of the view's tile "
                    f"{v.tile}. Fix: change the window or the tile (e.g. tile=timedelta(minutes=1))."
                )
    return out


def _ref_problems(where: str, ref: str, views: dict[str, FeatureView]) -> list[str]:
    if ref.count(":") != 1:
        return [f'{where}: bad feature reference `{ref}`. Fix: write "view:feature".']
    view, feat = ref.split(":")
    view = view.split("@")[0]
    if view not in views:
        return [f"{where} references unknown feature view `{view}`.{did_you_mean(view, views)}"]
    obj = views[view]  # a feature view, or an on-demand view (its outputs)
    names = getattr(obj, "feature_names", None) or [f.name for f in obj.features]
    if feat not in names:
        return [
            f"{where} references unknown feature `{ref}`.{did_you_mean(feat, names)} Features of `{view}`: {', '.join(names)}."
        ]
    return []
