"""The `components.schemas` of the OpenAPI document (`build_spec` in `_openapi` assembles it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from featureline.server._openapi_common import (
    _COLUMNS,
    _ERROR,
    _FEAST_BODY,
    _ONE_OF_FEATURES,
    _STATUS,
    INT64_MAX,
    _per_view,
)

if TYPE_CHECKING:
    from featureline.definitions import FeatureView


def build_schemas(
    features: dict[str, Any],
    service: dict[str, Any],
    entities: dict[str, Any],
    view_param: dict[str, Any],
    views: list[FeatureView],
) -> dict[str, Any]:
    """The request and response schemas, with the registry's `features`, feature `service`s,
    typed `entities` and `view_param` (the views' names) and the per-view push columns of `views`."""
    schemas: dict[str, Any] = {
        "Error": _ERROR,
        "FeastValidationError": {
            "type": "object",
            "required": ["detail", "error", "message"],
            "properties": {
                "detail": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["type", "loc", "msg"],
                        "properties": {
                            "type": {"type": "string"},
                            "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                            "msg": {"type": "string"},
                            "input": {},
                        },
                    },
                },
                **_ERROR["properties"],
            },
        },
        "OnlineRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["entities"],
            "description": "Exactly one of `features` or `feature_service` (null is not a value here: leave the field out).",
            "oneOf": _ONE_OF_FEATURES,
            "properties": {
                "features": features,
                "feature_service": service,
                "entities": entities,
                "full_feature_names": {
                    "type": "boolean",
                    "default": False,
                    "description": "Name outputs `view__feature`.",
                },
            },
        },
        "OnlineResponse": {
            "type": "object",
            "properties": {
                "features": {
                    **_COLUMNS,
                    "description": "Feature name -> one value per entity row (null when not PRESENT).",
                },
                "statuses": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": _STATUS},
                },
                "event_timestamps": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "array",
                        "items": {"type": ["string", "null"], "format": "date-time"},
                    },
                },
                "entities": {**_COLUMNS, "description": "The join key columns, as given."},
            },
        },
        "PushRequest": {
            "type": "object",
            "additionalProperties": False,
            "description": "Exactly one of `rows` or `columns`, with every column the view declares (its join "
            "keys, event and created timestamps, and features: see `FeastPushRequest` for each view's). "
            "Timestamps are ISO 8601 strings with an offset.",
            "oneOf": [
                {"required": ["rows"], "not": {"required": ["columns"]}},
                {"required": ["columns"], "not": {"required": ["rows"]}},
            ],
            "properties": {
                "rows": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "object", "minProperties": 1},
                    "description": "Row objects, each with the same columns.",
                },
                "columns": {
                    **_COLUMNS,
                    "minProperties": 1,
                    "description": "Column -> values (every column as long).",
                },
            },
        },
        "PushResponse": {
            "type": "object",
            "properties": {
                "view": {"type": "string"},
                "version": {"type": "integer"},
                "rows": {"type": "integer"},
                "commit": {
                    "type": "integer",
                    "description": "The commit holding the rows (the first one, when the Idempotency-Key was seen).",
                },
                "ingested_at": {"type": "string", "format": "date-time"},
                "ignored_columns": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Columns the view does not declare: not stored.",
                },
                "non_finite": {
                    "type": "object",
                    "additionalProperties": {"type": "integer"},
                    "description": "NaN / Inf values stored, per feature.",
                },
                "replayed": {
                    "type": "boolean",
                    "description": "True when the Idempotency-Key was seen before: nothing new was written.",
                },
                "quarantined": {
                    "type": "integer",
                    "description": "Rows the view's quarantine gate kept out (rows sent = rows + quarantined).",
                },
                "violations": {
                    "type": "object",
                    "additionalProperties": {"type": "integer"},
                    "description": "Rows violating each constraint (under a `warn` gate they landed).",
                },
            },
        },
        "FeastOnlineRequest": {
            "type": "object",
            "additionalProperties": True,
            "description": _FEAST_BODY,
            "required": ["entities"],
            "properties": {
                "features": {
                    **features,
                    "type": ["array", "null"],
                    "description": "`view:feature` references; null is the same as leaving it out (as in Feast). "
                    "Give exactly one of `features` or `feature_service`.",
                },
                "feature_service": {
                    **service,
                    **({"enum": [*service["enum"], None]} if "enum" in service else {}),
                    "type": ["string", "null"],
                    "description": "A feature service name; null is the same as leaving it out (as in Feast).",
                },
                "entities": entities,
                "full_feature_names": {"type": "boolean", "default": False},
                "request_context": {
                    **_COLUMNS,
                    "description": "Request-time inputs of on-demand feature views: column -> one value per entity row.",
                },
            },
        },
        "FeastOnlineResponse": {
            "type": "object",
            "properties": {
                "metadata": {
                    "type": "object",
                    "properties": {"feature_names": {"type": "array", "items": {"type": "string"}}},
                },
                "results": {
                    "type": "array",
                    "description": "One entry per name in metadata.feature_names (entity keys first).",
                    "items": {
                        "type": "object",
                        "properties": {
                            "values": {"type": "array", "items": {}},
                            "statuses": {
                                "type": "array",
                                "items": {
                                    "type": "string",
                                    "enum": ["PRESENT", "NOT_FOUND", "OUTSIDE_MAX_AGE"],
                                },
                            },
                            "event_timestamps": {
                                "type": "array",
                                "items": {"type": "string", "format": "date-time"},
                            },
                        },
                    },
                },
            },
        },
        "FeastWriteRequest": {
            "type": "object",
            "additionalProperties": True,
            "description": _FEAST_BODY,
            "required": ["feature_view_name", "df"],
            "properties": {
                "feature_view_name": {
                    **view_param,
                    "description": "The feature view to write.",
                },
                "df": {
                    "type": "object",
                    "minProperties": 1,
                    "additionalProperties": {},
                    "description": "Columns (a value that is not a list fills every row); naive timestamps are "
                    "read as UTC, as Feast does. The columns each view needs are in the `oneOf`.",
                },
                "allow_registry_cache": {"type": "boolean"},
                "transform_on_write": {"type": "boolean"},
            },
            **_per_view("feature_view_name", views, created_optional=True),
        },
        "FeastMaterializeRequest": {
            "type": "object",
            "additionalProperties": True,
            "description": _FEAST_BODY,
            "properties": {
                "start_ts": {
                    "description": "Window start, ISO 8601 (naive: UTC); ignored with `disable_event_timestamp`."
                },
                "end_ts": {
                    "description": "Window end, ISO 8601 (naive: UTC); ignored with `disable_event_timestamp`."
                },
                "feature_views": {"type": ["array", "null"], "items": view_param},
                "disable_event_timestamp": {
                    "type": "boolean",
                    "description": "No window: everything up to now (`start_ts` and `end_ts` are ignored).",
                },
            },
            "if": {
                "required": ["disable_event_timestamp"],
                "properties": {"disable_event_timestamp": {"const": True}},
            },
            "then": {},
            "else": {
                "required": ["start_ts", "end_ts"],
                "properties": {"start_ts": {"type": "string"}, "end_ts": {"type": "string"}},
            },
        },
        "FeastMaterializeIncrementalRequest": {
            "type": "object",
            "additionalProperties": True,
            "description": _FEAST_BODY,
            "required": ["end_ts"],
            "properties": {
                "end_ts": {
                    "type": "string",
                    "description": "Event-time bound (naive: UTC): rows ingested since the last run, up to this time.",
                },
                "feature_views": {"type": ["array", "null"], "items": view_param},
            },
        },
        "FeastPushRequest": {
            "type": "object",
            "additionalProperties": True,
            "description": _FEAST_BODY,
            "required": ["push_source_name", "df"],
            "properties": {
                "push_source_name": {
                    **view_param,
                    "description": "The feature view to push to.",
                },
                "df": {
                    "type": "object",
                    "minProperties": 1,
                    "additionalProperties": {},
                    "description": "Columns (a value that is not a list fills every row); timestamps as strings "
                    "(naive ones are read as UTC, as Feast does). The columns each view needs are in the `oneOf`.",
                },
                "to": {
                    "type": "string",
                    "enum": ["online", "offline", "online_and_offline"],
                    "default": "online",
                    "description": "`offline` appends to the offline log only; `online` and `online_and_offline` also "
                    "update the online store (the offline log is the record online reads are checked against).",
                },
                "allow_registry_cache": {"type": "boolean"},
                "transform_on_write": {"type": "boolean"},
            },
            **_per_view("push_source_name", views, created_optional=False),
        },
        "PredictRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["entities"],
            "properties": {
                "entities": entities,
                "version": {
                    "oneOf": [
                        {"type": "integer", "minimum": 1, "maximum": INT64_MAX},
                        {"type": "string", "minLength": 1, "maxLength": 200},
                    ],
                    "description": "A version number, an alias (e.g. `production`) or `latest`. Default: the "
                    "`production` alias, else the latest version.",
                },
                "proba": {
                    "type": "boolean",
                    "description": "Also answer `probabilities` (the model's predict_proba) and `classes`. "
                    "Default: the model card's `predict_proba`.",
                },
            },
        },
        "PredictResponse": {
            "type": "object",
            "required": ["model", "version", "predictions", "entities", "features", "statuses"],
            "properties": {
                "model": {"type": "string"},
                "version": {"type": "integer"},
                "predictions": {
                    "type": "array",
                    "description": "One per entity row; null where a feature is missing (unless the model "
                    "declares `handles_missing`). After the model's post-processing hook, if it has one.",
                },
                "entities": {**_COLUMNS, "description": "The join key columns, as given."},
                "features": {
                    **_COLUMNS,
                    "description": "The feature vectors the model saw, by pinned ref (`view@v1:feature`).",
                },
                "statuses": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": _STATUS},
                },
                "probabilities": {
                    "type": "array",
                    "items": {"type": ["array", "null"], "items": {"type": "number"}},
                    "description": "With `proba`: per row, one probability per class (null where no prediction).",
                },
                "classes": {
                    "type": ["array", "null"],
                    "description": "With `proba`: the model's classes, in the order of `probabilities`.",
                },
            },
        },
        "ModelList": {
            "type": "object",
            "required": ["models"],
            "properties": {
                "models": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "version", "created_at", "aliases"],
                        "properties": {
                            "name": {"type": "string"},
                            "version": {"type": "integer"},
                            "created_at": {"type": "string", "format": "date-time"},
                            "aliases": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                }
            },
        },
        "Health": {
            "type": "object",
            "properties": {
                "ok": {"type": "boolean"},
                "backends": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {"ok": {"type": "boolean"}, "detail": {"type": "string"}},
                    },
                },
            },
        },
    }
    return schemas
