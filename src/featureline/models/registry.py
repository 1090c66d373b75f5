"""ModelRegistry: versions, aliases and model cards over the metadata and artifact stores.

A model card holds metrics, parameters and lineage: the features the model was trained on,
pinned to view versions (`view@v2:feature`), the feature service, the registry version, the
training set artifact, the entity frame (stored and hashed), `as_of` and the run. Registering
also writes lineage edges (feature view version -> training set -> run -> model version), so
`featureline lineage` can walk them both ways. Registering the same model artifact trained on
the same training set again (a re-run of a cached pipeline) returns the existing version.

A model may be registered with a pre-processing hook (features frame -> what the model takes) and
a post-processing hook (the model's predictions -> the values answered). They are stored with
the model, in its artifact (`ModelWithHooks`), by value: functions of `__main__` (a notebook, a
script) and of the user's own modules travel with their code, so the server that loads the model
needs neither. Their names are on the card (`hooks`). Serving applies them (`models.serving`).
"""

from __future__ import annotations

import sys
import sysconfig
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from featureline.errors import FeaturelineError, ValidationError
from featureline.pipelines.artifacts import ArtifactRef, ArtifactStore

Hook = Callable[[Any], Any]
HOOKS = ("preprocess", "postprocess")


@dataclass(frozen=True)
class ModelWithHooks:
    """What a model version serves: the model and its optional pre/post-processing hooks.

    Stored as the artifact of a version registered with a hook (a plain model is stored alone).
    `preprocess(frame) -> frame`: the features frame (training-set column names and dtypes) ->
    what the model's `predict` takes. `postprocess(predictions) -> values`: one value per row."""

    model: Any
    preprocess: Hook | None = None
    postprocess: Hook | None = None


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

    @property
    def hooks(self) -> dict[str, str]:
        """The names of the version's pre/post-processing hooks (`module.function`), if any."""
        return dict(self.card.get("hooks") or {})

    def load(self) -> Any:
        """The model, as registered (without its hooks: see `load_served`)."""
        return self.load_served().model

    def load_served(self) -> ModelWithHooks:
        """The model with its pre/post-processing hooks (None where the version has none)."""
        if self._store is None:
            raise RuntimeError("ModelVersion is not bound to an artifact store")
        obj = self._store.get(self.artifact)
        return obj if isinstance(obj, ModelWithHooks) else ModelWithHooks(obj)


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
        preprocess: Hook | None = None,
        postprocess: Hook | None = None,
    ) -> ModelVersion:
        """Store `model` and a card; `training` is the info of the training-set step. When a
        version of `name` already holds this model (with the same hooks) trained on the same
        training set, that version is returned (its card unchanged; `alias` still moves to it).

        `preprocess(frame) -> frame` and `postprocess(predictions) -> values` are stored with the
        model (by value, see the module docstring) and applied by every prediction."""
        hooks = {"preprocess": preprocess, "postprocess": postprocess}
        for kind, fn in hooks.items():
            if fn is not None and not callable(fn):
                raise ValidationError(
                    f"`{kind}` of model `{name}` must be a function, got `{type(fn).__name__}`. "
                    f"Fix: pass e.g. `{kind}=my_function`."
                )
        given = {k: fn for k, fn in hooks.items() if fn is not None}
        if given:
            with _by_value(list(given.values())):
                ref = self.artifacts.put(ModelWithHooks(model, preprocess, postprocess))
        else:
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
        if given:
            card["hooks"] = {k: _hook_name(fn) for k, fn in given.items()}
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


def _hook_name(fn: Any) -> str:
    return f"{getattr(fn, '__module__', None) or '?'}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"


_INSTALLED = tuple(
    str(Path(p).resolve())
    for p in {sysconfig.get_path(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    if p
)
_BY_VALUE_LOCK = threading.Lock()


def _user_modules(fns: list[Any]) -> Iterator[Any]:
    """The modules of `fns` that are the user's own code: imported, not `__main__` (cloudpickle
    keeps `__main__` by value anyway), and not installed (the standard library, site-packages)."""
    for fn in fns:
        mod = sys.modules.get(getattr(fn, "__module__", None) or "")
        path = getattr(mod, "__file__", None)
        if mod is None or mod.__name__ == "__main__" or path is None:
            continue
        if not str(Path(path).resolve()).startswith(_INSTALLED):
            yield mod


@contextmanager
def _by_value(fns: list[Any]) -> Iterator[None]:
    """While storing hooks: cloudpickle keeps the functions of the user's modules by value, so
    the process that loads the model (a server) does not need to import those modules."""
    import cloudpickle

    with _BY_VALUE_LOCK:
        added = []
        try:
            for mod in _user_modules(fns):
                if mod.__name__ not in cloudpickle.list_registry_pickle_by_value():
                    cloudpickle.register_pickle_by_value(mod)
                    added.append(mod)
            yield
        finally:
            for mod in added:
                cloudpickle.unregister_pickle_by_value(mod)
