"""The server's OpenAPI 3.1 document and a self-contained HTML page rendering it (no CDN).

`build_spec` makes the document of the routes; given the registry's current definitions (a
`Catalog`) and the registered model names, it also names them: the features a read may ask for,
the views a push may write and, per view, the columns its push body needs with their types
(Feast's `/push` and `/write-to-online-store` bodies are a `oneOf` over the views), and the
models a predict may call. `LiveSpec` serves that document, rebuilt when the registry version or
the set of models changes, so /openapi.json and /docs always describe what the server will accept.
With `auth.enabled`, the document declares the `bearerAuth` scheme (HTTP bearer: an API token or
an OIDC JWT), requires it of every operation but the public paths (`security: []` there), and
lists their 401 and 403 answers.
"""

from __future__ import annotations

import html
import json
import re
import threading
from typing import TYPE_CHECKING, Any

from featureline import __version__
from featureline.server._openapi_ui import ui_paths

if TYPE_CHECKING:
    from featureline.catalog import Catalog
    from featureline.config import AuthSettings
    from featureline.definitions import FeatureView
    from featureline.feature_store import FeatureStore

__all__ = ["BEARER_AUTH", "LiveSpec", "build_spec", "render_docs", "secure"]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_ENUM = 500  # features listed by name in the document; more: described only

_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {
            "type": "string",
            "description": "Error type, e.g. ValidationError, NotFoundError, RequestTooLarge, UnsupportedMediaType.",
        },
        "message": {
            "type": "string",
            "description": "What failed, the offending value, and the fix.",
        },
    },
}
_COLUMNS = {"type": "object", "additionalProperties": {"type": "array", "items": {}}}
_FEAST_BODY = (
    "Feast-compatible body: fields this server does not know (e.g. `include_feature_view_version_metadata` "
    "from newer Feast SDKs) are accepted and ignored, as Feast's own server ignores them. Timestamps without "
    "a time zone are read as UTC, exactly as Feast does (`make_tzaware`). The native routes stay strict."
)
_ENTITIES: dict[str, Any] = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": {"type": "array", "items": {}},
    "description": "Join key columns: key name -> one value per entity row (every column as long).",
    "example": {"driver_id": [1001, 1002]},
}
_FEATURES: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "items": {"type": "string"},
    "description": "`view:feature` references (pin a version with `view@v2:feature`).",
    "example": ["driver_stats:conv_rate", "driver_stats:acc_rate"],
}
_SERVICE: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "description": "A feature service name (instead of `features`).",
}
_ONE_OF_FEATURES = [
    {"required": ["features"], "not": {"required": ["feature_service"]}},
    {"required": ["feature_service"], "not": {"required": ["features"]}},
]
_PINNED_REF = "^[A-Za-z_][A-Za-z0-9_]*@v[1-9][0-9]*:[A-Za-z_][A-Za-z0-9_]*$"
_STATUS = {"type": "string", "enum": ["PRESENT", "NOT_FOUND", "EXPIRED", "STALE"]}


_FEAST_422 = {
    "description": "The body failed validation: FastAPI's `detail` list, as Feast's server answers, plus "
    "Featureline's `error` and `message`.",
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/FeastValidationError"}}
    },
}


def _feast_errors(*codes: int) -> dict[str, Any]:
    """`_errors` of a Feast route: a body that fails validation is FastAPI's 422 there."""
    return {**_errors(*codes), "422": _FEAST_422}


def _errors(*codes: int) -> dict[str, Any]:
    what = {
        400: "Bad input: malformed JSON, an unknown field (with did-you-mean), a wrong key type.",
        404: "Unknown feature, view, feature service or model (with did-you-mean).",
        408: "The body did not arrive within the body timeout (the connection is closed).",
        413: "Body over max_body_bytes, or more entity rows than max_entities.",
        409: "The model's features are no longer served as it was trained (retrain or restore the views).",
        415: "The body is not declared `Content-Type: application/json`.",
        401: "No credential, or one that is not valid: unknown, wrong, expired or revoked "
        "(`WWW-Authenticate: Bearer`). Only with auth enabled.",
        403: "The principal's roles are granted no permission for this (everything not granted "
        "is denied). Only with auth enabled.",
        421: "The Host header is not on the server's allow-list (DNS rebinding guard; any route).",
        422: "The model's pre- or post-processing hook raised, or returned something unusable (ModelHookError).",
        503: "A backend is unavailable.",
    }
    return {
        str(c): {
            "description": what[c],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for c in codes
    }


_IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "maxLength": 200},
    "description": "The same key twice is one commit; the second call answers with the first commit (safe retries).",
}


