"""Plan a registry change: diff the stored catalog against the definitions. Pure, no I/O.

A *snapshot* is `{"project", "entities": {name: dict}, "views": {name: [v1, v2, ...]},
"services": {name: dict}}`; the last entry of a view's list is its current version.

Breaking changes to a view (its entities or join keys, or the dtype of an existing field)
are refused unless the view is named in `new_versions`, which appends a new version and
keeps the old ones readable. An entity whose join keys change (or which is removed) while
a stored view version still uses it is always refused: old versions would silently change
their keys. Everything else (fields added/removed, ttl, owner, tags, source...) is an
in-place update of the current version.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from featureline.errors import ConflictError, NotFoundError, ValidationError, unknown

Snapshot = dict[str, Any]
Change = dict[str, Any]
KINDS = ("entity", "view", "service", "on-demand view", "permission")
_SYMBOL = {"add": "+", "update": "~", "new_version": "~", "remove": "-"}
_KNOWN_VIEW_KEYS = {"name", "version", "entities", "schema", "source", "ttl_seconds"}


@dataclass
class Plan:
    """What `apply` would do: the changes, the snapshot to store, and refused changes.

    `base_version` is the registry version the plan was made against (None: the empty
    registry); `apply` stores the plan only on top of it (a compare-and-swap), re-applying it
    on a newer version only when the changes commute (see `_rebase.py`).
    """

    changes: list[Change]
    snapshot: Snapshot
    breaking: list[str]
    base_version: int | None = None

    @property
    def is_empty(self) -> bool:
        return not self.changes

    def render(self) -> str:
        """A readable plan, like `terraform plan`."""
        if self.is_empty:
            return "No changes: the registry already matches the definitions."
        lines = [render_change(c) for c in self.changes]
        counts = {op: sum(c["op"] == op for c in self.changes) for op in _SYMBOL}
        changed = counts["update"] + counts["new_version"]
        lines += [
            "",
            f"Plan: {counts['add']} to add, {changed} to change, {counts['remove']} to remove.",
        ]
        if self.breaking:
            lines += ["", f"Refused: {len(self.breaking)} breaking change(s):"]
            lines += [f"  - {m}" for m in self.breaking]
        return "\n".join(lines)


def render_change(change: Change) -> str:
    """One plan line: `~ view driver_stats (ttl: 1 day -> 2 days)`."""
    name = change["name"]
    if change["op"] == "new_version":
        v = change.get("version")
        name += f" v{v - 1} -> v{v}" if isinstance(v, int) else " (new version)"
    line = f"{_SYMBOL.get(change['op'], '?')} {change['kind']} {name}"
    if change.get("details"):
        line += f" ({'; '.join(change['details'])})"
    if change.get("breaking") and change["op"] == "update":
        line += "  [breaking]"
    return line


def check(plan: Plan) -> None:
    """Raise ConflictError explaining every refused breaking change and its fix."""
    if plan.breaking:
        lines = [f"{len(plan.breaking)} breaking change(s) cannot be applied as asked:"]
        lines += [f"  - {m}" for m in plan.breaking]
        raise ConflictError("\n".join(lines))


# ---- snapshot helpers -------------------------------------------------------------------------


def _section(snapshot: Mapping[str, Any] | None, key: str, what: str) -> dict[str, Any]:
    if snapshot is None:
        return {}
    if not isinstance(snapshot, Mapping):
        raise ValidationError(
            f"The {what} snapshot must be a dict, got `{type(snapshot).__name__}`. "
            'Fix: pass {"project", "entities", "views", "services"}.'
        )
    value = snapshot.get(key) or {}
    if not isinstance(value, Mapping):
        raise ValidationError(
            f"`{key}` of the {what} snapshot must map names to definitions, got "
            f"`{type(value).__name__}`."
        )
    return dict(value)


def _versions(entry: Any) -> list[dict[str, Any]]:
    """A view's version list (a bare dict counts as one version)."""
    return [dict(entry)] if isinstance(entry, Mapping) else list(entry)


def view_at(snapshot: Mapping[str, Any], name: str, version: int | None = None) -> dict[str, Any]:
    """A view's definition dict: the current version, or the given one."""
    views = _section(snapshot, "views", "registry")
    if name not in views:
        raise NotFoundError(
            unknown("feature view", name, views)
            + " Fix: check the name, or run `featureline apply` to register it."
        )
    entries = _versions(views[name])
    if version is None:
        return entries[-1]
    for entry in entries:
        if entry.get("version") == version:
            return entry
    valid = ", ".join(f"`{e.get('version')}`" for e in entries)
    raise NotFoundError(
        f"Feature view `{name}` has no version `{version}`. Valid: {valid}. "
        f'Fix: reference e.g. "{name}@v{entries[-1].get("version")}:feature".'
    )


