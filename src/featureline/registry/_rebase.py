"""Re-apply a plan on top of versions stored after it was made: a 3-way merge. Pure, no I/O.

`apply` appends onto the version it planned against (a compare-and-swap). When another apply
got there first, the plan is not thrown away if the two commute:

* *mine*: the objects my plan changed relative to its base snapshot;
* *theirs*: the objects changed between the base and the registry's latest snapshot.

An object is a definition in one section of a snapshot (an entity, a view with its whole
list of versions, a service, an on-demand view). When *mine* and *theirs* are disjoint, and
no object of one side refers to an object the other side changed (a view to its entities,
a service to the views it reads, an on-demand view to its source views), my objects are put
into the latest snapshot as my plan left them, with my plan's change records. Otherwise the
caller gets a RegistryConflictError naming the objects. A view is one object, so two new
versions of the same view never commute: a view version number always means one schema.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from featureline.errors import RegistryConflictError
from featureline.registry._plan import Plan

# snapshot section -> the `kind` its change records carry
SECTIONS = {
    "entities": "entity",
    "views": "view",
    "services": "service",
    "odfvs": "on-demand view",
    "permissions": "permission",
}
Key = tuple[str, str]  # (section, name)


def _objects(snapshot: Mapping[str, Any] | None) -> dict[Key, Any]:
    out: dict[Key, Any] = {}
    for section in SECTIONS:
        for name, value in ((snapshot or {}).get(section) or {}).items():
            out[(section, name)] = value
    return out


def changed(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> set[Key]:
    """The objects that differ between snapshots `a` and `b` (added, removed or changed)."""
    before, after = _objects(a), _objects(b)
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


def _refs(section: str, value: Any) -> set[Key]:
    """The objects a definition refers to."""
    out: set[Key] = set()
    if section == "views":
        for entry in [value] if isinstance(value, Mapping) else list(value or []):
            out |= {("entities", e) for e in entry.get("entities", [])}
    elif section == "services":
        for ref in value.get("features", []):
            view = str(ref).split(":", 1)[0].split("@", 1)[0]
            out |= {("views", view), ("odfvs", view)}
    elif section == "odfvs":
        out |= {("views", s["name"]) for s in value.get("sources", []) if s.get("kind") == "view"}
    return out


def describe(key: Key) -> str:
    """`("views", "driver_stats")` -> "view `driver_stats`"."""
    return f"{SECTIONS[key[0]]} `{key[1]}`"


def rebase(
    base: Mapping[str, Any] | None,
    mine: Plan,
    latest: Mapping[str, Any],
    base_version: int | None,
    latest_version: int,
) -> Plan | None:
    """`mine` (planned against `base`) re-made on top of `latest`; None when nothing is left.

    Raises RegistryConflictError naming the objects when the changes do not commute.
    """
    ours_all = changed(base, mine.snapshot)
    theirs = changed(base, latest)
    mine_objs, their_objs = _objects(mine.snapshot), _objects(latest)
    # A change both sides made identically is already in `latest`: nothing to do for it.
    same = {k for k in ours_all & theirs if mine_objs.get(k) == their_objs.get(k)}
    ours = ours_all - same
    problems: list[tuple[Key, str]] = [
        (k, f"{describe(k)} was changed by both") for k in sorted(ours & theirs)
    ]
    for side, keys, snap, other in (
        ("your", ours, mine.snapshot, theirs),
        ("their", theirs, latest, ours),
    ):
        for k in sorted(keys):
            value = _objects(snap).get(k)
            if value is None:
                continue
            for ref in sorted(_refs(k[0], value) & other - (ours & theirs)):
                problems.append(
                    (
                        ref,
                        f"{side} {describe(k)} uses {describe(ref)}, which the other apply changed",
                    )
                )
    first = (base_version or 0) + 1
    span = (
        f"version {latest_version}"
        if first == latest_version
        else f"versions {first}..{latest_version}"
    )
    planned = "the empty registry" if base_version is None else f"version {base_version}"
    if problems:
        objects = sorted({describe(k) for k, _ in problems})
        lines = [
            f"Registry conflict: this apply was planned against {planned}, but another apply "
            f"stored {span} meanwhile and the two changes overlap:",
            *(f"  - {text}" for _, text in problems),
            "Nothing was applied. Fix: re-run `featureline plan` to see the registry as it is now "
            "(with the other apply's changes), update your definitions if needed, then "
            "`featureline apply` again.",
        ]
        raise RegistryConflictError("\n".join(lines), base_version, latest_version, objects)
    if not ours:
        return None
    snapshot: dict[str, Any] = copy.deepcopy(dict(latest))
    for section in SECTIONS:
        snapshot[section] = dict(snapshot.get(section) or {})
    for section, name in ours:
        if (section, name) in mine_objs:
            snapshot[section][name] = copy.deepcopy(mine_objs[(section, name)])
        else:
            snapshot[section].pop(name, None)
    if not snapshot["permissions"]:
        del snapshot["permissions"]  # stored only when there are any (as `plan` does)
    if mine.snapshot.get("project"):
        snapshot["project"] = mine.snapshot["project"]
    kinds = {(SECTIONS[s], n) for s, n in ours}
    changes = [copy.deepcopy(c) for c in mine.changes if (c.get("kind"), c.get("name")) in kinds]
    return Plan(changes=changes, snapshot=snapshot, breaking=[], base_version=latest_version)


__all__ = ["changed", "describe", "rebase"]
