"""The `paths` of the OpenAPI document (`build_spec` in `_openapi` assembles it)."""

from __future__ import annotations

from typing import Any

from featureline.server._openapi_common import (
    _FEAST_BODY,
    _IDEMPOTENCY,
    _errors,
    _feast_errors,
    _feast_op,
    _json,
    _naive,
)
from featureline.server._openapi_ui import ui_paths


def build_paths(
    max_entities: int,
    max_body_bytes: int,
    ex: dict[str, Any],
    view_param: dict[str, Any],
    model_param: dict[str, Any],
) -> dict[str, Any]:
    """Every operation: the request limits (`max_entities`, `max_body_bytes`), the examples `ex`
    (`_examples`), and the path parameters' schemas (`view_param`, `model_param`)."""

    def ok_json(ref: str, desc: str) -> dict[str, Any]:
        return {
            "description": desc,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
        }

    limits = f"At most {max_entities:,} entity rows and {max_body_bytes:,} bytes per request."
    paths: dict[str, Any] = {
        "/features/online": {
            "post": {
                "operationId": "getOnlineFeatures",
                "tags": ["features"],
                "summary": "Read online feature vectors",
                "description": "Latest feature values for each entity row, with per-feature statuses and event times. "
                + limits,
                "requestBody": _json(
                    "OnlineRequest", {"features": ex["features"], "entities": ex["entities"]}
                ),
                "responses": {
                    "200": ok_json("OnlineResponse", "Feature vectors."),
                    **_errors(400, 404, 408, 413, 415, 421),
                },
            }
        },
        "/push/{view}": {
            "post": {
                "operationId": "push",
                "tags": ["features"],
                "summary": "Push rows to a feature view",
                "description": "Appends to the offline log and updates the online store through the same code; readable at once.",
                "parameters": [
                    {
                        "name": "view",
                        "in": "path",
                        "required": True,
                        "schema": view_param,
                        "description": "A feature view (pin a version with `view@v2`).",
                    },
                    _IDEMPOTENCY,
                ],
                "requestBody": _json("PushRequest", {"rows": [ex["row"]]}),
                "responses": {
                    "200": ok_json("PushResponse", "Rows written."),
                    **_errors(400, 404, 408, 413, 415, 421),
                    "422": {
                        "description": "The view's strict gate refused the batch: `report` names each "
                        "violated constraint with its count and sample rows; nothing was written.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                },
            }
        },
        "/get-online-features": {
            "post": {
                "operationId": "feastGetOnlineFeatures",
                "tags": ["feast"],
                "summary": "Feast-compatible online read",
                "description": "Request and response shapes of Feast's Python feature server. "
                + limits
                + " "
                + _FEAST_BODY,
                "requestBody": _json(
                    "FeastOnlineRequest", {"features": ex["features"], "entities": ex["entities"]}
                ),
                "responses": {
                    "200": ok_json(
                        "FeastOnlineResponse", "Feast GetOnlineFeaturesResponse as JSON."
                    ),
                    **_feast_errors(400, 404, 408, 413, 415, 421),
                },
            }
        },
        "/write-to-online-store": _feast_op(
            "feastWriteToOnlineStore",
            "Feast-compatible write (the remote online store's writes)",
            "Body `{feature_view_name, df: {column: [values]}}`; written to the online store only, as "
            "Feast's `write_to_online_store` (after the write path's checks; no offline commit, so the rows "
            "are in no training set). Returns JSON null.",
            "FeastWriteRequest",
            {"feature_view_name": ex["view"], "df": _naive(ex["row"])},
        ),
        "/materialize": _feast_op(
            "feastMaterialize",
            "Feast-compatible materialize",
            "Body `{start_ts, end_ts, feature_views?}` (or `disable_event_timestamp: true`): copies the "
            "winning rows with event time in the window to the online store. Returns JSON null.",
            "FeastMaterializeRequest",
            {
                "start_ts": "2025-01-01T00:00:00",
                "end_ts": "2025-01-02T00:00:00",
                "feature_views": [ex["view"]],
            },
        ),
        "/materialize-incremental": _feast_op(
            "feastMaterializeIncremental",
            "Feast-compatible incremental materialize",
            "Body `{end_ts, feature_views?}`: copies what was ingested since the view's last incremental run "
            "(late and corrected rows too), up to event time `end_ts` (a later row is copied by a later run). "
            "Returns JSON null.",
            "FeastMaterializeIncrementalRequest",
            {"end_ts": "2025-01-02T00:00:00", "feature_views": [ex["view"]]},
        ),
        "/push": {
            "post": {
                "operationId": "feastPush",
                "tags": ["feast"],
                "summary": "Feast-compatible push",
                "description": "Feast's push body; `push_source_name` names the feature view. Returns JSON null, as Feast does. "
                "`to: offline` writes the offline store only; `online` and `online_and_offline` write both (the offline store is the record). "
                + _FEAST_BODY,
                "parameters": [_IDEMPOTENCY],
                "requestBody": _json(
                    "FeastPushRequest",
                    {"push_source_name": ex["view"], "df": _naive(ex["row"]), "to": "online"},
                ),
                "responses": {
                    "200": {"description": "Pushed (body: null)."},
                    **_feast_errors(400, 404, 408, 413, 415, 421),
                },
            }
        },
        "/models": {
            "get": {
                "operationId": "listModels",
                "tags": ["models"],
                "summary": "Registered model versions",
                "description": "Every version of every registered model, with its aliases, newest first per model.",
                "responses": {"200": ok_json("ModelList", "Model versions.")},
            }
        },
        "/models/{name}/predict": {
            "post": {
                "operationId": "predict",
                "tags": ["models"],
                "summary": "Predict with a registered model",
                "description": "Reads the model's features online (pinned to the view versions it was trained on), "
                "hands them to the model as it was trained (a frame with the training set's column names and "
                "dtypes, through its pre-processing hook if it has one), and answers its predictions (through "
                "its post-processing hook). Each request is logged. " + limits,
                "parameters": [
                    {
                        "name": "name",
                        "in": "path",
                        "required": True,
                        "schema": model_param,
                        "description": "The model's name.",
                    }
                ],
                "requestBody": _json(
                    "PredictRequest", {"entities": ex["entities"], "proba": False}
                ),
                "responses": {
                    "200": ok_json("PredictResponse", "Predictions."),
                    **_errors(400, 404, 408, 409, 413, 415, 421, 422),
                },
            }
        },
        "/health": {
            "get": {
                "operationId": "health",
                "tags": ["ops"],
                "summary": "Health of each backend",
                "responses": {
                    "200": ok_json("Health", "Every backend is up."),
                    "503": ok_json("Health", "A backend is down."),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "tags": ["ops"],
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "Prometheus text format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "tags": ["ops"],
                "summary": "This OpenAPI document",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1 JSON.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/docs": {
            "get": {
                "operationId": "docs",
                "tags": ["ops"],
                "summary": "API documentation (HTML)",
                "responses": {
                    "200": {
                        "description": "HTML.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }
    paths.update(ui_paths(_errors))
    return paths
