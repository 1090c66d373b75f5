"""What the OpenAPI modules share: the constant schemas, the error answers, the request
bodies and the per-view push columns (`_openapi_schemas`, `_openapi_paths` and `_openapi` use them)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from featureline.definitions import FeatureView

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
