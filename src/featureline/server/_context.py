"""What the routes of one app share: the store, the predictor, the limits, the metrics, the spec."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from featureline.feature_store import FeatureStore
    from featureline.models import Predictor
    from featureline.server._metrics import Metrics

__all__ = ["ServerContext"]


@dataclass
class ServerContext:
    store: FeatureStore
    predictor: Predictor
    metrics: Metrics
    max_entities: int
    max_body_bytes: int
    spec: dict[str, Any]
    owns_store: bool = False
