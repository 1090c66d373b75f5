"""Featureline: a feature store and end-to-end ML pipelines in one package.

The public API is listed in `__all__`; heavy modules are imported on first use so that
`import featureline` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from featureline.definitions import (
    Aggregation,
    Check,
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    OnDemandFeatureView,
    Permission,
    RequestSource,
    Resource,
    StreamSource,
    on_demand_feature_view,
)
from featureline.errors import FeaturelineError
from featureline.types import Array, Bool, Bytes, Float64, Int64, String, Timestamp

if TYPE_CHECKING:
    from featureline.feature_store import FeatureStore
    from featureline.offline.training import TrainingSet

__version__ = "0.1.0"

_LAZY = {
    "FeatureStore": "featureline.feature_store",
    "TrainingSet": "featureline.offline.training",
    "init_repo": "featureline.scaffold",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'featureline' has no attribute {name!r}")


__all__ = [
    "Aggregation",
    "Array",
    "Bool",
    "Bytes",
    "Check",
    "Entity",
    "FeatureService",
    "FeatureStore",
    "FeatureView",
    "FeaturelineError",
    "Field",
    "FileSource",
    "Float64",
    "Int64",
    "OnDemandFeatureView",
    "Permission",
    "RequestSource",
    "Resource",
    "StreamSource",
    "String",
    "Timestamp",
    "TrainingSet",
    "__version__",
    "init_repo",
    "on_demand_feature_view",
]
