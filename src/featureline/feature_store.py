"""FeatureStore: the façade users hold. It delegates; the work lives in registry/ and offline/."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from featureline.catalog import Catalog, OdfvSpec
from featureline.config import RepoConfig
from featureline.definitions import Entity, FeatureService, FeatureView, validate_definitions
from featureline.errors import NotFoundError, ValidationError, did_you_mean
from featureline.read import online_features as _online_features

if TYPE_CHECKING:
    import pyarrow as pa

    from featureline.auth import Authorizer, Principal
    from featureline.models import ModelRegistry
    from featureline.offline.store import Commit, IngestResult, OfflineStore, VacuumResult
    from featureline.offline.training import TrainingSet
    from featureline.online import OnlineResponse, OnlineStore
    from featureline.online.materialize import MaterializeResult
    from featureline.quality import ReplayResult
    from featureline.read import ReadSource
    from featureline.registry import Plan, RegistryStore, RegistryVersion
    from featureline.write import WriteTarget


T = TypeVar("T")
_monotonic = time.monotonic  # the hot paths' clock, bound once


def _as_of_us(as_of: datetime | str | None) -> int | None:
    from featureline._time import parse_as_of

    return parse_as_of(as_of)


def _stored_view(view: Any) -> FeatureView:
    """`view` if it stores rows; an on-demand view is a clear error where a stored one is needed."""
    if isinstance(view, FeatureView):
        return view
    sources = ", ".join(f"`{s}`" for s in getattr(view, "source_views", [])) or "its sources"
    raise ValidationError(
        f"`{view.name}` is an on-demand feature view: it is computed at read time from {sources} (and the request) "
        f"and stores nothing, so it cannot be ingested, previewed or materialized. Fix: use a source view here, "
        f"or read `{view.name}:<feature>` with get_training_set / get_online_features."
    )


class FeatureStore:
    """The feature store of one feature repo (a folder with featureline.yaml)."""

    def __init__(
        self,
        repo_path: str | os.PathLike[str] = ".",
        *,
        principal: Principal | None = None,
        token: str | None = None,
    ) -> None:
        """`principal` / `token` (default: FEATURELINE_TOKEN): who this store acts as when
        `auth` is enabled in featureline.yaml (a token is verified; a principal is trusted)."""
        self.config = RepoConfig.load(repo_path)
        self._registry: RegistryStore | None = None
        self._offline: OfflineStore | None = None
        self._online: OnlineStore | None = None
        self._models: ModelRegistry | None = None
        self._cat: tuple[float, Catalog] | None = None  # (checked at, catalog) for the hot paths
        self._catalog_cache: tuple[Any, Catalog] | None = None  # (registry head, its catalog)
        from featureline.online import PlanCache

        # read plans (resolved features, key types, decoders) by feature list, least recently used
        # dropped first (clients choose the lists); reset on catalog change
        self._hot = PlanCache(self.config.server.read_plan_cache)
        self.catalog_refresh_seconds = 1.0
        self._reads: ReadSource | None = None
        self._auth: Authorizer | None = None
        auth = self.config.auth
        if auth.enabled or auth.audit.enabled:
            from featureline.auth import Authorizer

            self._auth = Authorizer(
                auth,
                self.repo_path,
                self._permissions_catalog,
                self.config.registry,
                self.config.project,
            )
            token = token or os.environ.get("FEATURELINE_TOKEN") or None
            if principal is None and token is not None:
                principal = self._auth.authenticate(token)
            if principal is not None:
                self._auth.default = self._auth.caller(principal)

    @property
    def authorizer(self) -> Authorizer | None:
        """The permissions, tokens and audit log of this repo (None when `auth` is off)."""
        return self._auth

    def _permissions_catalog(self) -> Catalog | None:
        held = self._cat  # `_current()`'s common case inlined (the HTTP hook asks per request)
        if held is not None and _monotonic() - held[0] <= self.catalog_refresh_seconds:
            return held[1]
        try:
            return self._current()
        except NotFoundError:  # nothing applied yet: no permissions
            return None

    def _caller(self) -> Any:
        """What the read and write paths check: None with auth off (nothing checked)."""
        a = self._auth
        return None if a is None else a.current()

    @property
    def repo_path(self) -> Path:
        return self.config.repo_path

    @property
    def registry(self) -> RegistryStore:
        if self._registry is None:
            from featureline.registry import open_registry

            self._registry = open_registry(
                self.config.registry, self.config.project, self.config.repo_path
            )
        return self._registry

    @property
    def offline(self) -> OfflineStore:
        if self._offline is None:
            from featureline.offline.engines import open_engine
            from featureline.offline.store import OfflineStore

            self._offline = OfflineStore(
                self.config.offline_path, open_engine(self.config.offline_engine)
            )
        return self._offline

    @property
    def online(self) -> OnlineStore:
        if self._online is None:
            from featureline.online import open_online_store

            self._online = open_online_store(
                self.config.online, self.config.repo_path, self.config.project
            )
        return self._online

    @property
    def models(self) -> ModelRegistry:
        """The model registry (kept in the metadata store next to pipeline runs)."""
        if self._models is None:
            from featureline.models import ModelRegistry
            from featureline.pipelines.artifacts import ArtifactStore
            from featureline.pipelines.metadata import open_metadata_store

            md = open_metadata_store(self.config.metadata, self.repo_path, self.config.project)
            self._models = ModelRegistry(md, ArtifactStore(self.config.artifacts))
        return self._models

    # -- definitions ---------------------------------------------------------------------------
    def _desired(self, objects: Iterable[Any] | None) -> dict[str, Any]:
        from featureline.repo import RepoContents, load_repo

        if objects is None:
            contents = load_repo(self.repo_path)
        else:
            contents = RepoContents()
            for o in objects:
                contents.add(o)
        validate_definitions(
            contents.entities,
            contents.views,
            contents.services,
            self._source_schemas(contents.views),
            contents.odfvs,
        )
        return {
            "project": self.config.project,
            "entities": {e.name: e.to_dict() for e in contents.entities},
            "views": {v.name: [v.to_dict()] for v in contents.views},
            "services": {s.name: s.to_dict() for s in contents.services},
            "odfvs": {o.name: o.to_dict() for o in contents.odfvs},
            "permissions": {p.name: p.to_dict() for p in contents.permissions},
        }

    def _source_schemas(self, views: list[FeatureView]) -> dict[str, dict[str, Any]]:
        import glob

        from featureline.types import from_arrow

        out: dict[str, dict[str, Any]] = {}
        for v in views:
            if v.source is None:
                continue
            path = self._source_path(v.source.path)
            files = sorted(glob.glob(path))
            if not files or v.source.format != "parquet":
                continue
            import pyarrow.parquet as pq

            try:
                schema = pq.read_schema(files[0])
            except Exception:  # unreadable source: reported when ingesting it
                continue
            out[v.name] = {f.name: from_arrow(f.type) for f in schema}
        return out

    def _source_path(self, path: str) -> str:
        return path if os.path.isabs(path) else str(self.repo_path / path)

    def plan(self, objects: Iterable[Any] | None = None, new_versions: Iterable[str] = ()) -> Plan:
        """What `apply` would change, planned against the registry's latest version (`base_version`)."""
        from featureline.registry import plan

        latest = self.registry.latest()
        p = plan(latest.snapshot if latest else None, self._desired(objects), set(new_versions))
        p.base_version = latest.version if latest else None
        return p

    def apply(
        self,
        objects: Iterable[Any] | None = None,
        new_versions: Iterable[str] = (),
        message: str = "",
        *,
        planned: Plan | None = None,
    ) -> RegistryVersion | None:
        """Store the repo's definitions (or `objects`) as a new registry version; None if unchanged.

        `planned`: store exactly this plan (from `plan()`, e.g. the one shown to the user)
        instead of planning again. The new version is appended only onto the version the plan
        was made against (DESIGN §3, a compare-and-swap). If another apply stored a version
        meanwhile and the two changed different objects, this plan is re-applied on top of it
        (a 3-way merge, retried a few times); if they overlap, RegistryConflictError names the
        objects and nothing is stored.
        """
        from featureline.registry import check

        p = planned if planned is not None else self.plan(objects, new_versions)
        check(p)
        if p.is_empty:
            return None
        caller = self._caller()
        if caller is None:
            return self._append(p, message)
        # `apply` on every object changed, `admin` for permissions; the result audited
        old = self.registry.get(p.base_version).snapshot if p.base_version else None
        caller.authorizer.check_apply(caller.principal, p.changes, p.snapshot, old)
        return caller.outcome("apply", "registry", lambda: self._append(p, message))

    def _append(self, p: Plan, message: str) -> RegistryVersion | None:
        """Append plan `p` onto its base version, re-applied on newer ones that commute."""
        from featureline.errors import RegistryConflictError
        from featureline.registry import rebase

        attempts = 5
        todo, base = p, None
        for attempt in range(1, attempts + 1):
            try:
                return self.registry.append(
                    todo.snapshot, todo.changes, message, expected_version=todo.base_version
                )
            except RegistryConflictError as e:
                latest = self.registry.latest()
                if attempt == attempts or latest is None:
                    raise RegistryConflictError(
                        f"{e.message}\n(Gave up after {attempt} attempts: other applies kept storing versions.)",
                        e.expected,
                        e.actual,
                        e.objects,
                    ) from e
            if attempt == 1 and p.base_version is not None:
                base = self.registry.get(p.base_version).snapshot
            rebased = rebase(base, p, latest.snapshot, p.base_version, latest.version)
            if rebased is None:  # the other apply made the very same changes
                return None
            todo = rebased
        raise AssertionError("unreachable")  # the loop returns or raises

    def catalog(self, as_of: datetime | str | None = None) -> Catalog:
        """The definitions the registry held now, or at system time `as_of`."""
        us = _as_of_us(as_of)
        head = None
        if us is None:
            head = self.registry.head()
            cached = self._catalog_cache
            if head is not None and cached is not None and cached[0] == head:
                return cached[1]  # the registry has not moved: one indexed one-row query
            rv = self.registry.latest()
        else:
            from featureline.offline.store import us_to_dt

            rv = self.registry.at(us_to_dt(us))
        if rv is None:
            if as_of is not None:
                first = self.registry.history()
                if first:
                    raise NotFoundError(
                        f"The registry held no definitions at {as_of}: its first version was applied at "
                        f"{first[0].applied_at.isoformat()}. Fix: pass an as_of at or after that time."
                    )
                raise NotFoundError(
                    f"The registry held no definitions at {as_of}. Fix: run `featureline apply` in the repo first."
                )
            raise NotFoundError(
                "The registry holds no definitions yet. Fix: run `featureline apply` in the repo first."
            )
        catalog = Catalog.from_snapshot(rv.version, rv.snapshot)
        if head is not None:  # read after the head: never older than what it marks
            self._catalog_cache = (head, catalog)
        return catalog

    def history(self) -> list[RegistryVersion]:
        return self.registry.history()

    def latest_version(self) -> RegistryVersion | None:
        """The registry's newest version; None before the first `apply`."""
        return self.registry.latest()

    def get_feature_view(self, name: str, version: int | None = None) -> FeatureView:
        """A feature view by name (the latest version), `name@v2`, or `name` with `version`."""
        return self._view(name, version)

    def list_on_demand_feature_views(self) -> list[OdfvSpec]:
        """On-demand feature views as the registry holds them (computed at read time, nothing stored)."""
        return list(self.catalog().odfvs.values())

    def list_feature_views(self) -> list[FeatureView]:
        return [vs[-1] for vs in self.catalog().views.values()]

    def list_entities(self) -> list[Entity]:
        return list(self.catalog().entities.values())

    def list_feature_services(self) -> list[FeatureService]:
        return list(self.catalog().services.values())

    def _view(self, view: FeatureView | str, version: int | None = None) -> FeatureView:
        if isinstance(view, FeatureView):
            return self.catalog().view(view.name, version or None)
        name, _, v = view.partition("@")
        if v:
            version = int(v.lstrip("vV")) if v.lstrip("vV").isdigit() else None
            if version is None:
                raise ValidationError(f"Bad view version in `{view}`. Fix: write `view@v2`.")
        return _stored_view(self.catalog().view(name, version))

    # -- data ------------------------------------------------------------------------------------
    def ingest(
        self,
        view: FeatureView | str,
        data: Any = None,
        version: int | None = None,
        idempotency_key: str | None = None,
    ) -> IngestResult:
        """Append a batch (pandas, polars, pyarrow, a file path; None = the view's source) atomically.

        The same `idempotency_key` twice is one commit: the second call returns the first's.
        """
        from featureline.write import write

        fv = self._view(view, version)
        caller = self._caller()
        return self._audited(
            caller,
            "write_offline",
            fv,
            lambda: write(
                self._write_target(),
                fv,
                data,
                online=False,
                idempotency_key=idempotency_key,
                principal=caller,
            ),
        )

    def _audited(self, caller: Any, action: str, view: FeatureView, fn: Callable[[], T]) -> T:
        """`fn()`, its result audited when auth or the audit log is on."""
        if caller is None:
            return fn()
        return caller.outcome(action, f"feature_view:{view.name}", fn)

    def get_training_set(
        self,
        entity_df: Any,
        features: Any,
        as_of: datetime | str | None = None,
        full_feature_names: bool = False,
        timestamp_column: str | None = None,
    ) -> TrainingSet:
        """A point-in-time correct training set (DESIGN §3), optionally as the store knew it at `as_of`."""
        from featureline.offline.store import us_to_dt
        from featureline.read import training_set

        us = _as_of_us(as_of)
        cat = self.catalog(us_to_dt(us) if us is not None else None)
        return training_set(
            self._read_source(),
            cat,
            entity_df,
            features,
            us,
            full_feature_names,
            timestamp_column,
            self._caller(),
        )

    def _read_source(self) -> ReadSource:
        if self._reads is None:
            from featureline.read import ReadSource

            self._reads = ReadSource(self.offline, lambda: self.online, self._load_repo)
        return self._reads

    def _load_repo(self) -> object:
        from featureline.repo import load_repo

        return load_repo(self.repo_path)

    def preview(self, view: FeatureView | str, n: int = 10) -> pa.Table:
        """The newest `n` stored rows of a view (tie winners only)."""
        fv = self._view(view)
        caller = self._caller()
        if caller is not None:  # every column is read, pii ones included
            caller.check_read("read_offline", [fv], lambda: [(fv, fv.feature_names)])
        return self.offline.latest_rows(fv, limit=n)

    def check_read(self, view: FeatureView | str, action: str = "describe") -> FeatureView:
        """The stored view `view`, once the caller may `action` it with all its fields (the check
        `describe` makes; `preview`'s with read_offline), for a reader that caches what those
        compute (the web UI's statistics and preview)."""
        fv = self._view(view)
        caller = self._caller()
        if caller is not None:
            caller.check_read(action, [fv], lambda: [(fv, fv.feature_names)])
        return fv

    def describe(self, view: FeatureView | str) -> dict[str, Any]:
        """Definition, version, row counts, time range and per-feature statistics."""
        cat = self.catalog()
        if isinstance(view, str) and view in cat.odfvs:
            spec = cat.odfvs[view]
            return {
                "on_demand": True,
                "definition": {
                    "name": spec.name,
                    "version": spec.version,
                    "sources": spec.source_views,
                    "mode": spec.mode,
                    "request_fields": [f.to_dict() for f in spec.request_fields],
                    "schema": [f.to_dict() for f in spec.features],
                    "code_hash": spec.code_hash,
                },
                "versions": [spec.version],
            }
        fv = self._view(view)
        caller = self._caller()
        if caller is not None:  # statistics summarize the values: pii fields need their grant
            caller.check_read("describe", [fv], lambda: [(fv, fv.feature_names)])
        info = {"definition": fv.to_dict(), "versions": [v.version for v in cat.views[fv.name]]}
        info.update(self.offline.profile(fv))
        return info

    # -- online ----------------------------------------------------------------------------------
    def _current(self) -> Catalog:
        """The latest catalog, re-checked at most every `catalog_refresh_seconds` (hot paths)."""
        now = _monotonic()
        if self._cat is None or now - self._cat[0] > self.catalog_refresh_seconds:
            head = self.registry.head()
            if self._cat is None or head is None or head[0] != self._cat[1].version:
                self._hot.clear()
                cat = self.catalog()
            else:
                cat = self._cat[1]
            self._cat = (now, cat)
        return self._cat[1]

    def _online_views(self, cat: Catalog, names: Iterable[str] | None = None) -> list[FeatureView]:
        """Every version of the chosen views that is served online (old versions stay readable)."""
        chosen = (
            [
                (n, cat.views[n]) if n in cat.views else (n, [_stored_view(cat.view(n))])
                for n in names
            ]
            if names
            else list(cat.views.items())
        )
        return [v for _, vs in chosen for v in vs if v.online]

    def _check_writes(self, views: list[FeatureView]) -> None:
        """Materializing writes online: `write_online` on every view it copies."""
        caller = self._caller()
        if caller is not None:
            for v in views:
                caller.check_write("write_online", v)

    def materialize(
        self,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        views: Iterable[str] | None = None,
        progress: Any = None,
    ) -> list[MaterializeResult]:
        """Copy, per key, the winning row with event time in [start, end] to the online store."""
        from featureline.online.materialize import materialize_view

        cat = self.catalog()
        chosen = self._online_views(cat, views)
        self._check_writes(chosen)
        s, e = _as_of_us(start), _as_of_us(end)
        return [
            materialize_view(self.offline, self.online, v, start_us=s, end_us=e, progress=progress)
            for v in chosen
        ]

    def materialize_incremental(
        self,
        views: Iterable[str] | None = None,
        progress: Any = None,
        end: datetime | str | None = None,
    ) -> list[MaterializeResult]:
        """Copy what was *ingested* since the last run (late and corrected rows included).

        `end` bounds the copy in event time: a row dated later is left for a later run (a run
        bounded by `end` does not move the watermark: the next run rescans from the last
        unbounded one)."""
        from featureline.online.materialize import materialize_view

        cat = self.catalog()
        chosen = self._online_views(cat, views)
        self._check_writes(chosen)
        e = _as_of_us(end)
        return [
            materialize_view(
                self.offline, self.online, v, incremental=True, end_us=e, progress=progress
            )
            for v in chosen
        ]

    def get_online_features(
        self, features: Any, entity_rows: Any, full_feature_names: bool = False
    ) -> OnlineResponse:
        """Feature vectors for `entity_rows` from the online store, with per-feature statuses."""
        return self._read_online(features, entity_rows, full_feature_names, None)

    def _read_online(
        self, features: Any, entity_rows: Any, full_feature_names: bool, caller: Any
    ) -> OnlineResponse:
        """`get_online_features` for the feature server: `caller` is the one the request's HTTP
        hook returned (and checked alive), or None with auth off (then the store's own, as
        `get_online_features`, which finds the request's caller in its context variable)."""
        if caller is None:
            caller = self._caller()
            live = False
        else:
            live = True
        return _online_features(
            self._read_source(),
            self._current(),
            self._hot,
            features,
            entity_rows,
            full_feature_names,
            caller,
            live,
        )

    def push(
        self,
        view: FeatureView | str,
        rows: Any,
        idempotency_key: str | None = None,
        to: str = "online_and_offline",
    ) -> IngestResult:
        """Write rows offline and, through the same ordering rules, online; readable online on return.

        `to="offline"` writes the offline store only. The same `idempotency_key` twice is one
        commit (and completes the online apply if the first call could not).
        """
        from featureline._frames import rows_to_table, to_arrow
        from featureline.write import write

        modes = ("online_and_offline", "offline")
        if to not in modes:
            raise ValidationError(
                f"`{to}` is not a push target.{did_you_mean(str(to), modes)} Valid: {', '.join(modes)}."
            )
        fv = self._view(view)
        if isinstance(rows, list):  # row dicts: each column built with its declared type
            typed = {"Int64", "Float64", "String", "Bool"}
            types = {f.name: f.dtype.to_arrow() for f in fv.schema if str(f.dtype) in typed}
            rows = rows_to_table(rows, types, f"push to `{fv.name}`")
        table = to_arrow(rows, f"push to `{fv.name}`")
        caller = self._caller()
        online = to != "offline"
        return self._audited(
            caller,
            "write_online" if online else "write_offline",
            fv,
            lambda: write(
                self._write_target(),
                fv,
                table,
                online=online,
                idempotency_key=idempotency_key,
                principal=caller,
            ),
        )

    def _write_target(self) -> WriteTarget:
        from featureline.write import WriteTarget

        return WriteTarget(
            self.offline, lambda: self.online, self.repo_path, self.config.max_future_seconds
        )

    def commits(self, view: FeatureView | str, as_of: datetime | str | None = None) -> list[Commit]:
        """The commits of a view version that a read at system time `as_of` (now when None)
        sees. A `FeatureView` is taken as it is (its name and version); a name (`name@v2`) is
        looked up in the registry."""
        fv = view if isinstance(view, FeatureView) else self._view(view)
        return self.offline.commits(fv.name, fv.version, _as_of_us(as_of))

    def compact(self, view: FeatureView | str) -> Commit | None:
        """Merge a view's live commits into one part (every as-of answer kept), then vacuum."""
        fv = self._view(view)
        c = self.offline.compact(fv)
        if c is not None:
            self.offline.vacuum(fv)
        return c

    def vacuum(
        self, view: FeatureView | str | None = None, grace_seconds: float | None = None
    ) -> list[VacuumResult]:
        """Delete superseded and orphaned files of a view (all views when None), keeping every as-of answer."""
        from featureline.offline.store import VACUUM_GRACE_SECONDS

        grace = VACUUM_GRACE_SECONDS if grace_seconds is None else grace_seconds
        if grace < 0:
            raise ValidationError(f"grace_seconds `{grace}` is negative. Fix: pass seconds >= 0.")
        cat = self.catalog()
        views = (
            [self._view(view)] if view is not None else [v for vs in cat.views.values() for v in vs]
        )
        return [self.offline.vacuum(v, grace) for v in views]

    def freshness(self, view: FeatureView | str | None = None) -> dict[str, dict[str, Any]]:
        """Per view: stored rows, newest event, last ingestion, staleness (now - newest event
        stored), and online: the freshness objective, event-to-servable latency (a histogram of
        every online write, with p50/p99), the newest servable event, its staleness and whether
        the objective holds (`ok`; None without an objective or without online data); and the
        rows its constraints hold in quarantine (`quarantined`). With `view` (a name, `name@v2`
        or a FeatureView): that view's alone, keyed by its name (the others are not read)."""
        import time

        from featureline.freshness import log_dir, summary, view_key
        from featureline.offline.store import us_to_dt
        from featureline.quality import quarantine

        out: dict[str, dict[str, Any]] = {}
        now = time.time_ns() // 1000
        folder = log_dir(self.offline.root)
        if view is None:
            views = self.list_feature_views()
            held = quarantine.count(self.offline.root)
        else:  # that view's quarantine alone (not every view's file footers)
            views = [view if isinstance(view, FeatureView) else self._view(view)]
            held = quarantine.count(self.offline.root, views[0].name)
        for v in views:
            commits = self.offline.commits(v.name, v.version)
            last_ev = max((c.meta.get("max_event_us") or 0 for c in commits), default=0) or None
            online = summary(folder, view_key(v.name, v.version), now)
            servable = online["staleness_seconds"]
            objective = v.freshness.total_seconds() if v.freshness is not None else None
            out[v.name] = {
                "rows": sum(c.rows for c in commits),
                "last_event": us_to_dt(last_ev) if last_ev else None,
                "last_ingested": us_to_dt(commits[-1].ingested_at_us) if commits else None,
                "staleness_seconds": (now - last_ev) / 1e6 if last_ev else None,
                "objective_seconds": objective,
                "servable_staleness_seconds": servable,
                "ok": None if objective is None or servable is None else servable <= objective,
                "latency": online,
                "quarantined": held.get(v.name, 0),
            }
        return out

    # -- quarantine (featureline.quality) ---------------------------------------------------------
    def quarantine(self) -> dict[str, dict[str, Any]]:
        """Per view with quarantined rows: rows, batches, oldest/newest time, count per constraint
        (with auth on: the views the caller may `describe`)."""
        from featureline.errors import PermissionDeniedError
        from featureline.quality import quarantine

        found = quarantine.summary(self.offline.root)
        caller = self._caller()
        if caller is None:
            return found
        cat = self.catalog()
        out = {}
        for name, info in found.items():
            views = cat.views.get(name)
            try:
                if not views:  # a view no longer defined: no permission can name it
                    continue
                caller.check_read("describe", [views[-1]])
            except PermissionDeniedError:
                continue
            out[name] = info
        return out

    def quarantined_rows(self, view: FeatureView | str) -> pa.Table | None:
        """A view's quarantined rows: its columns as written, plus `__quarantine_id`, `__violations`
        (the constraints each violates), `__batch_id`, `__commit`, `__view_version`, `__quarantined_at`."""
        from featureline.quality import quarantine

        fv = self._view(view)
        caller = self._caller()
        if caller is not None:  # the rows' values, pii fields included: as `preview`
            caller.check_read("read_offline", [fv], lambda: [(fv, fv.feature_names)])
        return quarantine.read(self.offline.root, fv.name)

    def replay_quarantine(self, view: FeatureView | str, fixed: Any = None) -> ReplayResult:
        """Re-check a view's quarantined rows and land, in one commit, those that now pass (then
        remove them from the quarantine); the others stay. `fixed`: corrected rows (a frame or a
        file) carrying the `__quarantine_id` of the row each replaces; None: the rows as stored."""
        from featureline._frames import to_arrow
        from featureline.quality import quarantine
        from featureline.write import csv_types

        fv = self._view(view)
        caller = self._caller()
        if caller is not None:  # a replay is a push (checked again there), refused up front
            caller.check_write("write_online", fv)
        table = (
            None if fixed is None else to_arrow(fixed, f"fixed rows for `{fv.name}`", csv_types(fv))
        )
        return quarantine.replay(
            self.offline.root, fv, table, lambda rows, key: self.push(fv, rows, key)
        )

    def online_health(self) -> dict[str, Any]:
        """The online store's health: `{"ok": bool, "backend": str, "detail": str, ...}`.

        Opening the store can still raise (a bad `online_store` setting, a missing extra)."""
        return self.online.health()

    def close(self) -> None:
        if self._auth is not None:
            self._auth.close()
        if self._models is not None:
            self._models.metadata.close()
        if self._online is not None:
            self._online.close()
        if self._offline is not None:
            self._offline.close()
        if self._registry is not None:
            self._registry.close()

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
