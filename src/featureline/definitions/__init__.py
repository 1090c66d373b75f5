"""Feature definitions: plain objects, no I/O. Names follow Feast so Feast users feel at home."""

from featureline.definitions._objects import (
    Entity,
    FeatureService,
    FeatureView,
    FeatureViewProjection,
    Field,
    FileSource,
)
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
    "parse_ref",
    "validate_definitions",
]
