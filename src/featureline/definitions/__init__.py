"""Feature definitions: plain objects, no I/O. Names follow Feast so Feast users feel at home."""

from featureline.definitions._objects import (
    Entity,
    FeatureService,
    FeatureView,
    FeatureViewProjection,
    Field,
    FileSource,
)
from featureline.definitions._odfv import OnDemandFeatureView, RequestSource, on_demand_feature_view
from featureline.definitions._refs import FeatureRef, parse_ref
from featureline.definitions._validate import validate_definitions

__all__ = [
    "Entity",
    "FeatureRef",
    "FeatureService",
    "FeatureView",
    "FeatureViewProjection",
    "Field",
    "FileSource",
    "OnDemandFeatureView",
    "RequestSource",
    "on_demand_feature_view",
    "parse_ref",
    "validate_definitions",
]
