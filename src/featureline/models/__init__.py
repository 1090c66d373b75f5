"""Model registry and prediction glue: models trained on features, served with their features."""

from featureline.models.registry import ModelRegistry, ModelVersion
from featureline.models.serving import Predictor

__all__ = ["ModelRegistry", "ModelVersion", "Predictor"]
