"""Predictions: entity keys -> the model's online features (as trained) -> model -> logged answer."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featureline.errors import ConflictError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from featureline.feature_store import FeatureStore
    from featureline.models.registry import ModelRegistry, ModelVersion


class Predictor:
    """Serve registered models. Models are cached per (name, alias/version) for `refresh` s."""

    def __init__(self, store: FeatureStore, registry: ModelRegistry, log_dir: Path | None = None, refresh: float = 2.0) -> None:
        self.store = store
        self.registry = registry
        self.log_dir = log_dir
        self.refresh = refresh
        self._cache: dict[tuple[str, Any], tuple[float, ModelVersion, Any]] = {}
        self._lock = threading.Lock()

    def check(self, mv: ModelVersion) -> None:
        """Refuse a model whose features are no longer served as it was trained."""
        cat = self.store.catalog()
        types = mv.card.get("training", {}).get("feature_types", {})
        problems = []
        for ref in mv.features:
            from featureline.definitions import parse_ref

            r = parse_ref(ref)
            try:
                view = cat.view(r.view, r.version)
            except NotFoundError as e:
                problems.append(f"`{ref}`: {e}")
                continue
            f = view.feature(r.feature) if hasattr(view, "feature") else None
            if f is None:
                problems.append(f"`{ref}`: view `{r.view}` v{view.version} no longer has feature `{r.feature}`")
            elif ref in types and types[ref] != str(f.dtype):
                problems.append(f"`{ref}`: trained as {types[ref]}, now {f.dtype}")
            elif not getattr(view, "online", True):
                problems.append(f"`{ref}`: view `{r.view}` is not served online (online=False)")
        if problems:
            raise ConflictError(
                f"Model `{mv.ref}` cannot predict: its features are no longer served as it was trained: "
                + "; ".join(problems)
                + ". Fix: retrain and register a new version on the current features, or restore the views."
            )

    def model(self, name: str, ref: int | str | None = None) -> tuple[ModelVersion, Any]:
        key = (name, ref)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.refresh:
            return hit[1], hit[2]
        if ref is None:
            try:
                mv = self.registry.get(name, "production")
            except NotFoundError:
                mv = self.registry.get(name, None)
        else:
            mv = self.registry.get(name, ref)
        if hit is not None and hit[1].version == mv.version:
            obj = hit[2]
        else:
            self.check(mv)
            obj = mv.load()
        with self._lock:
            self._cache[key] = (now, mv, obj)
        return mv, obj

    def predict(self, name: str, entities: Any, ref: int | str | None = None) -> dict[str, Any]:
        import numpy as np

        mv, model = self.model(name, ref)
        feats = mv.features
        resp = self.store.get_online_features(feats, entities, full_feature_names=True)
        cols = [resp.values[_out(r)] for r in feats]
        n = len(cols[0]) if cols else 0
        x = np.array([[np.nan if c[i] is None else c[i] for c in cols] for i in range(n)], dtype=float).reshape(n, len(cols))
        complete = ~np.isnan(x).any(axis=1)  # a row missing a feature gets no prediction (null)
        preds: list[Any] = [None] * n
        if complete.any():
            try:
                y = model.predict(x[complete])
            except Exception as e:
                raise ValidationError(f"Model `{mv.ref}` failed to predict: {type(e).__name__}: {e}") from e
            for i, v in zip(np.flatnonzero(complete), y, strict=True):
                preds[int(i)] = v.item() if hasattr(v, "item") else v
        out = {
            "model": mv.name,
            "version": mv.version,
            "predictions": preds,
            "entities": resp.keys,
            "features": {r: resp.values[_out(r)] for r in feats},
            "statuses": {r: resp.statuses[_out(r)] for r in feats},
        }
        self._log(mv, out)
        return out

    def _log(self, mv: ModelVersion, out: dict[str, Any]) -> None:
        """One JSON line per prediction request: model version, feature vectors, predictions."""
        if self.log_dir is None:
            return
        line = json.dumps({"ts": time.time(), **out}, default=str) + "\n"
        with self._lock:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            with open(self.log_dir / f"{mv.name}.jsonl", "a", encoding="utf-8") as fh:
                fh.write(line)


def _out(ref: str) -> str:
    """The output column of a pinned ref with full_feature_names=True."""
    view, feat = ref.split(":")
    return f"{view.split('@')[0]}__{feat}"
