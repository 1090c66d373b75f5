"""The server's OpenAPI 3.1 document and a self-contained HTML page rendering it (no CDN)."""

from __future__ import annotations

import html
import json
from typing import Any

from featureline import __version__

_ERROR = {
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
_ENTITIES = {
    **_COLUMNS,
    "description": "Join key columns: key name -> one value per entity row.",
    "example": {"driver_id": [1001, 1002]},
}
_FEATURES = {
    "type": "array",
    "items": {"type": "string"},
    "description": "`view:feature` references (pin a version with `view@v2:feature`).",
    "example": ["driver_stats:conv_rate", "driver_stats:acc_rate"],
}
_STATUS = {"type": "string", "enum": ["PRESENT", "NOT_FOUND", "EXPIRED", "STALE"]}


def _errors(*codes: int) -> dict[str, Any]:
    what = {
        400: "Bad input: malformed JSON, an unknown field (with did-you-mean), a wrong key type.",
        404: "Unknown feature, view or feature service (with did-you-mean).",
        408: "The body did not arrive within the body timeout (the connection is closed).",
        413: "Body over max_body_bytes, or more entity rows than max_entities.",
        415: "The body is not declared `Content-Type: application/json`.",
        421: "The Host header is not on the server's allow-list (DNS rebinding guard; any route).",
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
                **_errors(400, 404, 408, 413, 415, 421),
            },
        }
    }


def _json(schema_ref: str, example: Any = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}
    if example is not None:
        media["example"] = example
    return {"required": True, "content": {"application/json": media}}


