"""The web UI's object pages (issue 12): entities, feature services and on-demand views, what a
feature view's page adds to its statistics (the code that defines it, its constraints and
quarantine, related objects) and the lineage graph that starts at a view version.

"The code that defines it" is found with `ast` in the repo's definition files (those `apply`
imports): the statement whose constructor call (`Entity(...)`, `FeatureView(...)`, ...) or
`@on_demand_feature_view(...)` decorator carries the object's name. Parsed files are cached by
path, size and mtime, so a page reads no file twice until it changes.

Versions and history of an entity, a service or an on-demand view come from the registry's
snapshots: a new version each time its stored definition changed."""

from __future__ import annotations

import ast
import hashlib
import textwrap
import threading
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featureline.errors import NotFoundError, PermissionDeniedError, ValidationError, did_you_mean
from featureline.server._ui_data import add_lineage_edge

if TYPE_CHECKING:
    from featureline.catalog import Catalog
    from featureline.definitions import FeatureView
    from featureline.feature_store import FeatureStore
    from featureline.registry import RegistryVersion

__all__ = ["KINDS", "UiPages", "find_definitions"]

KINDS = ("feature_view", "entity", "feature_service", "on_demand_feature_view")
MAX_SNIPPET_LINES = 200
QUARANTINE_SAMPLE = 10
_CONSTRUCTORS = {
    "entity": {"Entity"},
    "feature_view": {"FeatureView", "BatchFeatureView", "StreamFeatureView"},
    "feature_service": {"FeatureService"},
    "on_demand_feature_view": {"OnDemandFeatureView"},
}
_DECORATORS = {"on_demand_feature_view": {"on_demand_feature_view"}}
_SECTION = {  # kind -> (snapshot section, registry change kind)
    "entity": ("entities", "entity"),
    "feature_service": ("services", "service"),
    "on_demand_feature_view": ("odfvs", "on-demand view"),
}
_CHAIN = {"feature_view", "training_set", "run", "model", "alias"}


# -- the code that defines an object ---------------------------------------------------------------
@dataclass(frozen=True)
class Definition:
    """Where an object is defined: file (relative to the repo), first and last line, the text."""

    path: str
    line: int
    end_line: int
    text: str


def _callee(node: ast.expr) -> str | None:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _name_of(call: ast.Call) -> str | None:
    """The literal `name=` of a constructor call, or its first positional string argument."""
    for kw in call.keywords:
        if kw.arg == "name":
            v = kw.value
            return v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else None
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    return None


def find_definitions(source: str) -> dict[tuple[str, str], tuple[int, int]]:
    """(kind, name) -> (first line, last line) of every definition in a module's `source`: a
    top-level assignment of a constructor call (the whole statement), a call elsewhere (the call),
    or a function decorated with `@on_demand_feature_view` (decorators included)."""
    tree = ast.parse(source)
    out: dict[tuple[str, str], tuple[int, int]] = {}
    kinds = {c: k for k, names in _CONSTRUCTORS.items() for c in names}
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            for dec in stmt.decorator_list:
                if _callee(dec) in _DECORATORS["on_demand_feature_view"]:
                    name = _name_of(dec) if isinstance(dec, ast.Call) and dec.keywords else None
                    first = min(d.lineno for d in stmt.decorator_list)
                    out.setdefault(
                        ("on_demand_feature_view", name or stmt.name),
                        (first, stmt.end_lineno or stmt.lineno),
                    )
            continue
        for node in ast.walk(stmt):
            if not isinstance(node, ast.Call):
                continue
            kind = kinds.get(_callee(node) or "")
            name = _name_of(node) if kind else None
            if kind is None or name is None:
                continue
            whole = isinstance(stmt, ast.Assign | ast.AnnAssign) and stmt.value is node
            span = stmt if whole else node
            out.setdefault((kind, name), (span.lineno, span.end_lineno or span.lineno))
    return out