def _feast_op(
    op: str, summary: str, description: str, schema: str, example: dict[str, Any]
) -> dict[str, Any]:
    return {
        "post": {
            "operationId": op,
            "tags": ["feast"],
            "summary": summary,
            "description": description
            + " Naive timestamps are UTC, as in Feast; unknown fields are ignored.",
            "requestBody": _json(schema, example),
            "responses": {
                "200": {"description": "Done (body: null)."},
                **_feast_errors(400, 404, 408, 413, 415, 421),
            },
        }
    }


def _json(schema_ref: str, example: Any = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}
    if example is not None:
        media["example"] = example
    return {"required": True, "content": {"application/json": media}}


_MODEL_NAME = "^[A-Za-z_][A-Za-z0-9_.-]*$"
_NAIVE = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?$"  # naive: UTC
)


def _value_schema(dtype: Any, nullable: bool) -> dict[str, Any]:
    """The JSON schema of one value of a column of type `dtype` in a push body."""
    name = dtype.name
    if dtype.element is not None:
        out: dict[str, Any] = {"type": "array", "items": _value_schema(dtype.element, True)}
    elif name == "Int64":
        out = {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX}
    elif name == "Float64":
        out = {"type": "number"}
    elif name == "Bool":
        out = {"type": "boolean"}
    else:  # String, Bytes (UTF-8 text), Timestamp (ISO 8601)
        out = {"type": "string"}
    if nullable:
        out["type"] = [out["type"], "null"]
    return out


def _view_columns(view: FeatureView, created_optional: bool) -> dict[str, Any]:
    """The `df` of a Feast push or write for `view`: every column it needs, typed; a column may be
    a list (one value per row) or one value for every row. Other columns are accepted (ignored,
    and listed in the write's result)."""
    from featureline.server._body import timestamp_fields

    keys = set(view.join_keys)
    stamps = timestamp_fields(view)
    created = view.source.created_timestamp_field if view.source is not None else None
    event = view.source.timestamp_field if view.source is not None else "event_timestamp"
    props: dict[str, Any] = {}
    for f in view.schema:
        if f.name in stamps:
            continue
        item = _value_schema(f.dtype, nullable=f.name not in keys)
        props[f.name] = {"anyOf": [{"type": "array", "items": item}, item]}
    for col in sorted(stamps):
        stamp: dict[str, Any] = {"anyOf": [{"format": "date-time"}, {"pattern": _NAIVE}]}
        stamp["type"] = "string" if col == event else ["string", "null"]
        props[col] = {
            "anyOf": [{"type": "array", "items": stamp}, stamp],
            "description": "ISO 8601 (naive: UTC).",
        }
    required = [c for c in props if not (created_optional and c == created)]
    return {"type": "object", "required": required, "properties": props}


def _per_view(field: str, views: list[FeatureView], created_optional: bool) -> dict[str, Any]:
    """A `oneOf` over `views`: the body naming view `v` (or `v@vN`) in `field` has `v`'s columns."""
    if not views:
        return {}
    return {
        "oneOf": [
            {
                "title": v.name,
                "properties": {
                    field: {
                        "type": "string",
                        "pattern": f"^{re.escape(v.name)}(?:@v[1-9][0-9]*)?$",
                    },
                    "df": _view_columns(v, created_optional),
                },
            }
            for v in views
        ]
    }


_TS = "2025-01-01T12:00:00+00:00"


def _example_value(dtype: Any, i: int) -> Any:
    if dtype.element is not None:
        return [_example_value(dtype.element, i)]
    values = {"Int64": 1001 + i, "Float64": 0.5, "Bool": True, "Timestamp": _TS}
    return values.get(dtype.name, f"a{i}")


def _examples(views: list[FeatureView]) -> dict[str, Any]:
    """Request examples in the names of the registry's first view (the template's without one)."""
    if not views:
        row: dict[str, Any] = {
            "driver_id": 1001,
            "event_timestamp": _TS,
            "created": _TS,
            "conv_rate": 0.5,
            "acc_rate": 0.9,
            "avg_daily_trips": 10,
        }
        return {
            "view": "driver_stats",
            "row": row,
            "features": ["driver_stats:conv_rate", "driver_stats:acc_rate"],
            "entities": {"driver_id": [1001, 1002]},
        }
    from featureline.server._body import timestamp_fields

    v = views[0]
    stamps = timestamp_fields(v)
    row = {f.name: _example_value(f.dtype, 0) for f in v.schema if f.name not in stamps}
    row |= dict.fromkeys(sorted(stamps), _TS)
    types = {f.name: f.dtype for f in v.schema}
    skip = {*v.join_keys, *stamps}
    return {
        "view": v.name,
        "row": row,
        "features": [f"{v.name}:{f.name}" for f in v.schema if f.name not in skip][:2],
        "entities": {
            k: [_example_value(types[k], 0), _example_value(types[k], 1)]
            for k in v.join_keys
            if k in types
        },
    }