def build_spec(max_entities: int, max_body_bytes: int) -> dict[str, Any]:
    schemas: dict[str, Any] = {
        "Error": _ERROR,
        "OnlineRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["entities"],
            "properties": {
                "features": _FEATURES,
                "feature_service": {
                    "type": "string",
                    "description": "A feature service name (instead of `features`).",
                },
                "entities": _ENTITIES,
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
            "description": "Exactly one of `rows` or `columns`. Timestamps are ISO 8601 strings with an offset.",
            "properties": {
                "rows": {"type": "array", "items": {"type": "object"}},
                "columns": _COLUMNS,
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
            },
        },
        "FeastOnlineRequest": {
            "type": "object",
            "additionalProperties": True,
            "description": _FEAST_BODY,
            "required": ["entities"],
            "properties": {
                "features": _FEATURES,
                "feature_service": {"type": "string"},
                "entities": _ENTITIES,
                "full_feature_names": {"type": "boolean", "default": False},
                "request_context": {
                    **_COLUMNS,
                    "description": "Accepted for compatibility; must be empty (no on-demand views).",
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
                    "type": "string",
                    "description": "The feature view to write.",
                },
                "df": {
                    **_COLUMNS,
                    "description": "Columns; naive timestamps are read as UTC, as Feast does.",
                },
            },
        },
        "FeastMaterializeRequest": {
            "type": "object",
            "additionalProperties": True,
            "description": _FEAST_BODY,
            "properties": {
                "start_ts": {"type": "string", "description": "Window start (naive: UTC)."},
                "end_ts": {"type": "string", "description": "Window end (naive: UTC)."},
                "feature_views": {"type": "array", "items": {"type": "string"}},
                "disable_event_timestamp": {
                    "type": "boolean",
                    "description": "No window: everything up to now.",
                },
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
                    "description": "Checked; the run copies what was ingested since the last one.",
                },
                "feature_views": {"type": "array", "items": {"type": "string"}},
            },
        },
        "FeastPushRequest": {
            "type": "object",
            "additionalProperties": True,
            "description": _FEAST_BODY,
            "required": ["push_source_name", "df"],
            "properties": {
                "push_source_name": {
                    "type": "string",
                    "description": "The feature view to push to.",
                },
                "df": {
                    **_COLUMNS,
                    "description": "Columns; timestamps as strings (naive ones are read as UTC, as Feast does).",
                },
                "to": {
                    "type": "string",
                    "enum": ["online", "offline", "online_and_offline"],
                    "default": "online",
                    "description": "Accepted for compatibility: Featureline always appends to the offline log and updates the online store, so online equals offline at now.",
                },
                "allow_registry_cache": {"type": "boolean"},
                "transform_on_write": {"type": "boolean"},
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
                    "OnlineRequest",
                    {
                        "features": ["driver_stats:conv_rate", "driver_stats:acc_rate"],
                        "entities": {"driver_id": [1001, 1002]},
                    },
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
                    {"name": "view", "in": "path", "required": True, "schema": {"type": "string"}},
                    _IDEMPOTENCY,
                ],
                "requestBody": _json(
                    "PushRequest",
                    {
                        "rows": [
                            {
                                "driver_id": 1001,
                                "event_timestamp": "2025-01-01T12:00:00+00:00",
                                "conv_rate": 0.5,
                                "acc_rate": 0.9,
                                "avg_daily_trips": 10,
                            }
                        ]
                    },
                ),
                "responses": {
                    "200": ok_json("PushResponse", "Rows written."),
                    **_errors(400, 404, 408, 413, 415, 421),
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
                    "FeastOnlineRequest",
                    {
                        "features": ["driver_stats:conv_rate"],
                        "entities": {"driver_id": [1001, 1002]},
                    },
                ),
                "responses": {
                    "200": ok_json(
                        "FeastOnlineResponse", "Feast GetOnlineFeaturesResponse as JSON."
                    ),
                    **_errors(400, 404, 408, 413, 415, 421),
                },
            }
        },
        "/write-to-online-store": _feast_op(
            "feastWriteToOnlineStore",
            "Feast-compatible write (the remote online store's writes)",
            "Body `{feature_view_name, df: {column: [values]}}`; written offline and online (the offline "
            "store is the record online reads are checked against). Returns JSON null.",
            "FeastWriteRequest",
            {
                "feature_view_name": "driver_stats",
                "df": {
                    "driver_id": [1001],
                    "event_timestamp": ["2025-01-01T12:00:00"],
                    "conv_rate": [0.5],
                },
            },
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
                "feature_views": ["driver_stats"],
            },
        ),
        "/materialize-incremental": _feast_op(
            "feastMaterializeIncremental",
            "Feast-compatible incremental materialize",
            "Body `{end_ts, feature_views?}`: copies what was ingested since the last run (late rows too; "
            "Featureline's incremental run is by ingested time, so it does not stop at `end_ts`). Returns JSON null.",
            "FeastMaterializeIncrementalRequest",
            {"end_ts": "2025-01-02T00:00:00", "feature_views": ["driver_stats"]},
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
                    {
                        "push_source_name": "driver_stats",
                        "df": {
                            "driver_id": [1001],
                            "event_timestamp": ["2025-01-01 12:00:00"],
                            "conv_rate": [1.0],
                            "acc_rate": [1.0],
                            "avg_daily_trips": [1000],
                        },
                        "to": "online",
                    },
                ),
                "responses": {
                    "200": {"description": "Pushed (body: null)."},
                    **_errors(400, 404, 408, 413, 415, 421),
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
                "responses": {"200": {"description": "OpenAPI 3.1 JSON."}},
            }
        },
        "/docs": {
            "get": {
                "operationId": "docs",
                "tags": ["ops"],
                "summary": "API documentation (HTML)",
                "responses": {"200": {"description": "HTML."}},
            }
        },
    }
    return {
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


_CSS = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{margin-bottom:.2rem}.op{border:1px solid #ddd;border-radius:6px;margin:1rem 0;padding:.6rem 1rem}
.m{display:inline-block;min-width:3.5rem;font-weight:bold;color:#fff;border-radius:4px;text-align:center;padding:0 .4rem;margin-right:.5rem}
.post{background:#49cc90}.get{background:#61affe}code,pre{background:#f6f8fa;border-radius:4px}pre{padding:.6rem;overflow:auto}
td{padding:.1rem .6rem;vertical-align:top}"""


def render_docs(spec: dict[str, Any]) -> str:
    """A readable HTML listing of every operation of `spec`, with examples and schemas."""
    e = html.escape
    info = spec["info"]
    out = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(info['title'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(info['title'])}</h1><p>version {e(info['version'])} · <a href='/openapi.json'>openapi.json</a></p><p>{e(info['description'])}</p>",
    ]
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
            resp = "".join(
                f"<tr><td><b>{e(code)}</b></td><td>{e(r['description'])}</td></tr>"
                for code, r in op["responses"].items()
            )
            out.append(f"<p>Responses:</p><table>{resp}</table></div>")
    out.append("</body></html>")
    return "".join(out)
