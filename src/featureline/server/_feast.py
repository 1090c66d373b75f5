"""Feast's Python feature server wire format (`POST /get-online-features`, `POST /push`,
`POST /write-to-online-store`, `POST /materialize`, `POST /materialize-incremental`).

As in Feast's server (pydantic models that ignore unknown fields), a Feast route accepts and
ignores fields it does not know, so newer SDKs (`include_feature_view_version_metadata`, ...)
keep working; a request that fails anyway names the ignored fields that look like typos. Naive
timestamps are UTC, as Feast's `make_tzaware` reads them. A body that fails validation is a 422
with FastAPI's `{"detail": [{"type", "loc", "msg", "input"}]}` (Feast's server is FastAPI), plus
Featureline's `error` and `message`; the native routes answer 400 with `error` and `message`.

The response mirrors Feast's `GetOnlineFeaturesResponse` as its server prints it (protobuf
`MessageToDict` with Feast's JSON patches): one result per output column, entity keys first,
each with `values`, `statuses` and `event_timestamps` over the entity rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from featureline.errors import FeaturelineError, ValidationError, did_you_mean

if TYPE_CHECKING:
    from featureline.server._dispatch import Call, Handler
    from featureline.server._types import OnlineResult

READ_FIELDS = (  # what Feast's GetOnlineFeaturesRequest knows (the version metadata flag: ignored)
    "entities",
    "feature_service",
    "features",
    "full_feature_names",
    "include_feature_view_version_metadata",
    "request_context",
)
PUSH_FIELDS = ("allow_registry_cache", "df", "push_source_name", "to", "transform_on_write")
PUSH_MODES = ("online", "offline", "online_and_offline")
WRITE_FIELDS = ("allow_registry_cache", "df", "feature_view_name", "transform_on_write")
MATERIALIZE_FIELDS = (
    "disable_event_timestamp",
    "end_ts",
    "feature_views",
    "full_feature_names",
    "start_ts",
    "version",
)
MATERIALIZE_INCREMENTAL_FIELDS = ("end_ts", "feature_views", "full_feature_names", "version")

T = TypeVar("T")


def feast_errors(known: Iterable[str]) -> Callable[[Handler], Handler]:
    """A Feast route's handler whose invalid bodies answer 422 as FastAPI does (see the docstring).

    Only plain validation failures (400) change; 404 (an unknown view), 413, 415 ... stay."""
    fields = tuple(known)

    def wrap(handler: Handler) -> Handler:
        async def feast_handler(call: Call) -> Any:
            try:
                return await handler(call)
            except ValidationError as e:
                if e.http_status != 400:
                    raise
                from featureline.server._dispatch import Reply

                return Reply.json(unprocessable(e.message, fields), 422)

        feast_handler.__name__ = getattr(handler, "__name__", "feast_handler")
        feast_handler.__doc__ = handler.__doc__
        return feast_handler

    return wrap


_NAMED = re.compile(r"`(\w+)`")


def unprocessable(message: str, known: Iterable[str]) -> dict[str, Any]:
    """FastAPI's 422 body for `message`: `loc` is the request field it names first (else the body)."""
    known = set(known)
    field = next((m for m in _NAMED.findall(message) if m in known), None)
    missing = field is not None and f"has no `{field}`" in message
    return {
        "detail": [
            {
                "type": "missing" if missing else "value_error",
                "loc": ["body", field] if field else ["body"],
                "msg": message,
                "input": None,
            }
        ],
        "error": "ValidationError",
        "message": message,
    }


def feast_body(body: Any, what: str) -> dict[str, Any]:
    """The body as a dict; unknown fields are kept and ignored (Feast's pydantic models ignore them)."""
    if not isinstance(body, dict):
        from featureline.server._body import json_type

        raise ValidationError(
            f'The body of {what} must be a JSON object, got {json_type(body)}. Fix: send {{"field": value, ...}}.'
        )
    return body


def with_typo_hints(body: dict[str, Any], known: Iterable[str], run: Callable[[], T]) -> T:
    """`run()`; if it fails, its message also names the ignored fields that look like a known one."""
    try:
        return run()
    except FeaturelineError as e:
        known = tuple(known)
        hints = [
            f"Unknown field `{k}` was ignored.{hint}"
            for k in body
            if k not in known and (hint := did_you_mean(k, known))
        ]
        if hints and e.args and isinstance(e.args[0], str):
            e.args = (e.args[0] + " " + " ".join(hints), *e.args[1:])
            if hasattr(e, "message"):
                e.message = e.args[0]
        raise


