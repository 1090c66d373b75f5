"""What the web UI's JSON API answers (issue 12), read through the FeatureStore façade.

Every function is synchronous (the routes run it in the threadpool) and returns JSON-able values.
The catalog search index is rebuilt when the registry version or the model versions change; the
registry's latest snapshot and its version log are re-read only when its head
(`RegistryStore.head()`) moves; a view's statistics come from `_ui_stats.ViewStats` (cached per
view version and live commit, merged incrementally after appends)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from featureline.errors import NotFoundError, PermissionDeniedError, ValidationError, did_you_mean
from featureline.server._ui_stats import ViewStats, live_stamp

if TYPE_CHECKING:
    from featureline.definitions import FeatureView
    from featureline.feature_store import FeatureStore

__all__ = ["UiData", "add_lineage_edge"]

MAX_RESULTS = 50
MAX_COMPARE = 50
_CHAIN = {"feature_view", "training_set", "run", "model", "alias"}


def _text(*parts: Any) -> str:
    return " ".join(str(p) for p in parts if p).lower()


def _tags(tags: dict[str, Any] | None) -> str:
    return " ".join(f"{k}:{v}" for k, v in (tags or {}).items())


def parse_time(raw: str | None, what: str) -> datetime | None:
    """An ISO 8601 time (UTC when it names no zone); None when absent or empty."""
    if raw is None or raw == "":
        return None
    try:
        dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"`{what}` must be an ISO 8601 time such as 2025-01-01T12:00:00Z, got `{raw[:80]}`."
        ) from None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


class UiData:
    """The UI's reads over one store (thread-safe: the routes call it from the threadpool)."""

    def __init__(self, store: FeatureStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._index_key: Any = None
        self._index: list[tuple[str, str, dict[str, Any]]] = []  # (name, haystack, hit)
        self.stats = ViewStats(store)
        self._previews: dict[tuple[str, int], tuple[Any, list[dict[str, Any]]]] = {}
        self._catalog_key: Any = None  # the registry head the cached catalog was read at
        self._catalog_hit: tuple[Any, Any] = (None, None)  # (latest version, its Catalog)
        self._log_key: Any = None  # the registry head the cached version log was read at
        self._log: list[Any] = []  # every version's (version, applied_at, message, changes)

    # -- the registry's latest snapshot, re-read only when the registry changed --------------------
    def _latest(self) -> tuple[Any, Any]:
        """(the registry's latest version, its Catalog) — (None, None) before the first apply —,
        cached while the registry's head (`RegistryStore.head()`: its newest version number and
        apply time, a one-row query, on every backend) stays the same: an apply, from this
        process or another, invalidates it."""
        from featureline.catalog import Catalog

        head = self.store.registry.head()
        with self._lock:
            if head is not None and head == self._catalog_key:
                return self._catalog_hit
        rv = self.store.latest_version()  # read after the head: a race only re-reads later
        hit = (rv, None if rv is None else Catalog.from_snapshot(rv.version, rv.snapshot))
        with self._lock:
            self._catalog_key, self._catalog_hit = head, hit
        return hit

    def _versions(self) -> list[Any]:
        """Every registry version as (version, applied_at, message, changes), oldest first,
        without the snapshots: read once per registry head (the log is append-only, so the same
        head is the same log)."""
        head = self.store.registry.head()
        with self._lock:
            if head is not None and head == self._log_key:
                return self._log
        log = [(rv.version, rv.applied_at, rv.message, rv.changes) for rv in self.store.history()]
        with self._lock:
            self._log_key, self._log = head, log
        return log

    def _catalog(self) -> Any:
        cat = self._latest()[1]
        return cat if cat is not None else self.store.catalog()  # its NotFoundError

    # -- search ----------------------------------------------------------------------------------
    def _build_index(self, cat: Any) -> list[tuple[str, str, dict[str, Any]]]:
        out: list[tuple[str, str, dict[str, Any]]] = []

        def add(kind: str, name: str, hay: str, **extra: Any) -> None:
            out.append((name.lower(), hay, {"kind": kind, "name": name, **extra}))

        for e in cat.entities.values():
            d = e.to_dict()
            add(
                "entity",
                d["name"],
                _text(d["name"], d.get("description"), d.get("owner"), _tags(d.get("tags"))),
                description=d.get("description", ""),
            )
        for name, versions in cat.views.items():
            for v in versions:
                d = v.to_dict()
                fields = " ".join(
                    _text(f["name"], f.get("description"), _tags(f.get("tags")))
                    for f in d["schema"]
                )
                add(
                    "feature_view",
                    f"{name}@v{v.version}",
                    _text(name, d.get("description"), d.get("owner"), _tags(d.get("tags")), fields),
                    view=name,
                    version=v.version,
                    latest=v is versions[-1],
                    description=d.get("description", ""),
                    owner=d.get("owner", ""),
                )
        for o in cat.odfvs.values():
            add(
                "on_demand_feature_view",
                o.name,
                _text(o.name, " ".join(f.name for f in o.features), " ".join(o.source_views)),
                description=f"on demand, from {', '.join(o.source_views)}",
            )
        for s in cat.services.values():
            d = s.to_dict()
            add(
                "feature_service",
                d["name"],
                _text(
                    d["name"],
                    d.get("description"),
                    d.get("owner"),
                    _tags(d.get("tags")),
                    " ".join(d["features"]),
                ),
                description=d.get("description", ""),
            )
        seen: set[str] = set()
        for m in self.store.models.versions():
            if m["name"] in seen:
                continue
            seen.add(m["name"])
            card = self.store.models.get(m["name"], m["version"]).card
            add(
                "model",
                m["name"],
                _text(m["name"], card.get("description"), " ".join(card.get("features", []))),
                description=card.get("description", ""),
                version=m["version"],
            )
        return out

    def search(self, q: str) -> dict[str, Any]:
        latest, cat = self._latest()
        models = self.store.models.versions()
        key = (
            latest.version if latest else None,
            tuple((m["name"], m["version"]) for m in models),
        )
        with self._lock:
            if key != self._index_key:
                self._index = self._build_index(cat) if latest is not None else []
                self._index_key = key
            index = self._index
        terms = q.lower().split()
        hits: list[tuple[int, dict[str, Any]]] = []
        total = 0
        for name, hay, hit in index:
            if all(t in hay for t in terms):
                total += 1
                rank = 0 if any(t in name for t in terms) or not terms else 1
                hits.append((rank, hit))
        hits.sort(key=lambda h: h[0])
        return {"query": q, "total": total, "results": [h for _, h in hits[:MAX_RESULTS]]}

    # -- views -----------------------------------------------------------------------------------
    def view(self, name: str) -> dict[str, Any]:
        cat = self._catalog()
        if name in cat.odfvs:
            return {"name": name, **self.store.describe(name)}
        if name not in cat.views:
            raise NotFoundError(
                f"No feature view `{name}`.{did_you_mean(name, list(cat.views))} "
                "Fix: search the catalog (GET /ui/api/search?q=)."
            )
        fv = self.store.check_read(name, "describe")  # the caller's grant, on every request
        versions = cat.views[name]
        defs = [v.to_dict() for v in versions]
        diffs = [_diff(a, b) for a, b in pairwise(defs)]
        history = [
            {
                "registry_version": version,
                "applied_at": applied_at,
                "message": message,
                "changes": [c for c in changes if c.get("name") == name],
            }
            for version, applied_at, message, changes in self._versions()
            if any(c.get("name") == name and c.get("kind") == "view" for c in changes)
        ]
        try:  # every column is read: needs read_offline where describe sufficed
            self.store.check_read(fv, "read_offline")
            allowed = True
        except PermissionDeniedError:
            allowed = False
        preview: list[dict[str, Any]] | None = None
        if allowed:  # the preview alongside the statistics (a first load computes both)
            import contextvars
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(1) as pool:  # the caller's context (its principal) too
                rows = pool.submit(contextvars.copy_context().run, self._preview, fv)
                stats = self._stats_for(fv)
                preview = rows.result()
        else:
            stats = self._stats_for(fv)
        fresh = self.store.freshness(fv).get(name) or {}  # this view's alone
        latency = fresh.get("latency") or {}
        return {
            "name": name,
            "definition": fv.to_dict(),
            "versions": [
                {"version": v.version, "definition": d} for v, d in zip(versions, defs, strict=True)
            ],
            "diffs": diffs,
            "history": history,
            **stats,
            "preview": preview,
            "freshness": {
                "last_event": fresh.get("last_event"),
                "last_ingested": fresh.get("last_ingested"),
                "staleness_seconds": fresh.get("staleness_seconds"),
                "objective_seconds": fresh.get("objective_seconds"),
                "servable_staleness_seconds": fresh.get("servable_staleness_seconds"),
                "latency_p50_seconds": latency.get("p50_seconds"),
                "latency_p99_seconds": latency.get("p99_seconds"),
                "quarantined": fresh.get("quarantined"),
            },
        }

    def _stats_for(self, fv: FeatureView) -> dict[str, Any]:
        return self.stats.stats_for(fv)

    def wait_stats_states(self) -> None:
        """Wait for the mergeable states being built on the background thread (benchmarks)."""
        self.stats.wait_stats_states()

    def close(self) -> None:
        """Stop the statistics' background thread (`ViewStats.close`; the server's shutdown)."""
        self.stats.close()

    def _preview(self, fv: FeatureView) -> list[dict[str, Any]]:
        """The newest 10 stored rows (`preview`), cached per view version until its next commit;
        the caller's read_offline grant is checked before."""
        key, stamp = (fv.name, fv.version), live_stamp(self.store, fv)
        with self._lock:
            hit = self._previews.get(key)
        if hit is not None and hit[0] == stamp:
            return list(hit[1])
        rows = _pylist(self.store.preview(fv, 10))
        with self._lock:
            self._previews[key] = (stamp, rows)
        return list(rows)

    # -- runs ------------------------------------------------------------------------------------
    def runs(
        self, pipeline: str | None, limit: int, ids: list[str] | None, details: bool = False
    ) -> dict[str, Any]:
        """Runs, newest first; `details`: with their params and metrics (a comparison). `ids`:
        those runs, with params and metrics, in the order given."""
        md = self.store.models.metadata
        if ids:
            if len(ids) > MAX_COMPARE:
                raise ValidationError(f"At most {MAX_COMPARE} run ids to compare, got {len(ids)}.")
            return {"runs": [self._compared(self._get_run(i)) for i in ids]}
        rows = md.list_runs(pipeline, limit)
        if details:
            return {"runs": [self._compared(md.get_run(r["run_id"])) for r in rows]}
        return {"runs": [_run_row(r) for r in rows]}

    @staticmethod
    def _compared(r: dict[str, Any]) -> dict[str, Any]:
        return {**_run_row(r), "params": r.get("params", {}), "metrics": r.get("metrics", {})}

    def _get_run(self, run_id: str) -> dict[str, Any]:
        md = self.store.models.metadata
        try:
            run: dict[str, Any] = md.get_run(run_id)
        except NotFoundError:
            recent = [x["run_id"] for x in md.list_runs(None, 5)]
            raise NotFoundError(
                f"Run `{run_id[:80]}` does not exist.{did_you_mean(run_id, recent)} "
                "Fix: pick a run from GET /ui/api/runs."
            ) from None
        return run

    def run(self, run_id: str) -> dict[str, Any]:
        r = self._get_run(run_id)
        steps = []
        for s in r.get("steps", []):
            logs = "\n".join(
                line for line in (s.get("logs") or "").splitlines() if not line.startswith("[log ")
            )
            steps.append(
                {
                    "step": s["step"],
                    "status": s["status"],
                    "attempts": s.get("attempts"),
                    "started_at": s.get("started_at"),
                    "finished_at": s.get("finished_at"),
                    "duration_seconds": _seconds(s.get("started_at"), s.get("finished_at")),
                    "inputs": dict(s.get("inputs") or {}),
                    "outputs": {k: _artifact(v) for k, v in (s.get("outputs") or {}).items()},
                    "metrics": s.get("metrics") or {},
                    "error": s.get("error"),
                    "logs": logs[-4000:],
                }
            )
        made = {
            o["id"]: s["step"] for s in steps for o in s["outputs"].values() if isinstance(o, dict)
        }
        edges = [
            {"source": made[a], "target": s["step"], "input": name}
            for s in steps
            for name, a in s["inputs"].items()
            if a in made
        ]
        return {
            **_run_row(r),
            "params": r.get("params", {}),
            "metrics": r.get("metrics", {}),
            "steps": steps,
            "edges": edges,  # step -> step through an artifact (the step graph)
        }

    # -- models ----------------------------------------------------------------------------------
    def models(self) -> dict[str, Any]:
        by_name: dict[str, dict[str, Any]] = {}
        for m in self.store.models.versions():
            entry = by_name.setdefault(
                m["name"], {"name": m["name"], "versions": 0, "latest": m["version"], "aliases": {}}
            )
            entry["versions"] += 1
            entry["latest"] = max(entry["latest"], m["version"])
            for a in m["aliases"]:
                entry["aliases"][a] = m["version"]
        return {"models": list(by_name.values())}

    def model(self, name: str) -> dict[str, Any]:
        reg = self.store.models
        rows = reg.versions(name)
        if not rows:
            names = sorted({m["name"] for m in reg.versions()})
            raise NotFoundError(
                f"No model `{name[:80]}`.{did_you_mean(name, names)} Models: {', '.join(names[:20]) or 'none yet'}. "
                "Fix: pick one from GET /ui/api/models."
            )
        versions = []
        for m in rows:
            mv = reg.get(name, m["version"])
            card = dict(mv.card)
            versions.append(
                {
                    "version": mv.version,
                    "created_at": mv.created_at,
                    "aliases": mv.aliases,
                    "run_id": card.get("run_id"),
                    "metrics": card.get("metrics", {}),
                    "params": card.get("params", {}),
                    "features": card.get("features", []),
                    "card": card,
                }
            )
        return {"name": name, "versions": versions}

    def lineage(self, name: str, version: int | None) -> dict[str, Any]:
        """The graph feature view version → training set → run → model version → alias for each
        version of model `name` (or one `version`)."""
        reg = self.store.models
        listed = reg.versions(name)
        rows = [m["version"] for m in listed]
        current = {f"{name}@{a}": m["version"] for m in listed for a in m["aliases"]}
        if not rows:
            self.model(name)  # the NotFoundError naming the models
        chosen = [version] if version is not None else rows
        if version is not None and version not in rows:
            raise NotFoundError(
                f"Model `{name}` has no version {version}; it has {', '.join(map(str, rows))}."
            )
        nodes: dict[str, dict[str, Any]] = {}
        edges: set[tuple[str, str, str]] = set()
        for v in chosen:
            ref = f"{name}:{v}"
            nodes[f"model:{ref}"] = {"id": f"model:{ref}", "kind": "model", "label": ref}
            for e in reg.lineage("model", ref, "up") + reg.lineage("model", ref, "down"):
                if e["src_kind"] not in _CHAIN or e["dst_kind"] not in _CHAIN:
                    continue
                if e["dst_kind"] == "alias" and current.get(e["dst_id"]) != v:
                    continue  # the alias has moved to another version since
                add_lineage_edge(nodes, edges, e)
        return {
            "model": name,
            "nodes": list(nodes.values()),
            "edges": [{"source": s, "target": t, "relation": r} for s, t, r in sorted(edges)],
        }

    # -- point in time ---------------------------------------------------------------------------
    def pit(
        self, view: str, key: str, at: datetime | None, as_of: datetime | None
    ) -> dict[str, Any]:
        import pyarrow as pa

        fv = self.store.get_feature_view(view)
        if len(fv.join_keys) != 1:
            raise ValidationError(
                f"`{fv.name}` has join keys {fv.join_keys}; the explorer takes a view with one key."
            )
        (jk,) = fv.join_keys
        dtype = next((f.dtype.name for f in fv.schema if f.name == jk), "String")
        value: Any = key
        if dtype.startswith("Int"):
            try:
                value = int(key)
            except ValueError:
                raise ValidationError(
                    f"`key` must be an integer for `{fv.name}` (join key `{jk}`), got `{key[:80]}`."
                ) from None
        when = at or datetime.now(UTC)
        names = [f.name for f in fv.features]
        entity = pa.table(
            {jk: [value], "event_timestamp": pa.array([when], pa.timestamp("us", "UTC"))}
        )
        ts = self.store.get_training_set(
            entity, [f"{fv.name}@v{fv.version}:{n}" for n in names], as_of=as_of
        )  # the caller's read grants are checked here
        row = ts.table.to_pylist()[0]
        return {
            "view": f"{fv.name}@v{fv.version}",
            "key": {jk: value},
            "at": when,
            "as_of": as_of,
            "features": names,
            "training_set": {n: row.get(n) for n in names},
            "history": self._history(fv, jk, value, names, as_of),
        }

    def _history(
        self, fv: FeatureView, jk: str, value: Any, names: list[str], as_of: datetime | None
    ) -> list[dict[str, Any]]:
        from featureline.offline.batch import CREATED_TS, EVENT_TS

        offline = self.store.offline
        parts = offline.parts(fv.name, fv.version)
        connect = _duckdb(offline)
        if not parts or connect is None:
            return []
        ingested = {p.path: p.ingested_at_us for p in parts}
        files = "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in ingested) + "]"
        cols = ", ".join(f'"{n}"' for n in names)
        con = connect()
        try:
            cur = con.execute(
                f"SELECT {EVENT_TS}, {CREATED_TS}, filename, {cols} FROM read_parquet({files}, "
                f'union_by_name = true, filename = true) WHERE "{jk}" = ? ORDER BY {EVENT_TS}, filename LIMIT 500',
                [value],
            )
            rows = cur.fetchall()
        finally:
            con.close()
        out = []
        limit_us = None if as_of is None else int(as_of.timestamp() * 1_000_000)
        for r in rows:
            us = ingested.get(r[2])
            out.append(
                {
                    "event_timestamp": r[0],
                    "created": r[1],
                    "ingested_at": None
                    if us is None
                    else datetime.fromtimestamp(us / 1_000_000, UTC),
                    "known_at_as_of": True if limit_us is None or us is None else us <= limit_us,
                    "values": dict(zip(names, r[3:], strict=True)),
                }
            )
        return out


