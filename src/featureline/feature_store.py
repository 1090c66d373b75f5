"""FeatureStore: the façade users hold. It delegates; the work lives in registry/ and offline/."""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featureline.catalog import Catalog
from featureline.config import RepoConfig
from featureline.definitions import Entity, FeatureService, FeatureView, validate_definitions
from featureline.errors import NotFoundError, ValidationError

if TYPE_CHECKING:
    import pyarrow as pa

    from featureline.offline.store import IngestResult, OfflineStore
    from featureline.offline.training import TrainingSet
    from featureline.registry import Plan, RegistryStore, RegistryVersion


def _as_of_us(as_of: datetime | str | None) -> int | None:
    from featureline.offline.store import dt_to_us

    if as_of is None:
        return None
    if isinstance(as_of, str):
        try:
            as_of = datetime.fromisoformat(as_of.replace("Z", "+00:00"))
        except ValueError as e:
            raise ValidationError(f"Bad as_of `{as_of}`: {e}. Fix: use ISO 8601 with an offset, e.g. 2025-01-01T00:00:00+00:00.") from e
    if not isinstance(as_of, datetime) or as_of.tzinfo is None:
        raise ValidationError(f"as_of `{as_of}` is a naive datetime; Featureline never guesses a time zone. Fix: pass an aware datetime, e.g. datetime(..., tzinfo=timezone.utc).")
    return dt_to_us(as_of)


class FeatureStore:
    """The feature store of one feature repo (a folder with featureline.yaml)."""

    def __init__(self, repo_path: str | os.PathLike[str] = ".") -> None:
        self.config = RepoConfig.load(repo_path)
        self._registry: RegistryStore | None = None
        self._offline: OfflineStore | None = None

    @property
    def repo_path(self) -> Path:
        return self.config.repo_path

    @property
    def registry(self) -> RegistryStore:
        if self._registry is None:
            from featureline.registry import open_registry

            self._registry = open_registry(self.config.registry, self.config.project, self.config.repo_path)
        return self._registry

    @property
    def offline(self) -> OfflineStore:
        if self._offline is None:
            from featureline.offline.store import OfflineStore

            self._offline = OfflineStore(self.config.offline_path)
        return self._offline

    # -- definitions ---------------------------------------------------------------------------
    def _desired(self, objects: Iterable[Any] | None) -> dict[str, Any]:
        from featureline.repo import RepoContents, load_repo

        if objects is None:
            contents = load_repo(self.repo_path)
        else:
            contents = RepoContents()
            for o in objects:
                contents.add(o)
        validate_definitions(contents.entities, contents.views, contents.services, self._source_schemas(contents.views))
        return {
            "project": self.config.project,
            "entities": {e.name: e.to_dict() for e in contents.entities},
            "views": {v.name: [v.to_dict()] for v in contents.views},
            "services": {s.name: s.to_dict() for s in contents.services},
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
        from featureline.registry import plan

        latest = self.registry.latest()
        return plan(latest.snapshot if latest else None, self._desired(objects), set(new_versions))

    def apply(self, objects: Iterable[Any] | None = None, new_versions: Iterable[str] = (), message: str = "") -> RegistryVersion | None:
        """Store the repo's definitions (or `objects`) as a new registry version; None if unchanged."""
        from featureline.registry import check

        p = self.plan(objects, new_versions)
        check(p)
        if p.is_empty:
            return None
        return self.registry.append(p.snapshot, p.changes, message)

    def catalog(self, as_of: datetime | str | None = None) -> Catalog:
        """The definitions the registry held now, or at system time `as_of`."""
        us = _as_of_us(as_of)
        if us is None:
            rv = self.registry.latest()
        else:
            from featureline.offline.store import us_to_dt

            rv = self.registry.at(us_to_dt(us))
        if rv is None:
            when = f" at {as_of}" if as_of is not None else ""
            raise NotFoundError(f"The registry held no definitions{when}. Fix: run `featureline apply` in the repo first.")
        return Catalog.from_snapshot(rv.version, rv.snapshot)

    def history(self) -> list[RegistryVersion]:
        return self.registry.history()

    def get_feature_view(self, name: str, version: int | None = None) -> FeatureView:
        return self.catalog().view(name, version)

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
        return self.catalog().view(name, version)

    # -- data ------------------------------------------------------------------------------------
    def ingest(self, view: FeatureView | str, data: Any = None, version: int | None = None) -> IngestResult:
        """Append a batch (pandas, polars, pyarrow, a file path; None = the view's source) atomically."""
        from featureline.offline._frames import to_arrow

        fv = self._view(view, version)
        if data is None:
            if fv.source is None:
                raise ValidationError(f"Feature view `{fv.name}` has no source to read. Fix: pass the data, e.g. store.ingest('{fv.name}', df).")
            data = self._source_path(fv.source.path)
        elif isinstance(data, str | os.PathLike) and not os.path.isabs(data) and not os.path.exists(data):
            data = str(self.repo_path / data)
        return self.offline.ingest(fv, to_arrow(data, f"batch for feature view `{fv.name}`"))

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
        from featureline.offline.training import TrainingSet, build_training_set

        us = _as_of_us(as_of)
        cat = self.catalog(us_to_dt(us) if us is not None else None)
        resolved = cat.resolve(features)
        table, names = build_training_set(self.offline, entity_df, resolved, us, full_feature_names, timestamp_column)
        return TrainingSet(
            table,
            [str(r) for r, _ in resolved],
            us_to_dt(us) if us is not None else None,
            cat.version,
            {"columns": names},
        )

    def preview(self, view: FeatureView | str, n: int = 10) -> pa.Table:
        """The newest `n` stored rows of a view (tie winners only)."""
        return self.offline.latest_rows(self._view(view), limit=n)

    def describe(self, view: FeatureView | str) -> dict[str, Any]:
        """Definition, version, row counts, time range and per-feature statistics."""
        fv = self._view(view)
        info = {"definition": fv.to_dict(), "versions": [v.version for v in self.catalog().views[fv.name]]}
        info.update(self.offline.profile(fv))
        return info

    def close(self) -> None:
        if self._offline is not None:
            self._offline.close()
        if self._registry is not None:
            self._registry.close()

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