class _Sources:
    """The repo's definition files, parsed once per version of each file (thread-safe)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._files: dict[Path, tuple[tuple[int, int], list[str], dict[Any, Any]]] = {}

    def _parsed(self, path: Path) -> tuple[list[str], dict[tuple[str, str], tuple[int, int]]]:
        st = path.stat()
        stamp = (st.st_size, st.st_mtime_ns)
        with self._lock:
            hit = self._files.get(path)
        if hit is not None and hit[0] == stamp:
            return hit[1], hit[2]
        text = path.read_text(encoding="utf-8", errors="replace")
        try:
            found = find_definitions(text)
        except (SyntaxError, ValueError):
            found = {}
        lines = text.splitlines(keepends=True)
        with self._lock:
            self._files[path] = (stamp, lines, found)
        return lines, found

    def find(self, kind: str, name: str) -> Definition | None:
        from featureline.repo import definition_files

        try:
            files = definition_files(self.root)
        except OSError:
            return None
        for path in files:
            try:
                lines, found = self._parsed(path)
            except OSError:
                continue
            span = found.get((kind, name))
            if span is None:
                continue
            first, last = span
            last = min(last, first + MAX_SNIPPET_LINES - 1)
            return Definition(
                path.relative_to(self.root).as_posix(),
                first,
                last,
                "".join(lines[first - 1 : last]),
            )
        return None


# -- diffs of plain definitions -------------------------------------------------------------------
def _plain_diff(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Keys whose value changed from `a` to `b`; for lists, what was added and removed."""
    out: list[dict[str, Any]] = []
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k), b.get(k)
        if x == y:
            continue
        if isinstance(x, list) and isinstance(y, list):
            sx, sy = [_key(i) for i in x], [_key(i) for i in y]
            out.append(
                {
                    "key": k,
                    "added": [i for i in sy if i not in sx],
                    "removed": [i for i in sx if i not in sy],
                }
            )
        elif k == "code":
            out.append({"key": k, "from": "…", "to": "(changed)"})
        else:
            out.append({"key": k, "from": x, "to": y})
    return out


def _key(item: Any) -> str:
    if isinstance(item, dict):
        return str(item.get("name") or item)
    return str(item)


def _service_refs(d: dict[str, Any]) -> list[tuple[str, int | None, str]]:
    from featureline.definitions import parse_ref

    out = []
    for raw in d.get("features", []):
        try:
            ref = parse_ref(raw)
        except ValidationError:
            continue
        out.append((ref.view, ref.version, ref.feature))
    return out