def add_lineage_edge(
    nodes: dict[str, dict[str, Any]], edges: set[tuple[str, str, str]], e: dict[str, Any]
) -> None:
    """One registry lineage edge into a graph: both ends as nodes (`kind:id`), then the edge."""
    for kind, ident in ((e["src_kind"], e["src_id"]), (e["dst_kind"], e["dst_id"])):
        nid = f"{kind}:{ident}"
        label = ident[:12] if kind == "training_set" else ident
        nodes[nid] = {"id": nid, "kind": kind, "label": label}
    edges.add((f"{e['src_kind']}:{e['src_id']}", f"{e['dst_kind']}:{e['dst_id']}", e["relation"]))


def _pylist(table: Any) -> list[dict[str, Any]]:
    """`table.to_pylist()`, its timestamp columns converted by `featureline._time` instead: pyarrow's
    conversion of a timestamp imports pandas (a third of a second on a server's first page)."""
    import pyarrow as pa

    from featureline._time import from_us

    columns: dict[str, list[Any]] = {}
    for name, col in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_timestamp(col.type):
            us = col.cast(pa.timestamp("us", col.type.tz)).cast(pa.int64()).to_pylist()
            naive = col.type.tz is None
            columns[name] = [
                None if v is None else from_us(v).replace(tzinfo=None) if naive else from_us(v)
                for v in us
            ]
        else:
            columns[name] = col.to_pylist()
    return [
        dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)
    ]