def feast_timestamp(value: Any, field: str, what: str) -> datetime:
    """An ISO 8601 string -> aware UTC datetime; naive is UTC (Feast: `make_tzaware(parser.parse(v))`)."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(
            f'Field `{field}` of {what} must be an ISO 8601 timestamp string, e.g. "2025-01-01T00:00:00" '
            f"(naive is UTC), got {value!r}."
        )
    try:
        dt = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValidationError(
            f'Field `{field}` of {what}: `{value}` is not an ISO 8601 timestamp. Fix: send e.g. "2025-01-01T00:00:00".'
        ) from None
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    try:
        return dt.astimezone(UTC)
    except OverflowError:
        raise ValidationError(
            f"Field `{field}` of {what}: `{value}` is outside the range of timestamps once moved to UTC."
        ) from None


def feature_views_arg(body: dict[str, Any], what: str) -> list[str] | None:
    views = body.get("feature_views")
    if views is None:
        return None
    if not isinstance(views, list) or not all(isinstance(v, str) for v in views):
        raise ValidationError(
            f'Field `feature_views` of {what} must be an array of feature view names, e.g. ["driver_stats"], or null.'
        )
    return views


EPOCH = "1970-01-01T00:00:00Z"  # what Feast prints for an unset timestamp (entity keys, NOT_FOUND)

# Feast's FieldStatus names for Featureline's statuses
STATUS = {
    "PRESENT": "PRESENT",
    "NOT_FOUND": "NOT_FOUND",
    "EXPIRED": "OUTSIDE_MAX_AGE",
    "STALE": "PRESENT",
}


def rfc3339(ts: datetime | None) -> str:
    """A protobuf Timestamp as JSON: UTC, `Z`, fraction only when non-zero (3 or 6 digits)."""
    if ts is None:
        return EPOCH
    if ts.utcoffset():
        ts = ts.astimezone(UTC)
    us = ts.microsecond
    base = (
        f"{ts.year:04d}-{ts.month:02d}-{ts.day:02d}T{ts.hour:02d}:{ts.minute:02d}:{ts.second:02d}"
    )
    if not us:
        return base + "Z"
    if us % 1000 == 0:
        return f"{base}.{us // 1000:03d}Z"
    return f"{base}.{us:06d}Z"


_STAMPS: dict[int, str] = {}  # event time (us) -> Feast's text; values repeat for hot keys


def _stamp(us: int | None) -> str:
    if us is None:
        return EPOCH
    text = _STAMPS.get(us)
    if text is None:
        from featureline.offline.store import us_to_dt

        if len(_STAMPS) > 100_000:
            _STAMPS.clear()
        text = _STAMPS[us] = rfc3339(us_to_dt(us))
    return text


def online_response(
    resp: OnlineResult, view_versions: list[tuple[str, int]] | None = None
) -> dict[str, Any]:
    """Feast's JSON body for a Featureline OnlineResponse; `view_versions` (name, version) of the
    views read, when asked (`include_feature_view_version_metadata`), become Feast's
    `metadata.feature_view_metadata`."""
    data = resp.to_dict()
    keys = resp.keys
    n = len(next(iter(data.values()))) if data else 0
    results: list[dict[str, Any]] = []
    key_status = ["PRESENT"] * n
    key_stamps = [EPOCH] * n
    for k in keys:
        results.append({"values": data[k], "statuses": key_status, "event_timestamps": key_stamps})
    stamp_cache: dict[int, list[str]] = {}  # features of one view share their timestamp list
    statuses, stamps = resp.statuses, resp.event_us
    for name in resp.feature_names:
        ts = stamps[name]
        printed = stamp_cache.get(id(ts))
        if printed is None:
            printed = stamp_cache[id(ts)] = [_stamp(t) for t in ts]
        st = statuses[name]
        if "EXPIRED" in st or "STALE" in st:
            st = [STATUS.get(x, x) for x in st]
        results.append({"values": data[name], "statuses": st, "event_timestamps": printed})
    metadata: dict[str, Any] = {"feature_names": [*keys, *resp.feature_names]}
    if view_versions is not None:
        metadata["feature_view_metadata"] = [{"name": n, "version": v} for n, v in view_versions]
    return {"metadata": metadata, "results": results}
