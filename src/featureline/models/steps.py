"""Built-in pipeline steps that connect pipelines to the feature store and the model registry.

`build_training_set` records what a model's lineage needs: the registry version, the feature
service, the features pinned to view versions, the entity frame (stored, and its hash) and
the `as_of` it was built at. An empty `as_of` means "as the store knows it now": it is resolved
to the time the step ran, and recorded, so `rebuild_training_set(repo, card)` returns the very
same table later, whatever was ingested since. The step is reused from the cache only while
the store would return the same rows: its cache key holds the registry version and, for each
view read, the ingested time of the last commit visible (a new batch, push or correction, a
new view version or definition means a new training set; a compaction costs one rebuild).

`register_model` stores the model with a card and lineage edges, optionally under an alias;
registering the same model trained on the same training set again returns the existing version.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from featureline.errors import ValidationError
from featureline.pipelines.dsl import step

if TYPE_CHECKING:
    from featureline.catalog import Catalog
    from featureline.definitions import FeatureView
    from featureline.feature_store import FeatureStore


def table_hash(table: pa.Table) -> str:
    """sha256 of the Arrow IPC stream (the artifact store's content hash of a table)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def _wanted(features: str) -> Any:
    """A FeatureService name, or "v:f,v:g" as a list of refs."""
    return [f.strip() for f in features.split(",")] if ":" in features else features


def _views_read(cat: Catalog, features: str) -> tuple[list[Any], list[FeatureView]]:
    """(resolved refs, every view version the training set reads: on-demand sources included)."""
    from featureline._ondemand import hidden_inputs, split

    resolved = cat.resolve(_wanted(features))
    plain, od = split(resolved)
    views = {f"{v.name}@v{v.version}": v for _, v in [*plain, *hidden_inputs(cat, od)]}
    return resolved, [views[k] for k in sorted(views)]


def _last_ingested(
    store: FeatureStore, views: list[FeatureView], as_of: str | None
) -> dict[str, int]:
    """Per view version: the ingested time (µs) of the newest commit visible at `as_of` (now
    when None); 0 for a view with no data. A later batch changes it; so does a compaction (its commit
    is new), which costs one rebuild of the same rows."""
    return {
        f"{v.name}@v{v.version}": max(
            (c.ingested_at_us for c in store.commits(v, as_of)),
            default=0,
        )
        for v in views
    }


def _training_set_key(repo: str, features: str, as_of: str = "") -> dict[str, Any]:
    """Cache-key material of `build_training_set` (evaluated by the runner before the lookup):
    the same key means the store would return the same rows."""
    from featureline.feature_store import FeatureStore

    with FeatureStore(repo) as store:
        cat = store.catalog(as_of or None)  # validates `as_of` (an offset is required)
        _, views = _views_read(cat, features)
        return {
            "registry_version": cat.version,
            "last_ingested_us": _last_ingested(store, views, as_of or None),
        }


@step(outputs=("training_set", "info"), cache_key=_training_set_key)
def build_training_set(
    repo: str, entities: pa.Table, features: str, as_of: str = ""
) -> tuple[pa.Table, dict[str, Any]]:
    """A point-in-time training set for `features` (a FeatureService name or "v:f,v:g"), as the
    store knew it at `as_of` (ISO 8601 with an offset; empty: now, resolved and recorded)."""
    from featureline.feature_store import FeatureStore
    from featureline.offline.store import dt_to_us, us_to_dt

    with FeatureStore(repo) as store:
        if not as_of:  # now, but never before a commit already made (clocks may step back)
            _, views = _views_read(store.catalog(), features)
            seen = max(_last_ingested(store, views, None).values(), default=0)
            as_of = us_to_dt(max(dt_to_us(datetime.now(UTC)), seen)).isoformat()
        cat = store.catalog(as_of)
        resolved, _ = _views_read(cat, features)
        pinned = [f"{v.name}@v{v.version}:{r.feature}" for r, v in resolved]
        ts = store.get_training_set(entities, pinned, as_of=as_of, full_feature_names=True)
        table = ts.to_arrow()
        artifacts, metadata = store.models.artifacts, store.models.metadata
        ref = artifacts.put(table)  # content-addressed: the same id the runner gets
        ents = artifacts.put(entities)  # kept, so the card alone can rebuild the training set
        for r in (ref, ents):
            metadata.record_artifact(r)
        info = {
            "registry_version": ts.registry_version,
            "feature_service": features if ":" not in features else None,
            "features": pinned,
            "feature_columns": [f"{v.name}__{r.feature}" for r, v in resolved],
            "feature_types": {
                p: str(f.dtype)
                for p, f in zip(
                    pinned,
                    (
                        v.features[[x.name for x in v.features].index(r.feature)]
                        for r, v in resolved
                    ),
                    strict=True,
                )
            },
            "views": sorted({f"{v.name}@v{v.version}" for _, v in resolved}),
            "entity_hash": table_hash(entities),
            "entity_rows": entities.num_rows,
            "entities_id": ents.id,
            "as_of": as_of,
            "training_set_id": ref.id,
            "run_id": os.environ.get("FEATURELINE_RUN_ID"),
        }
    return table, info


def rebuild_training_set(repo: FeatureStore | str | os.PathLike[str], model: Any) -> pa.Table:
    """The training set a model was trained on, rebuilt from its card alone: the stored entity
    frame, the pinned features and the recorded `as_of` (the same content hash as then).

    `model`: a `ModelVersion`, its card, or the card's `training` dict."""
    from featureline.feature_store import FeatureStore

    card = getattr(model, "card", model)
    training = card.get("training", card) if isinstance(card, Mapping) else None
    if not isinstance(training, Mapping):
        raise ValidationError(
            f"`{model!r:.80}` is not a model version or card. Fix: pass `store.models.get(name, version)`."
        )
    missing = [k for k in ("features", "as_of", "entities_id") if not training.get(k)]
    if missing:
        raise ValidationError(
            f"This model's card cannot rebuild its training set: it records no {', '.join(f'`{k}`' for k in missing)} "
            "(a model registered without `build_training_set`, or before it recorded them). "
            "Fix: retrain it with a pipeline that uses `featureline.models.steps.build_training_set`."
        )
    store = repo if isinstance(repo, FeatureStore) else FeatureStore(repo)
    try:
        entities = store.models.artifacts.get(
            store.models.metadata.get_artifact(str(training["entities_id"]))
        )
        ts = store.get_training_set(
            entities,
            list(training["features"]),
            as_of=str(training["as_of"]),
            full_feature_names=True,
        )
        return ts.to_arrow()
    finally:
        if store is not repo:
            store.close()


@step(cache=False)
def register_model(
    repo: str, name: str, model: Any, info: dict[str, Any], metrics: dict[str, Any], alias: str = ""
) -> dict[str, Any]:
    """Register `model` trained on `info`'s training set; returns {"name", "version", "aliases"}
    (the existing version when this model was already registered on this training set)."""
    from featureline.feature_store import FeatureStore

    with FeatureStore(repo) as store:
        mv = store.models.register(
            name,
            model,
            features=info["features"],
            metrics={k: float(v) for k, v in metrics.items()},
            training=info,
            run_id=os.environ.get("FEATURELINE_RUN_ID") or info.get("run_id"),
            alias=alias or None,
        )
        return {"name": mv.name, "version": mv.version, "aliases": mv.aliases}