def _duckdb(offline: Any) -> Any:
    """The offline engine's DuckDB connection factory (None for an engine without one)."""
    return getattr(offline.engine, "connection", None)


def _diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """What changed from definition `a` to `b` (fields added, removed, retyped; other keys)."""
    fa = {f["name"]: f for f in a["schema"]}
    fb = {f["name"]: f for f in b["schema"]}
    return {
        "from": a["version"],
        "to": b["version"],
        "added": [n for n in fb if n not in fa],
        "removed": [n for n in fa if n not in fb],
        "changed": [
            {"field": n, "from": fa[n].get("dtype"), "to": fb[n].get("dtype")}
            for n in fa
            if n in fb and fa[n] != fb[n]
        ],
        "settings": [
            {"key": k, "from": a.get(k), "to": b.get(k)}
            for k in sorted(set(a) | set(b))
            if k not in ("schema", "version") and a.get(k) != b.get(k)
        ],
    }


def _seconds(start: Any, end: Any) -> float | None:
    if isinstance(start, datetime) and isinstance(end, datetime):
        return (end - start).total_seconds()
    return None


def _run_row(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "run_id": r["run_id"],
        "pipeline": r["pipeline"],
        "status": r["status"],
        "created_at": r.get("created_at"),
        "finished_at": r.get("finished_at"),
        "duration_seconds": _seconds(r.get("created_at"), r.get("finished_at")),
        "error": r.get("error"),
        "tags": r.get("tags") or {},
    }


def _artifact(ref: Any) -> Any:
    if hasattr(ref, "id"):
        return {
            "id": ref.id,
            "kind": getattr(ref, "kind", None),
            "size": getattr(ref, "size", None),
        }
    return str(ref)
