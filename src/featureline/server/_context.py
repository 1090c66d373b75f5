"""What the routes of one app share: the store, the predictor, the limits, the metrics, the spec,
and what the app's shutdown stops (`closers`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
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
    # what the route modules started (background threads): the lifespan's exit calls each, off
    # the event loop, before it closes the store
    closers: list[Callable[[], None]] = field(default_factory=list)
