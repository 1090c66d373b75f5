"""Feature definitions: plain objects, no I/O. Names follow Feast so Feast users feel at home."""

from featureline.definitions._aggregation import Aggregation
from featureline.definitions._checks import Check
from featureline.definitions._objects import (
    Entity,
    FeatureService,
    FeatureView,
    FeatureViewProjection,
    Field,
    FileSource,
)
from featureline.definitions._odfv import (
    OnDemandFeatureView,
    RequestSource,
    find_live,
    on_demand_feature_view,
)
from featureline.definitions._permission import (
    ACTIONS,
    RESOURCE_TYPES,
    Permission,
    Resource,
    is_pii,
)
from featureline.definitions._refs import FeatureRef, output_names, parse_ref
from featureline.definitions._stream import StreamSource
from featureline.definitions._validate import validate_definitions

__all__ = [
    "ACTIONS",
    "RESOURCE_TYPES",
    "Aggregation",
    "Check",
    "Entity",
    "FeatureRef",
    "FeatureService",
    "FeatureView",
    "FeatureViewProjection",
    "Field",
    "FileSource",
    "OnDemandFeatureView",
    "Permission",
    "RequestSource",
    "Resource",
    "StreamSource",
    "find_live",
    "is_pii",
    "on_demand_feature_view",
    "output_names",
    "parse_ref",
    "validate_definitions",
]