class UiPages:
    """The object pages' reads over one store (thread-safe: the routes call it from the threadpool)."""

    def __init__(self, store: FeatureStore) -> None:
        self.store = store
        self.sources = _Sources(Path(store.repo_path))
        self._lock = threading.Lock()
        self._cat: tuple[int, Catalog] | None = None
        self._hist: tuple[int, list[RegistryVersion]] | None = None

    # -- shared ----------------------------------------------------------------------------------
    def _now(self) -> tuple[RegistryVersion, Catalog]:
        """The registry's latest version and its catalog, built once per registry version (one
        registry read per request: building the catalog of 1,000 views takes ~0.3 s)."""
        from featureline.catalog import Catalog

        rv = self.store.latest_version()
        if rv is None:
            raise NotFoundError(
                "The registry holds no definitions yet. Fix: run `featureline apply` in the repo first."
            )
        with self._lock:
            hit = self._cat
        if hit is not None and hit[0] == rv.version:
            return rv, hit[1]
        cat = Catalog.from_snapshot(rv.version, rv.snapshot)
        with self._lock:
            self._cat = (rv.version, cat)
        return rv, cat

    def _history(self, rv: RegistryVersion) -> list[RegistryVersion]:
        """The registry's versions up to `rv` (the latest), read again only after an apply."""
        with self._lock:
            hit = self._hist
        if hit is not None and hit[0] == rv.version:
            return hit[1]
        history = self.store.history()
        with self._lock:
            self._hist = (rv.version, history)
        return history

    def is_odfv(self, name: str) -> bool:
        return name in self._now()[1].odfvs

    def code(
        self, kind: str, name: str, latest: RegistryVersion | None = None
    ) -> dict[str, Any] | None:
        """The definition's source in the repo, with whether the file changed since the last
        apply (then the registry may hold another definition than the file shows)."""
        found = self.sources.find(kind, name)
        if found is None:
            return None
        latest = latest or self.store.latest_version()
        try:
            mtime = (Path(self.store.repo_path) / found.path).stat().st_mtime
        except OSError:
            mtime = None
        changed = (
            latest is not None
            and mtime is not None
            and isinstance(latest.applied_at, datetime)
            and mtime > latest.applied_at.timestamp()
        )
        return {
            "path": found.path,
            "line": found.line,
            "end_line": found.end_line,
            "text": found.text,
            "changed_since_apply": changed,
        }

    def _registry_versions(self, kind: str, name: str, latest: RegistryVersion) -> dict[str, Any]:
        """Versions (a new one each time the stored definition changed), the diff between
        consecutive ones and the registry history of object `name` of `kind`."""
        section, change_kind = _SECTION[kind]
        versions: list[dict[str, Any]] = []
        history = []
        for rv in self._history(latest):
            d = (rv.snapshot.get(section) or {}).get(name)
            if d is not None and (not versions or versions[-1]["definition"] != d):
                versions.append(
                    {
                        "version": len(versions) + 1,
                        "registry_version": rv.version,
                        "applied_at": rv.applied_at,
                        "definition": d,
                    }
                )
            mine = [c for c in rv.changes if c.get("kind") == change_kind and c.get("name") == name]
            if mine:
                history.append(
                    {
                        "registry_version": rv.version,
                        "applied_at": rv.applied_at,
                        "message": rv.message,
                        "changes": mine,
                    }
                )
        diffs = [
            {
                "from": a["version"],
                "to": b["version"],
                "changes": _plain_diff(a["definition"], b["definition"]),
            }
            for a, b in pairwise(versions)
        ]
        return {"versions": versions, "diffs": diffs, "history": history}

    @staticmethod
    def _missing(kind: str, name: str, known: Any) -> NotFoundError:
        what = kind.replace("_", " ")
        return NotFoundError(
            f"No {what} `{name[:80]}`.{did_you_mean(name, list(known))} "
            "Fix: search the catalog (GET /ui/api/search?q=)."
        )

    @staticmethod
    def _users(cat: Catalog, view: str) -> list[dict[str, Any]]:
        """The feature services and on-demand views that read `view`."""
        out: list[dict[str, Any]] = []
        for s in cat.services.values():
            feats = [f for v, _, f in _service_refs(s.to_dict()) if v == view]
            if feats:
                out.append({"kind": "feature_service", "name": s.name, "features": feats})
        for o in cat.odfvs.values():
            if view in o.source_views:
                out.append({"kind": "on_demand_feature_view", "name": o.name, "features": []})
        return out

    # -- entities --------------------------------------------------------------------------------
    def entity(self, name: str) -> dict[str, Any]:
        rv, cat = self._now()
        ent = cat.entities.get(name)
        if ent is None:
            raise self._missing("entity", name, cat.entities)
        views = [
            {
                "name": vn,
                "version": vs[-1].version,
                "description": vs[-1].description,
                "features": vs[-1].feature_names,
            }
            for vn, vs in cat.views.items()
            if name in [e.name for e in vs[-1].entities]
        ]
        used = {vn for vn, vs in cat.views.items() if name in [e.name for e in vs[-1].entities]}
        services = sorted(s.name for s in cat.services.values() if _reads(s.to_dict(), used))
        odfvs = sorted(o.name for o in cat.odfvs.values() if used & set(o.source_views))
        return {
            "kind": "entity",
            "name": name,
            "definition": ent.to_dict(),
            **self._registry_versions("entity", name, rv),
            "related": {"feature_views": views, "feature_services": services, "odfvs": odfvs},
            "code": self.code("entity", name, rv),
        }

    # -- feature services ------------------------------------------------------------------------
    def service(self, name: str) -> dict[str, Any]:
        rv, cat = self._now()
        svc = cat.services.get(name)
        if svc is None:
            raise self._missing("feature service", name, cat.services)
        d = svc.to_dict()
        groups: dict[tuple[str, int | None], list[str]] = {}
        for view, version, feature in _service_refs(d):
            groups.setdefault((view, version), []).append(feature)
        reads = []
        entities: set[str] = set()
        for (view, version), feats in groups.items():
            if view in cat.odfvs:
                kind = "on_demand_feature_view"
                for src in cat.odfvs[view].source_views:
                    if src in cat.views:
                        entities.update(e.name for e in cat.views[src][-1].entities)
            elif view in cat.views:
                kind = "feature_view"
                vs = cat.views[view]
                chosen = next((v for v in vs if v.version == version), vs[-1])
                entities.update(e.name for e in chosen.entities)
            else:
                kind = "missing"
            reads.append({"kind": kind, "name": view, "version": version, "features": feats})
        return {
            "kind": "feature_service",
            "name": name,
            "definition": d,
            **self._registry_versions("feature_service", name, rv),
            "related": {"reads": reads, "entities": sorted(entities)},
            "code": self.code("feature_service", name, rv),
        }

    # -- on-demand views -------------------------------------------------------------------------
    def odfv(self, name: str) -> dict[str, Any]:
        rv, cat = self._now()
        spec = cat.odfvs.get(name)
        if spec is None:
            raise self._missing("on-demand feature view", name, cat.odfvs)
        stored = dict((rv.snapshot.get("odfvs") or {}).get(name) or {})
        code = self.code("on_demand_feature_view", name, rv)
        if code is not None:  # the registry's hash is of the function's source, decorators on
            code["matches_registry"] = _code_hash(code["text"]) == spec.code_hash
        services = sorted(
            s.name
            for s in cat.services.values()
            if any(v == name for v, _, _ in _service_refs(s.to_dict()))
        )
        return {
            "kind": "on_demand_feature_view",
            "on_demand": True,
            "name": name,
            "definition": {
                "name": name,
                "version": spec.version,
                "sources": spec.source_views,
                "mode": spec.mode,
                "request_fields": [f.to_dict() for f in spec.request_fields],
                "schema": [f.to_dict() for f in spec.features],
                "code_hash": spec.code_hash,
                "description": stored.get("description", ""),
                "owner": stored.get("owner", ""),
                "tags": stored.get("tags", {}),
                "registered_code": stored.get("code", ""),
            },
            **self._registry_versions("on_demand_feature_view", name, rv),
            "related": {
                "source_views": [
                    {"name": v, "version": cat.views[v][-1].version if v in cat.views else None}
                    for v in spec.source_views
                ],
                "feature_services": services,
            },
            "code": code,
        }

    # -- what a feature view's page adds ----------------------------------------------------------
    def view_extra(self, name: str) -> dict[str, Any]:
        """The code, governance (constraints, gate, quarantine) and related objects of the view's
        latest version (the caller's describe grant is checked by the view page before)."""
        rv, cat = self._now()
        fv = cat.views[name][-1]
        return {
            "kind": "feature_view",
            "code": self.code("feature_view", name, rv),
            "governance": self.governance(fv),
            "related": {
                "entities": [{"name": e.name, "join_keys": list(e.join_keys)} for e in fv.entities],
                "used_by": self._users(cat, name),
            },
        }

    def governance(self, fv: FeatureView) -> dict[str, Any]:
        """The view's constraints and gate, and what its quarantine holds (rows per constraint)."""
        fields = [
            {
                "field": f.name,
                "constraint": c.label(f.name),
                "kind": c.kind,
                "rule": c.describe(),
            }
            for f in fv.schema
            for c in f.constraints
        ]
        checks = [
            {"constraint": c.label(), "kind": c.kind, "rule": c.describe()} for c in fv.checks
        ]
        held = self.store.quarantine().get(fv.name) or {}  # auth on: views the caller describes
        sample: list[dict[str, Any]] | None = []
        if held.get("rows"):
            try:  # the rows' values: read_offline, as a preview
                rows = self.store.quarantined_rows(fv)
            except PermissionDeniedError:
                rows = None
            sample = None if rows is None else _newest_quarantined(rows)
        return {
            "gate": fv.gate_mode,
            "declared_gate": fv.gate,
            "field_constraints": fields,
            "view_checks": checks,
            "quarantine": {
                "rows": held.get("rows", 0),
                "batches": held.get("batches", 0),
                "oldest": held.get("oldest"),
                "newest": held.get("newest"),
                "by_constraint": held.get("constraints", {}),
                "newest_rows": sample,  # None without read_offline
            },
        }

    # -- lineage from a view ---------------------------------------------------------------------
    def view_lineage(self, name: str, version: int | None) -> dict[str, Any]:
        """The graph view version -> training set -> run -> model version -> alias, walked down
        from every version of view `name` (or one `version`); the caller's describe grant on the
        view is checked."""
        cat = self._now()[1]
        if name not in cat.views:
            raise self._missing("feature view", name, cat.views)
        if self.store.authorizer is not None:  # the caller's grant (a catalog read: only with auth)
            self.store.check_read(name, "describe")
        have = [v.version for v in cat.views[name]]
        if version is not None and version not in have:
            raise NotFoundError(
                f"Feature view `{name}` has no version {version}; it has "
                f"{', '.join('v' + str(v) for v in have)}."
            )
        reg = self.store.models
        current = {f"{m['name']}@{a}": m for m in reg.versions() for a in m["aliases"]}
        nodes: dict[str, dict[str, Any]] = {}
        edges: set[tuple[str, str, str]] = set()
        for v in [version] if version is not None else have:
            ident = f"{name}@v{v}"
            nodes[f"feature_view:{ident}"] = {
                "id": f"feature_view:{ident}",
                "kind": "feature_view",
                "label": ident,
            }
            for e in reg.lineage("feature_view", ident, "down"):
                if e["src_kind"] not in _CHAIN or e["dst_kind"] not in _CHAIN:
                    continue
                if e["dst_kind"] == "alias":
                    now = current.get(e["dst_id"])
                    if now is None or f"{now['name']}:{now['version']}" != e["src_id"]:
                        continue  # the alias has moved to another version since
                add_lineage_edge(nodes, edges, e)
        return {
            "view": name,
            "versions": [version] if version is not None else have,
            "nodes": list(nodes.values()),
            "edges": [{"source": s, "target": t, "relation": r} for s, t, r in sorted(edges)],
        }


def _newest_quarantined(rows: Any, n: int = QUARANTINE_SAMPLE) -> list[dict[str, Any]]:
    """The newest `n` quarantined rows: the view's columns as written, the constraints each
    violates and when it was quarantined (the other bookkeeping columns left out)."""
    from featureline.quality.gate import REASONS
    from featureline.quality.quarantine import AT, META

    keep = [c for c in rows.column_names if c not in META] + [REASONS, AT]
    tail = rows.slice(max(0, rows.num_rows - n)).select(keep)
    out: list[dict[str, Any]] = tail.to_pylist()
    return out[::-1]


def _reads(service: dict[str, Any], views: set[str]) -> bool:
    return any(v in views for v, _, _ in _service_refs(service))


def _code_hash(text: str) -> str:
    """The hash the registry keeps of an on-demand view's function (`OnDemandFeatureView.code_hash`:
    the function's source, decorators included, dedented)."""
    return hashlib.sha256(textwrap.dedent(text).encode()).hexdigest()[:16]