def join_keys(view: Mapping[str, Any], entities: Mapping[str, Any]) -> list[str]:
    """The view's join keys, resolved through the entity definitions."""
    keys: list[str] = []
    for ent in view.get("entities", []):
        found = entities.get(ent)
        for k in found.get("join_keys", [ent]) if found else [ent]:
            if k not in keys:
                keys.append(k)
    return keys


# ---- formatting -------------------------------------------------------------------------------


def _q(value: Any) -> str:
    return "none" if value in (None, "") else f"`{value}`"


def _qlist(values: Iterable[Any]) -> str:
    return "[" + ", ".join(f"`{v}`" for v in values) + "]"


def fmt_seconds(seconds: float | None) -> str:
    """86400 -> "1 day", 5400 -> "90 minutes", None -> "none"."""
    if seconds is None:
        return "none"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds and seconds % size == 0:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    n_s = int(seconds) if float(seconds).is_integer() else seconds
    return f"{n_s} second{'s' if n_s != 1 else ''}"


def _tags_details(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    out = [f"{prefix}tags: added `{k}`=`{new[k]}`" for k in new if k not in old]
    changed = [k for k in new if k in old and old[k] != new[k]]
    out += [f"{prefix}tags: `{k}`: `{old[k]}` -> `{new[k]}`" for k in changed]
    out += [f"{prefix}tags: removed `{k}`" for k in old if k not in new]
    return out


def _common_details(old: Mapping[str, Any], new: Mapping[str, Any], skip: set[str]) -> list[str]:
    """Details for owner/description/tags and any key not handled by the caller."""
    out: list[str] = []
    for key in [*old, *(k for k in new if k not in old)]:
        if key in skip or old.get(key) == new.get(key):
            continue
        if key == "description":
            out.append("description changed")
        elif key == "tags":
            out += _tags_details(old.get(key) or {}, new.get(key) or {})
        else:
            out.append(f"{key}: {_q(old.get(key))} -> {_q(new.get(key))}")
    return out


# ---- per-kind diffs ---------------------------------------------------------------------------


def _fields_details(
    old: list[dict[str, Any]], new: list[dict[str, Any]]
) -> tuple[list[str], list[str]]:
    before = {f["name"]: f for f in old}
    after = {f["name"]: f for f in new}
    details: list[str] = []
    breaking: list[str] = []
    for name, f in after.items():
        if name not in before:
            details.append(f"added field `{name}` ({f.get('dtype')})")
            continue
        o = before[name]
        if o.get("dtype") != f.get("dtype"):
            text = f"field `{name}`: {o.get('dtype')} -> {f.get('dtype')}"
            details.append(text)
            breaking.append(text)
        if o.get("description") != f.get("description"):
            details.append(f"field `{name}`: description changed")
        if o.get("constraints") != f.get("constraints"):  # featureline.quality: not breaking
            details.append(
                f"field `{name}`: constraints {_checks(o.get('constraints'))} -> {_checks(f.get('constraints'))}"
            )
        details += _tags_details(o.get("tags") or {}, f.get("tags") or {}, f"field `{name}`: ")
    details += [f"removed field `{n}`" for n in before if n not in after]
    common = [n for n in after if n in before]
    if common != [n for n in before if n in after]:
        details.append("field order changed")
    return details, breaking


def _checks(constraints: list[dict[str, Any]] | None) -> str:
    if not constraints:
        return "none"
    return ", ".join(
        f"{c['kind']} {c['value']!r}" if "value" in c else str(c["kind"]) for c in constraints
    )


def _source_details(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[str]:
    if old == new:
        return []
    if not old or not new:
        return [f"source: {_q((old or {}).get('path'))} -> {_q((new or {}).get('path'))}"]
    keys = [k for k in [*old, *(k for k in new if k not in old)] if old.get(k) != new.get(k)]
    return [f"source.{k}: {_q(old.get(k))} -> {_q(new.get(k))}" for k in keys]


def view_details(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    old_entities: Mapping[str, Any],
    new_entities: Mapping[str, Any],
) -> tuple[list[str], list[str]]:
    """(details, breaking reasons) of a change from view dict `old` to `new`."""
    details: list[str] = []
    breaking: list[str] = []
    if list(old.get("entities", [])) != list(new.get("entities", [])):
        text = f"entities: {_qlist(old.get('entities', []))} -> {_qlist(new.get('entities', []))}"
        details.append(text)
        breaking.append(text)
    old_keys, new_keys = join_keys(old, old_entities), join_keys(new, new_entities)
    if old_keys != new_keys:
        text = f"join keys: {_qlist(old_keys)} -> {_qlist(new_keys)}"
        details.append(text)
        breaking.append(text)
    fields, broken = _fields_details(old.get("schema", []), new.get("schema", []))
    details += fields
    breaking += broken
    if old.get("ttl_seconds") != new.get("ttl_seconds"):
        details.append(
            f"ttl: {fmt_seconds(old.get('ttl_seconds'))} -> {fmt_seconds(new.get('ttl_seconds'))}"
        )
    details += _source_details(old.get("source"), new.get("source"))
    details += _common_details(old, new, _KNOWN_VIEW_KEYS)
    return details, breaking


def _plain_details(kind: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    details: list[str] = []
    if kind == "entity" and old.get("join_keys") != new.get("join_keys"):
        details.append(
            f"join keys: {_qlist(old.get('join_keys', []))} -> {_qlist(new.get('join_keys', []))}"
        )
    if kind == "service":
        before, after = list(old.get("features", [])), list(new.get("features", []))
        details += [f"added feature `{f}`" for f in after if f not in before]
        details += [f"removed feature `{f}`" for f in before if f not in after]
        if details == [] and before != after:
            details.append("feature order changed")
    if kind == "on-demand view" and old.get("code_hash") != new.get("code_hash"):
        details.append(f"code changed ({old.get('code_hash')} -> {new.get('code_hash')})")
    return details + _common_details(
        old, new, {"name", "join_keys", "features", "code", "code_hash"}
    )


def _change(
    kind: str, name: str, op: str, details: list[str], breaking: bool, **extra: Any
) -> Change:
    return {"kind": kind, "name": name, "op": op, "details": details, "breaking": breaking, **extra}


def _sort(changes: list[Change]) -> list[Change]:
    return sorted(changes, key=lambda c: (KINDS.index(c["kind"]), c["name"]))


def _without_version(view: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in view.items() if k != "version"}


# ---- plan and diff ----------------------------------------------------------------------------


def _plain_changes(kind: str, old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    out = [_change(kind, n, "add", [], False) for n in new if n not in old]
    out += [_change(kind, n, "remove", [], False) for n in old if n not in new]
    for n in new:
        if n in old and old[n] != new[n]:
            out.append(_change(kind, n, "update", _plain_details(kind, old[n], new[n]), False))
    return out


def _entity_breaks(
    old_entities: dict[str, Any],
    new_entities: dict[str, Any],
    views: dict[str, list[dict[str, Any]]],
    stored: set[tuple[str, Any]],
) -> dict[str, str]:
    """Entities that change keys (or vanish) under an already stored view version that stays."""
    out: dict[str, str] = {}
    for ent, before in old_entities.items():
        after = new_entities.get(ent)
        if after is not None and after.get("join_keys") == before.get("join_keys"):
            continue
        users = [
            f"`{name}` v{entry.get('version')}"
            for name, entries in views.items()
            for entry in entries
            if ent in entry.get("entities", []) and (name, entry.get("version")) in stored
        ]
        if not users:
            continue
        what = "is removed"
        if after is not None:
            what = (
                f"changes join keys {_qlist(before['join_keys'])} -> {_qlist(after['join_keys'])}"
            )
        out[ent] = (
            f"entity `{ent}` {what}, but stored view version(s) {', '.join(users)} use it and would "
            f"silently change their keys. Fix: keep entity `{ent}` as it is and define a new entity "
            f"(e.g. `{ent}_v2`) with the new keys, then apply the views that should use it with "
            "`featureline apply --new-version VIEW` (both versions stay readable)."
        )
    return out


def plan(
    current: Mapping[str, Any] | None,
    desired: Mapping[str, Any],
    new_versions: Iterable[str] = frozenset(),
) -> Plan:
    """Diff the registry's latest snapshot (`current`, or None) against `desired`.

    `desired["views"]` holds one dict per view (the definition as written; its "version" is
    ignored). Views named in `new_versions` get a new version when their change is breaking.
    """
    cur_entities = _section(current, "entities", "registry")
    cur_views = {
        n: copy.deepcopy(_versions(v)) for n, v in _section(current, "views", "registry").items()
    }
    new_entities = copy.deepcopy(_section(desired, "entities", "desired"))
    desired_views = {n: _versions(v)[-1] for n, v in _section(desired, "views", "desired").items()}
    wanted = set(new_versions)
    if stray := sorted(wanted - set(desired_views)):
        raise ValidationError(
            " ".join(unknown("feature view", n, desired_views) for n in stray)
            + " Fix: pass `--new-version` only for views defined in the repo."
        )
    changes = _plain_changes("entity", cur_entities, new_entities)
    views: dict[str, list[dict[str, Any]]] = {}
    breaking: list[str] = []
    for name, want in desired_views.items():
        entries = cur_views.get(name)
        if not entries:
            views[name] = [{**copy.deepcopy(want), "version": 1}]
            changes.append(_change("view", name, "add", [], False, version=1))
            continue
        last = entries[-1]
        version = int(last.get("version", len(entries)))
        if _without_version(last) == _without_version(want):
            views[name] = entries
            continue
        details, reasons = view_details(last, want, cur_entities, new_entities)
        if reasons and name in wanted:
            views[name] = [*entries, {**copy.deepcopy(want), "version": version + 1}]
            details.append(f"version {version} stays readable")
            changes.append(_change("view", name, "new_version", details, True, version=version + 1))
            continue
        if name in wanted:
            details.append(f"not breaking: updated in place, no new version needed (v{version})")
        views[name] = [*entries[:-1], {**copy.deepcopy(want), "version": version}]
        changes.append(_change("view", name, "update", details, bool(reasons), version=version))
        # A key change caused only by an entity's new keys is reported once, for the entity.
        same_entities = list(last.get("entities", [])) == list(want.get("entities", []))
        own = [r for r in reasons if not (same_entities and r.startswith("join keys:"))]
        if own:
            breaking.append(
                f"view `{name}`: {'; '.join(own)}. This breaks data stored for version {version}. "
                "Fix: apply it as a new version of the view: "
                f"`featureline apply --new-version {name}` (both versions stay readable), or rename the view."
            )
    for name, entries in cur_views.items():
        if name not in desired_views:
            last_version = entries[-1].get("version") if entries else None
            changes.append(_change("view", name, "remove", [], False, version=last_version))
    stored = {(n, e.get("version")) for n, entries in cur_views.items() for e in entries}
    entity_breaks = _entity_breaks(cur_entities, new_entities, views, stored)
    for c in changes:
        if c["kind"] == "entity" and c["name"] in entity_breaks:
            c["breaking"] = True
    breaking += [entity_breaks[e] for e in sorted(entity_breaks)]
    changes += _plain_changes(
        "service",
        _section(current, "services", "registry"),
        _section(desired, "services", "desired"),
    )
    changes += _plain_changes(
        "on-demand view",
        _section(current, "odfvs", "registry"),
        _section(desired, "odfvs", "desired"),
    )
    changes += _plain_changes(
        "permission",
        _section(current, "permissions", "registry"),
        _section(desired, "permissions", "desired"),
    )
    project = desired.get("project") or (current or {}).get("project", "")
    snapshot: Snapshot = {
        "project": project,
        "entities": new_entities,
        "views": views,
        "services": copy.deepcopy(_section(desired, "services", "desired")),
        "odfvs": copy.deepcopy(_section(desired, "odfvs", "desired")),
    }
    if _section(desired, "permissions", "desired"):  # stored only when there are any
        snapshot["permissions"] = copy.deepcopy(_section(desired, "permissions", "desired"))
    return Plan(changes=_sort(changes), snapshot=snapshot, breaking=breaking)


def diff_snapshots(a: Mapping[str, Any] | None, b: Mapping[str, Any]) -> list[Change]:
    """The changes that turned snapshot `a` (None: empty) into `b`, e.g. for `featureline history`."""
    a_entities, b_entities = _section(a, "entities", "old"), _section(b, "entities", "new")
    changes = _plain_changes("entity", a_entities, b_entities)
    a_views = {n: _versions(v) for n, v in _section(a, "views", "old").items()}
    b_views = {n: _versions(v) for n, v in _section(b, "views", "new").items()}
    for name, entries in b_views.items():
        new = entries[-1]
        if name not in a_views or not a_views[name]:
            changes.append(_change("view", name, "add", [], False, version=new.get("version")))
            continue
        old = a_views[name][-1]
        if old == new and len(a_views[name]) == len(entries):
            continue
        details, reasons = view_details(old, new, a_entities, b_entities)
        op = "new_version" if (new.get("version") or 0) > (old.get("version") or 0) else "update"
        if op == "new_version":
            details.append(f"version {old.get('version')} stays readable")
        changes.append(
            _change("view", name, op, details, bool(reasons), version=new.get("version"))
        )
    for name, entries in a_views.items():
        if name not in b_views:
            last_version = entries[-1].get("version") if entries else None
            changes.append(_change("view", name, "remove", [], False, version=last_version))
    changes += _plain_changes(
        "service", _section(a, "services", "old"), _section(b, "services", "new")
    )
    changes += _plain_changes(
        "on-demand view", _section(a, "odfvs", "old"), _section(b, "odfvs", "new")
    )
    changes += _plain_changes(
        "permission", _section(a, "permissions", "old"), _section(b, "permissions", "new")
    )
    return _sort(changes)


__all__ = ["Plan", "check", "diff_snapshots", "plan", "render_change", "view_at"]
