"""ModelRegistry: versions, aliases and model cards over the metadata and artifact stores.

A model card holds metrics, parameters and lineage: the features the model was trained on,
pinned to view versions (`view@v2:feature`), the feature service, the registry version, the
training set artifact, the entity frame (stored and hashed), `as_of` and the run. Registering
also writes lineage edges (feature view version -> training set -> run -> model version), so
`featureline lineage` can walk them both ways. Registering the same model artifact trained on
the same training set again (a re-run of a cached pipeline) returns the existing version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from featureline.errors import FeaturelineError
from featureline.pipelines.artifacts import ArtifactRef, ArtifactStore


@dataclass
class ModelVersion:
    name: str
    version: int
    artifact: ArtifactRef
    card: dict[str, Any]
    created_at: datetime
    aliases: list[str] = field(default_factory=list)
    _store: ArtifactStore | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def features(self) -> list[str]:
        return list(self.card.get("features", []))

    def load(self) -> Any:
        if self._store is None:
            raise RuntimeError("ModelVersion is not bound to an artifact store")
        return self._store.get(self.artifact)


class ModelRegistry:
    """Register, alias and load models. Configure once with a metadata store and artifact store."""

    def __init__(self, metadata: Any, artifacts: ArtifactStore) -> None:
        self.metadata = metadata
        self.artifacts = artifacts

    def register(
        self,
        name: str,
        model: Any,
        *,
        features: list[str],
        metrics: dict[str, float] | None = None,
        params: dict[str, Any] | None = None,
        training: dict[str, Any] | None = None,
        run_id: str | None = None,
        alias: str | None = None,
        description: str = "",
    ) -> ModelVersion:
        """Store `model` and a card; `training` is the info of the training-set step. When a
        version of `name` already holds this model trained on the same training set, that
        version is returned (its card unchanged; `alias` still moves to it)."""
        ref = self.artifacts.put(model)
        self.metadata.record_artifact(ref)
        info = dict(training or {})
        if params is None and run_id:  # the run's parameters belong on the card
            try:
                params = dict(self.metadata.get_run(run_id).get("params", {}))
            except FeaturelineError:
                params = {}
        card = {
            "description": description,
            "features": list(info.get("features") or features),
            "metrics": dict(metrics or {}),
            "params": dict(params or {}),
            "training": info,
            "run_id": run_id,
        }
        version, new = self.metadata.register_model_version_once(name, ref, card)
        if not new:
            if alias:
                self.set_alias(name, alias, version)
            return self.get(name, version)
        mv_id = f"{name}:{version}"
        edges = [("model", mv_id, "artifact", ref.id, "stored_as")]
        if run_id:
            edges.append(("run", run_id, "model", mv_id, "produced"))
        ts_id = info.get("training_set_id")
        if ts_id:
            edges.append(
                ("training_set", ts_id, "run" if run_id else "model", run_id or mv_id, "trained")
            )
            for view in info.get("views", []):
                edges.append(("feature_view", view, "training_set", ts_id, "feeds"))
        else:
            for view in info.get("views", []):
                edges.append(("feature_view", view, "model", mv_id, "feeds"))
        for e in edges:
            self.metadata.add_lineage(*e)
        if alias:
            self.set_alias(name, alias, version)
        return self.get(name, version)

    def set_alias(self, name: str, alias: str, version: int) -> None:
        self.metadata.set_model_alias(name, alias, version)
        self.metadata.add_lineage(
            "model", f"{name}:{version}", "alias", f"{name}@{alias}", "deployed_as"
        )

    def get(self, name: str, ref: int | str | None = None) -> ModelVersion:
        d = self.metadata.get_model_version(name, ref)
        return ModelVersion(
            d["name"],
            d["version"],
            d["artifact"],
            d["card"],
            d["created_at"],
            d["aliases"],
            self.artifacts,
        )

    def versions(self, name: str | None = None) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.metadata.list_model_versions(name)
        return rows

    def lineage(
        self, kind: str, id_: str, direction: str = "up", depth: int = 10
    ) -> list[dict[str, Any]]:
        edges: list[dict[str, Any]] = self.metadata.lineage(kind, id_, direction, depth)
        return edges