def _naive(row: dict[str, Any]) -> dict[str, list[Any]]:
    """`row` as Feast's `df` columns, timestamps naive (read as UTC)."""
    return {k: [v.removesuffix("+00:00") if v == _TS else v] for k, v in row.items()}


BEARER_AUTH = "bearerAuth"
_BEARER: dict[str, Any] = {
    "type": "http",
    "scheme": "bearer",
    "description": "`Authorization: Bearer <credential>`: an API token (`featureline token "
    "create`, `fl_<id>_<secret>`) or a JWT from the configured OIDC identity provider "
    "(auth.oidc: signature, issuer, audience and expiry checked). Needed on every operation "
    "but the public paths (auth.public_paths) while auth is enabled; what a principal may "
    "then do is what the permissions grant its roles.",
}
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def secure(spec: dict[str, Any], public_paths: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """`spec` as served with auth enabled: the `bearerAuth` scheme, required at the top level,
    waived (`security: []`) on the operations of `public_paths`, and the 401 and 403 answers of
    every other operation (changed in place, and returned)."""
    spec.setdefault("components", {}).setdefault("securitySchemes", {})[BEARER_AUTH] = _BEARER
    spec["security"] = [{BEARER_AUTH: []}]
    public = set(public_paths)
    for path, item in spec.get("paths", {}).items():
        for method, op in item.items():
            if method not in _METHODS:
                continue
            if path in public:
                op["security"] = []  # answers without a credential
            else:
                responses = op.setdefault("responses", {})
                for code, answer in _errors(401, 403).items():
                    responses.setdefault(code, answer)
    return spec


def build_spec(
    max_entities: int,
    max_body_bytes: int,
    catalog: Catalog | None = None,
    models: list[str] | tuple[str, ...] = (),
    auth: AuthSettings | None = None,
) -> dict[str, Any]:
    """The OpenAPI document; with the registry's `catalog` and the registered `models`, it names
    the features, views (with the columns a push needs) and models the server has; with `auth`
    settings that enable it, its security (`secure`)."""
    views = [vs[-1] for vs in catalog.views.values()] if catalog is not None else []
    features = dict(_FEATURES)
    if catalog is not None:
        refs = [f"{v.name}:{f.name}" for v in views for f in v.schema if f.name not in v.join_keys]
        refs += [f"{o.name}:{f.name}" for o in catalog.odfvs.values() for f in o.features]
        if 0 < len(refs) <= MAX_ENUM:
            features["items"] = {
                "anyOf": [
                    {"type": "string", "enum": sorted(refs)},
                    {"type": "string", "pattern": _PINNED_REF},
                ]
            }
    service = dict(_SERVICE)
    if catalog is not None and catalog.services:
        service["enum"] = sorted(catalog.services)
    view_param: dict[str, Any] = {"type": "string"}
    if views:
        names = "|".join(re.escape(v.name) for v in views)
        view_param["pattern"] = f"^(?:{names})(?:@v[1-9][0-9]*)?$"
    entities = dict(_ENTITIES)
    keys = {k: f.dtype for v in views for f in v.schema for k in v.join_keys if f.name == k}
    if keys:  # the join keys of the registry's views, typed (other names: 400 naming the keys)
        entities["properties"] = {
            k: {"type": "array", "items": _value_schema(t, nullable=False)}
            for k, t in sorted(keys.items())
        }
    model_param: dict[str, Any] = {"type": "string", "pattern": _MODEL_NAME}
    ex = _examples(views)
    if models:
        model_param = {"type": "string", "enum": sorted(models)}
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
    spec = {
        "openapi": "3.1.0",
        "info": {
            "title": "Featureline feature server",
            "version": __version__,
            "description": "Online features and push for a Featureline feature repo, with Feast-compatible endpoints "
            "(also POST /write-to-online-store, /materialize, /materialize-incremental with Feast's bodies, "
            "answering JSON null). " + _FEAST_BODY + " "
            'Errors are JSON {"error": type, "message": text}.',
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if auth is not None and auth.enabled:
        secure(spec, auth.public_paths)
    return spec


class LiveSpec:
    """The document /openapi.json and /docs serve: `build_spec` with the registry's current
    definitions and the registered models, rebuilt when either changes (the registry version,
    the model names). A registry that cannot be read gives the document without names."""

    def __init__(self, store: FeatureStore, max_entities: int, max_body_bytes: int) -> None:
        self.store = store
        self.max_entities = max_entities
        self.max_body_bytes = max_body_bytes
        self._lock = threading.Lock()
        self._key: Any = object()
        self._json = b""
        self._html = b""

    def _refresh(self) -> None:
        from featureline.errors import FeaturelineError

        catalog: Catalog | None
        try:
            catalog = self.store.catalog()
        except FeaturelineError:
            catalog = None  # nothing applied yet
        try:
            models = sorted({r["name"] for r in self.store.models.versions()})
        except FeaturelineError:
            models = []
        key = (catalog.version if catalog is not None else None, tuple(models))
        with self._lock:
            if key == self._key:
                return
            from featureline.server._dispatch import dumps

            auth = self.store.config.auth
            spec = build_spec(self.max_entities, self.max_body_bytes, catalog, models, auth)
            self._json, self._html = dumps(spec), render_docs(spec).encode()
            self._key = key

    def json(self) -> bytes:
        """The OpenAPI document, as JSON."""
        self._refresh()
        return self._json

    def html(self) -> bytes:
        """The /docs page."""
        self._refresh()
        return self._html


_CSS = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{margin-bottom:.2rem}.op{border:1px solid #ddd;border-radius:6px;margin:1rem 0;padding:.6rem 1rem}
.m{display:inline-block;min-width:3.5rem;font-weight:bold;color:#fff;border-radius:4px;text-align:center;padding:0 .4rem;margin-right:.5rem}
.post{background:#49cc90}.get{background:#61affe}code,pre{background:#f6f8fa;border-radius:4px}pre{padding:.6rem;overflow:auto}
td{padding:.1rem .6rem;vertical-align:top}"""


def _per_view_docs(schema: dict[str, Any]) -> list[str]:
    """The columns each view's `df` needs (the `oneOf` of a Feast push or write body)."""
    e = html.escape
    out = []
    for branch in schema.get("oneOf", ()):
        df = branch.get("properties", {}).get("df")
        if "title" not in branch or not isinstance(df, dict):
            continue
        cols = ", ".join(
            f"<code>{e(c)}</code>{'' if c in df.get('required', ()) else ' (optional)'}"
            for c in df.get("properties", {})
        )
        out.append(f"<p>View <code>{e(branch['title'])}</code>: columns {cols}.</p>")
    return out


def render_docs(spec: dict[str, Any]) -> str:
    """A readable HTML listing of every operation of `spec`, with examples and schemas."""
    e = html.escape
    info = spec["info"]
    out = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(info['title'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(info['title'])}</h1><p>version {e(info['version'])} · <a href='/openapi.json'>openapi.json</a></p><p>{e(info['description'])}</p>",
    ]
    scheme = spec.get("components", {}).get("securitySchemes", {}).get(BEARER_AUTH)
    if scheme is not None and spec.get("security"):
        public = [
            p
            for p, item in spec["paths"].items()
            if any(isinstance(op, dict) and op.get("security") == [] for op in item.values())
        ]
        waived = ", ".join(f"<code>{e(p)}</code>" for p in public) or "none"
        out.append(
            f"<p><b>Authentication</b> ({e(BEARER_AUTH)}, HTTP bearer): {e(scheme['description'])} "
            f"Public: {waived}.</p>"
        )
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            out.append(
                f"<div class='op' id='{e(op['operationId'])}'><h3><span class='m {method}'>{method.upper()}</span><code>{e(path)}</code> — {e(op['summary'])}</h3>"
            )
            if op.get("description"):
                out.append(f"<p>{e(op['description'])}</p>")
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                ref = body["schema"]["$ref"].rsplit("/", 1)[-1]
                out.append(f"<p>Request body: <code>{e(ref)}</code></p>")
                if "example" in body:
                    out.append(f"<pre>{e(json.dumps(body['example'], indent=2))}</pre>")
                props = spec["components"]["schemas"][ref].get("properties", {})
                rows = "".join(
                    f"<tr><td><code>{e(k)}</code></td><td>{e(str(v.get('type', '')))}</td><td>{e(v.get('description', ''))}</td></tr>"
                    for k, v in props.items()
                )
                out.append(f"<table>{rows}</table>")
                out += _per_view_docs(spec["components"]["schemas"][ref])
            resp = "".join(
                f"<tr><td><b>{e(code)}</b></td><td>{e(r['description'])}</td></tr>"
                for code, r in op["responses"].items()
            )
            out.append(f"<p>Responses:</p><table>{resp}</table></div>")
    out.append("</body></html>")
    return "".join(out)
