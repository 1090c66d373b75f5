"""What the web UI's JSON API answers (issue 12), read through the FeatureStore façade.

Every function is synchronous (the routes run it in the threadpool) and returns JSON-able values.
The catalog search index is rebuilt when the registry version or the model versions change; the
registry's latest snapshot and its version log are re-read only when its head
(`RegistryStore.head()`) moves; a view's statistics (the offline engine's profile with
percentiles, histograms and rows by event time, from the parts' Parquet footers, one scan, and
on large views a declared row-group sample; the superseded rows from the figures each commit
records in the view's log, a scan only for commits without them) are cached per view version and
live commit. After a computation the view's mergeable statistics (`_profile_merge.ProfileState`:
counts, sums, min/max, rows per hour, HLL and KLL sketches, histograms) are kept too (built at
once up to `STATE_SYNC_ROWS` rows, else on a background thread); when the next commits only
appended rows (merges of kept or new commits move rows, they add none), the page profiles the new
rows alone and merges them in (`_incremental`), else it computes everything again."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from featureline._sql import INGESTED_AT
from featureline.errors import NotFoundError, PermissionDeniedError, ValidationError, did_you_mean

if TYPE_CHECKING:
    from featureline.definitions import FeatureView
    from featureline.feature_store import FeatureStore
    from featureline.offline._log import Commit
    from featureline.offline._pit import PartRef
    from featureline.offline._profile_merge import ProfileState

__all__ = ["UiData", "add_lineage_edge"]

BINS = 20
MAX_RESULTS = 50
MAX_COMPARE = 50
QUANTILES = (0.01, 0.25, 0.5, 0.75, 0.99)
STATS_ENTRIES = 32  # view versions whose statistics (and mergeable state) stay cached, LRU
STATE_SYNC_ROWS = 1_000_000  # up to this many rows the mergeable state is built at once
_log = logging.getLogger(__name__)
_CHAIN = {"feature_view", "training_set", "run", "model", "alias"}


def _stats_key(fv: FeatureView) -> tuple[Any, ...]:
    """A view version's statistics key: its name, version and definition (keys, features and
    their types), so that a registry made again with other definitions reuses nothing."""
    feats = tuple((f.name, str(f.dtype)) for f in fv.features)
    return (fv.name, fv.version, tuple(fv.join_keys), feats)


def _stats_body(info: dict[str, Any]) -> dict[str, Any]:
    return {
        "rows": info.get("rows", 0),
        "commits": info.get("commits", 0),
        "first_event": info.get("first_event"),
        "last_event": info.get("last_event"),
        "superseded_rows": info.get("superseded_rows", 0),
        "features": {n: dict(s) for n, s in info.get("features", {}).items()},
        "rows_by_time": info.get("rows_by_time") or {"unit": "day", "buckets": []},
        "approximate": info.get("approximate")
        or {"distinct": "HyperLogLog estimate (approx_count_distinct)"},
    }


@dataclass(frozen=True)
class _Kept:
    """A view version's mergeable statistics and the live commits they are of."""

    commits: dict[int, tuple[int, int]]  # seq: (ingested time µs, rows)
    state: ProfileState
    superseded: int | None = None  # their superseded rows, when known

    @classmethod
    def of(cls, commits: list[Commit], state: ProfileState, superseded: int | None = None) -> _Kept:
        return cls({c.seq: (c.ingested_at_us, c.rows) for c in commits}, state, superseded)

    @property
    def last_seq(self) -> int:
        return max(self.commits, default=0)

    @property
    def last_us(self) -> int:
        """The newest ingested time of the kept rows: a later commit's rows are ingested after
        (the log's times strictly increase), in a merged part too (each row keeps its own)."""
        return max((t for t, _ in self.commits.values()), default=0)

    def delta(self, live: list[Commit]) -> tuple[set[int], set[int]] | None:
        """(new commits whose rows are all new, merges holding new rows among kept ones: only
        their rows ingested after `last_us` are new) when `live` is the kept commits plus
        appended ones, some merged (with kept ones or not); None otherwise."""
        now = {c.seq: c for c in live}
        for seq, (at, _) in self.commits.items():
            if seq in now and now[seq].ingested_at_us != at:
                return None  # another log (the view made again)
        last = self.last_seq
        plain: set[int] = set()
        merged: set[int] = set()
        covered: set[int] = set()
        for c in live:
            if c.seq in self.commits:
                continue
            if c.seq < last:
                return None  # a commit the kept state never saw, from before it
            if not c.replaces:
                plain.add(c.seq)
                continue
            old = {s for s in c.replaces if s in self.commits}
            if any(s not in self.commits and s < last for s in c.replaces):
                return None
            covered |= old
            if len(old) < len(c.replaces):  # it merged commits newer than the state too
                merged.add(c.seq)
        if covered != set(self.commits) - set(now):
            return None  # a kept commit went other than into a live merge
        return plain, merged


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
        # (view, version, its definition's fingerprint): (stamp, statistics), least recent first
        self._stats: OrderedDict[tuple[Any, ...], tuple[Any, Any]] = OrderedDict()
        self._stats_gates: dict[tuple[Any, ...], threading.Lock] = {}
        self._states: OrderedDict[tuple[Any, ...], _Kept] = OrderedDict()  # mergeable, LRU
        self._state_jobs: dict[tuple[Any, ...], Future[None]] = {}
        self._state_pool: ThreadPoolExecutor | None = None
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

    def _stamp(self, fv: FeatureView) -> tuple[int, int]:
        """What a cached result of the view version's rows is valid for: its live commits."""
        commits = self.store.offline.commits(fv.name, fv.version)
        return (len(commits), commits[-1].seq if commits else 0)

    def _preview(self, fv: FeatureView) -> list[dict[str, Any]]:
        """The newest 10 stored rows (`preview`), cached per view version until its next commit;
        the caller's read_offline grant is checked before."""
        key, stamp = (fv.name, fv.version), self._stamp(fv)
        with self._lock:
            hit = self._previews.get(key)
        if hit is not None and hit[0] == stamp:
            return list(hit[1])
        rows = _pylist(self.store.preview(fv, 10))
        with self._lock:
            self._previews[key] = (stamp, rows)
        return list(rows)

    def _stats_for(self, fv: FeatureView) -> dict[str, Any]:
        """Row counts, per-feature statistics with percentiles and a histogram per numeric feature,
        and the row counts by event time: the offline engine's profile, cached per view version
        until its next commit (a compaction, too, makes a new stamp); after commits that only
        appended rows, the kept state merged with the new rows' (`_incremental`). One
        computation per view version at a time: a request arriving meanwhile waits for it
        instead of scanning too. The key holds the definition's fingerprint and the kept state
        its commits' ingested times: a view made again never reuses another's figures."""
        key, stamp = _stats_key(fv), self._stamp(fv)
        with self._lock:
            hit = self._stats.get(key)
            gate = self._stats_gates.setdefault(key, threading.Lock())
        if hit is not None and hit[0] == stamp:
            return dict(hit[1])
        with gate:
            with self._lock:
                hit = self._stats.get(key)
            if hit is not None and hit[0] == stamp:
                return dict(hit[1])
            out = self._incremental(fv, key)
            if out is None:
                out = self._compute_stats(fv)
                self._keep_state(fv, key, out["rows"])
            with self._lock:
                self._stats[key] = (stamp, out)
                self._stats.move_to_end(key)
                while len(self._stats) > STATS_ENTRIES:
                    old, _ = self._stats.popitem(last=False)
                    self._stats_gates.pop(old, None)
                    self._states.pop(old, None)
        return dict(out)

    def _live(self, fv: FeatureView) -> tuple[list[Commit], list[PartRef]] | None:
        """The live commits and their parts, read together (None: a commit landed between)."""
        offline = self.store.offline
        commits = offline.commits(fv.name, fv.version)
        parts = offline.parts(fv.name, fv.version)
        if {p.commit for p in parts} != {c.seq for c in commits if c.parts}:
            return None
        return commits, parts

    def _keep_state(self, fv: FeatureView, key: tuple[Any, ...], rows: int) -> None:
        """Build the mergeable state of the live rows: at once up to `STATE_SYNC_ROWS` rows, else
        on the background thread (one build at a time per view version; meanwhile pages compute
        in full, as before)."""
        from featureline.offline.engines.duckdb import DuckDBEngine

        if not isinstance(self.store.offline.engine, DuckDBEngine):
            return
        if rows <= STATE_SYNC_ROWS:
            self._build_state(fv, key)
            return
        with self._lock:
            job = self._state_jobs.get(key)
            if job is not None and not job.done():
                return
            if self._state_pool is None:
                self._state_pool = ThreadPoolExecutor(1, thread_name_prefix="ui-stats-state")
            self._state_jobs[key] = self._state_pool.submit(self._build_state, fv, key)

    def _build_state(self, fv: FeatureView, key: tuple[Any, ...]) -> None:
        try:
            live = self._live(fv)
            if live is None:
                return
            commits, parts = live
            offline = self.store.offline
            state = offline.engine.profile_state(fv, parts, BINS)  # type: ignore[attr-defined]
            # the count the full computation noted (None: the next pages look it up)
            superseded = offline.superseded_rows(fv, parts)
            self._put_state(key, _Kept.of(commits, state, superseded))
        except Exception as e:  # the next pages compute in full
            _log.warning("statistics state of %s v%d failed: %s", fv.name, fv.version, e)

    def _put_state(self, key: tuple[Any, ...], kept: _Kept) -> None:
        with self._lock:
            now = self._states.get(key)
            if now is None or now.last_seq <= kept.last_seq:
                self._states[key] = kept
                self._states.move_to_end(key)
            while len(self._states) > STATS_ENTRIES:
                self._states.popitem(last=False)

    def wait_stats_states(self) -> None:
        """Wait for the mergeable states being built on the background thread (benchmarks)."""
        with self._lock:
            jobs = list(self._state_jobs.values())
        for job in jobs:
            job.result()

    def _incremental(self, fv: FeatureView, key: tuple[Any, ...]) -> dict[str, Any] | None:
        """The statistics from the kept state and the rows committed since, or None when they
        cannot be merged: no state kept (or another log's: other ingested times), a kept commit
        gone other than into a merge of kept and new commits, or a row count that does not add
        up. The superseded rows: the commit log's figures (`OfflineStore.superseded_rows`), else
        (new commits without one, merged meanwhile) the kept count plus the new rows less their
        pairs no kept row holds (`new_pairs`: the kept rows probed over the new event times),
        noted for the store's next lookups."""
        from featureline.offline import _profile_merge as pm

        with self._lock:
            kept = self._states.get(key)
        live = self._live(fv) if kept is not None else None
        if kept is None or live is None:
            return None
        commits, parts = live
        delta = kept.delta(commits)
        if delta is None:
            return None
        plain, merged = delta
        offline = self.store.offline

        def parts_of(seqs: set[int]) -> list[PartRef]:
            return [p for p in parts if p.commit in seqs]

        engine: Any = offline.engine
        superseded = offline.superseded_rows(fv, parts)
        if superseded is None:  # new commits without a figure, merged: the new rows' pairs
            if kept.superseded is None:
                return None
            last = kept.last_us
            fresh = [(parts_of(plain), "TRUE"), (parts_of(merged), f"{INGESTED_AT} > {last}")]
            stored = [
                ([p for p in parts if p.commit not in plain | merged], "TRUE"),
                (parts_of(merged), f"{INGESTED_AT} <= {last}"),
            ]
            n, distinct = engine.new_pairs(fv, stored, fresh)
            superseded = kept.superseded + n - distinct
            offline.note_superseded(fv, parts, superseded)  # later commits look up theirs alone
        edges = {n: f.edges for n, f in kept.state.features.items() if f.edges is not None}
        state, rebin = kept.state, set()
        for refs, newer in ((plain, None), (merged, kept.last_us)):
            chosen = parts_of(refs)
            if chosen:
                got = engine.profile_state(fv, chosen, BINS, edges, newer)
                state, more = pm.merge(state, got)
                rebin |= more
        if state.rows != sum(c.rows for c in commits):
            return None  # rows went (or came) other than by appends: compute again
        if rebin:
            fs = state.features
            want = {n: pm.bin_edges(fs[n].lo, fs[n].hi, BINS) for n in rebin}
            ok = {n: e for n, e in want.items() if e is not None}
            counts = engine.profile_bins(fv, parts, ok)
            state = pm.with_bins(state, {n: (ok[n], c) for n, c in counts.items()})
        self._put_state(key, _Kept.of(commits, state, superseded))
        prof = pm.finalize(state, superseded, QUANTILES)
        return _stats_body({"commits": len(commits), **prof})

    def _compute_stats(self, fv: FeatureView) -> dict[str, Any]:
        from featureline.offline.engines.duckdb import DuckDBEngine

        offline = self.store.offline
        engine = offline.engine
        if isinstance(engine, DuckDBEngine):  # the caller's describe grant is checked before
            parts = offline.parts(fv.name, fv.version)
            # from the commit log's figures (no keys' scan), else None: a scan
            known = offline.superseded_rows(fv, parts)
            info = {
                "commits": len(offline.commits(fv.name, fv.version)),
                **engine.profile(
                    fv, parts, bins=BINS, quantiles=QUANTILES, by_time=True, superseded_rows=known
                ),
            }
            if known is None and parts:  # the scan's count: the next commits look up theirs
                offline.note_superseded(fv, parts, info["superseded_rows"])
        else:  # another engine: describe's statistics, without histograms and percentiles
            info = self.store.describe(fv)
        return _stats_body(info)

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
