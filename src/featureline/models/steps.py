"""Built-in pipeline steps that connect pipelines to the feature store and the model registry.

`build_training_set` records what a model's lineage needs: the registry version, the feature
service, the features pinned to view versions, the entity-frame hash and `as_of`.
`register_model` stores the model with a card and lineage edges, optionally under an alias.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pyarrow as pa

from featureline.pipelines.dsl import step


def table_hash(table: pa.Table) -> str:
    """sha256 of the Arrow IPC stream (the artifact store's content hash of a table)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


@step(outputs=("training_set", "info"))
def build_training_set(repo: str, entities: pa.Table, features: str, as_of: str = "") -> tuple[pa.Table, dict[str, Any]]:
    """A point-in-time training set for `features` (a FeatureService name or "v:f,v:g")."""
    from featureline.feature_store import FeatureStore

    with FeatureStore(repo) as store:
        cat = store.catalog(as_of or None)
        wanted: Any = [f.strip() for f in features.split(",")] if ":" in features else features
        resolved = cat.resolve(wanted)
        pinned = [f"{v.name}@v{v.version}:{r.feature}" for r, v in resolved]
        ts = store.get_training_set(entities, pinned, as_of=as_of or None, full_feature_names=True)
        table = ts.to_arrow()
        ref = store.models.artifacts.put(table)  # content-addressed: the same id the runner gets
        info = {
            "registry_version": ts.registry_version,
            "feature_service": features if ":" not in features else None,
            "features": pinned,
            "feature_columns": [f"{v.name}__{r.feature}" for r, v in resolved],
            "feature_types": {p: str(f.dtype) for p, f in zip(pinned, (v.features[[x.name for x in v.features].index(r.feature)] for r, v in resolved), strict=True)},
            "views": sorted({f"{v.name}@v{v.version}" for _, v in resolved}),
            "entity_hash": table_hash(entities),
            "entity_rows": entities.num_rows,
            "as_of": as_of or None,
            "training_set_id": ref.id,
            "run_id": os.environ.get("FEATURELINE_RUN_ID"),
        }
    return table, info


@step(cache=False)
def register_model(repo: str, name: str, model: Any, info: dict[str, Any], metrics: dict[str, Any], alias: str = "") -> dict[str, Any]:
    """Register `model` trained on `info`'s training set; returns {"name", "version"}."""
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
