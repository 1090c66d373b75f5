"""Request bodies: read with a size limit, parse JSON, check fields, convert timestamps.

Everything here raises a FeaturelineError subclass, so bad input becomes a 4xx with a message
that names the offending thing and the fix, never a 500.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from featureline.errors import ValidationError, did_you_mean

if TYPE_CHECKING:
    import pyarrow as pa
    from starlette.requests import Request

    from featureline.definitions import FeatureView

try:  # orjson is several times faster on both sides; the stdlib is the fallback
    import orjson

    _loads: Any = orjson.loads
    _DecodeError: type[Exception] = orjson.JSONDecodeError
except ImportError:  # pragma: no cover - exercised only without orjson
    import json

    _loads = json.loads
    _DecodeError = json.JSONDecodeError


class RequestTooLarge(ValidationError):
    """The body, or the number of entity rows, is over the server's limit."""

    http_status = 413


_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    return _JSON_TYPES.get(type(value), type(value).__name__)


class ClientGone(Exception):
    """The client disconnected before sending the whole body: there is no one to answer."""


def _check_length(raw: bytes | str, limit: int) -> None:
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    if not text.isdigit():
        raise ValidationError(f"Bad Content-Length header `{text}`. Fix: send the body's size in bytes.")
    if int(text) > limit:
        raise _too_large(int(text), limit)


async def read_json(request: Request, limit: int) -> Any:
    """The parsed JSON body; 413 over `limit` bytes (checked before reading when the length is known)."""
    length = request.headers.get("content-length")
    if length is not None:
        _check_length(length, limit)
        return parse_json(await request.body())
    parts: list[bytes] = []  # chunked: count while reading, stop at the limit
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit, at_least=True)
        parts.append(chunk)
    return parse_json(b"".join(parts))


async def read_json_asgi(scope: dict[str, Any], receive: Any, limit: int) -> Any:
    """`read_json` on raw ASGI (the hot path skips building a Request)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            _check_length(value, limit)
            break
    message = await receive()
    body: bytes = message.get("body", b"")
    if message["type"] == "http.disconnect":
        raise ClientGone()
    if len(body) > limit:
        raise _too_large(len(body), limit, at_least=True)
    if message.get("more_body"):
        parts = [body]
        size = len(body)
        while message.get("more_body"):
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(size, limit, at_least=True)
            parts.append(chunk)
        body = b"".join(parts)
    return parse_json(body)


def parse_json(body: bytes) -> Any:
    if not body:
        raise ValidationError("The request body is empty. Fix: send a JSON object, e.g. {\"features\": [...], \"entities\": {...}}.")
    try:
        return _loads(body)
    except _DecodeError as e:
        where = ""
        line, col = getattr(e, "lineno", None), getattr(e, "colno", None)
        if line is not None and col is not None:
            where = f" at line {line} column {col}"
        msg = getattr(e, "msg", str(e))
        raise ValidationError(f"Malformed JSON in the request body{where}: {msg}. Fix: send valid JSON (check quotes, commas and brackets).") from None
    except UnicodeDecodeError:
        raise ValidationError("The request body is not UTF-8 text. Fix: send JSON encoded as UTF-8.") from None


def _too_large(size: int, limit: int, at_least: bool = False) -> RequestTooLarge:
    more = "more than " if at_least else ""
    return RequestTooLarge(
        f"The request body is {more}{size:,} bytes, over the server limit of {limit:,} bytes (max_body_bytes). "
        f"Fix: split the request into smaller batches, or start the server with a higher limit "
        f"(featureline serve --max-body-bytes N)."
    )


def check_object(body: Any, allowed: Iterable[str], what: str) -> dict[str, Any]:
    """`body` as a dict with only `allowed` keys (400 with did-you-mean otherwise)."""
    if not isinstance(body, dict):
        raise ValidationError(f"The body of {what} must be a JSON object, got {json_type(body)}. Fix: send {{\"field\": value, ...}}.")
    for key in body:
        if key not in allowed:
            valid = ", ".join(f"`{a}`" for a in sorted(allowed))
            raise ValidationError(
                f"Unknown field `{key}` in the body of {what}.{did_you_mean(key, allowed)} "
                f"Valid fields: {valid}. Fix: remove or rename it."
            )
    return body


def get_bool(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise ValidationError(f"Field `{key}` must be true or false, got {json_type(value)} `{value!r}`.")
    return value


def features_arg(body: dict[str, Any], what: str) -> list[str] | str:
    """The `features` list or the `feature_service` name: exactly one of them."""
    features, service = body.get("features"), body.get("feature_service")
    if features is not None and service is not None:
        raise ValidationError(f"Give either `features` or `feature_service` in the body of {what}, not both.")
    if service is not None:
        if not isinstance(service, str) or not service:
            raise ValidationError(f"Field `feature_service` must be a feature service name (a string), got {json_type(service)}.")
        return service
    if features is None:
        raise ValidationError(
            f"The body of {what} names no features. Fix: add \"features\": [\"view:feature\", ...] "
            f"or \"feature_service\": \"name\"."
        )
    if not isinstance(features, list) or not features:
        raise ValidationError(f"Field `features` must be a non-empty array of \"view:feature\" strings, got {json_type(features)}.")
    for f in features:
        if not isinstance(f, str):
            raise ValidationError(f"Field `features` holds {json_type(f)} `{f!r}`; each feature is a \"view:feature\" string.")
    return features


def entities_arg(body: dict[str, Any], max_entities: int, what: str) -> dict[str, list[Any]]:
    """The `entities` columns: a JSON object of equal-length arrays, at most `max_entities` long."""
    entities = body.get("entities")
    if entities is None:
        raise ValidationError(f"The body of {what} has no `entities`. Fix: add \"entities\": {{\"driver_id\": [1001, 1002]}}.")
    if not isinstance(entities, dict) or not entities:
        raise ValidationError(
            f"Field `entities` must be a non-empty object of key columns, got {json_type(entities)}. "
            f"Fix: send \"entities\": {{\"driver_id\": [1001, 1002]}}."
        )
    n = -1
    for key, values in entities.items():
        if not isinstance(values, list):
            raise ValidationError(
                f"Entity key `{key}` must be an array of values, got {json_type(values)} `{values!r}`. "
                f"Fix: send \"{key}\": [{json_dump_scalar(values)}]."
            )
        if n >= 0 and len(values) != n:
            lengths = {k: len(v) if isinstance(v, list) else None for k, v in entities.items()}
            raise ValidationError(f"Entity key columns have different lengths {lengths}. Fix: give every key one value per entity row.")
        n = len(values)
    if n > max_entities:
        raise RequestTooLarge(
            f"The request asks for {n:,} entity rows, over the server limit of {max_entities:,} (max_entities). "
            f"Fix: split it into requests of at most {max_entities:,} rows, or start the server with a higher "
            f"limit (featureline serve --max-entities N)."
        )
    return entities


def json_dump_scalar(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)


# -- push bodies ------------------------------------------------------------------------------


def timestamp_fields(view: FeatureView) -> set[str]:
    """Columns of a push for `view` that hold timestamps (event, created, and Timestamp fields)."""
    if view.source is not None:
        cols = {view.source.timestamp_field, view.source.created_timestamp_field or ""}
    else:
        cols = {"event_timestamp"}
    cols |= {f.name for f in view.schema if f.dtype.name == "Timestamp"}
    cols.discard("")
    return cols


def parse_timestamp(value: Any, column: str, row: int, naive_is_utc: bool) -> datetime | None:
    """An ISO 8601 string -> aware UTC datetime; naive ones are refused unless `naive_is_utc`."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(
            f"Column `{column}` row {row}: timestamps are ISO 8601 strings, got {json_type(value)} `{value!r}`. "
            f"Fix: send e.g. \"2025-01-01T12:00:00+00:00\"."
        )
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(
            f"Column `{column}` row {row}: `{value}` is not an ISO 8601 timestamp. "
            f"Fix: send e.g. \"2025-01-01T12:00:00+00:00\" or \"2025-01-01T12:00:00Z\"."
        ) from None
    if dt.tzinfo is None:
        if not naive_is_utc:
            raise ValidationError(
                f"Column `{column}` row {row}: `{value}` has no time zone; Featureline never guesses one. "
                f"Fix: add an offset, e.g. \"{value}+00:00\" or \"{value}Z\"."
            )
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def push_columns(
    view: FeatureView, columns: Any, what: str, naive_is_utc: bool = False, broadcast: bool = False
) -> pa.Table:
    """A JSON object of columns -> an Arrow table typed by the view's schema (timestamps parsed)."""
    if not isinstance(columns, dict) or not columns:
        raise ValidationError(f"The columns of {what} must be a non-empty object {{\"column\": [values]}}, got {json_type(columns)}.")
    lengths = {len(v) for v in columns.values() if isinstance(v, list)}
    if len(lengths) > 1:
        shown = {k: len(v) if isinstance(v, list) else "scalar" for k, v in columns.items()}
        raise ValidationError(f"The columns of {what} have different lengths {shown}. Fix: give every column one value per row.")
    n = lengths.pop() if lengths else 1
    stamps = timestamp_fields(view)
    out: dict[str, list[Any]] = {}
    for name, values in columns.items():
        if not isinstance(values, list):
            if not broadcast:
                raise ValidationError(f"Column `{name}` of {what} must be an array of values, got {json_type(values)}.")
            values = [values] * n
        if name in stamps:
            values = [parse_timestamp(v, name, i, naive_is_utc) for i, v in enumerate(values)]
        out[name] = values
    return _typed_table(view, out, stamps, what)


def _typed_table(view: FeatureView, cols: dict[str, list[Any]], stamps: set[str], what: str) -> pa.Table:
    """Columns the view declares get its type (so JSON `1` fills a Float64); others are inferred."""
    import pyarrow as pa

    types = {f.name: f.dtype for f in view.schema}
    arrays = []
    for name, values in cols.items():
        dtype = types.get(name)
        target = pa.timestamp("us", tz="UTC") if name in stamps else dtype.to_arrow() if dtype is not None else None
        try:
            arrays.append(pa.array(values, type=target))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as e:
            bad = _first_bad(values, target)
            shown = f" (row {bad[0]}: {json_type(bad[1])} `{bad[1]!r}`)" if bad else ""
            want = str(dtype) if dtype is not None else "one type for the whole column"
            raise ValidationError(
                f"Column `{name}` of {what} does not fit type {want}{shown}: {e}. Fix: send values of type {want}."
            ) from None
    return pa.table(dict(zip(cols, arrays, strict=True)))


def _first_bad(values: list[Any], target: Any) -> tuple[int, Any] | None:
    import pyarrow as pa

    for i, v in enumerate(values):
        try:
            pa.array([v], type=target)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            return i, v
    return None


def push_rows(view: FeatureView, rows: Any, what: str) -> pa.Table:
    """A JSON array of row objects -> columns (every row must have the first row's keys)."""
    if not isinstance(rows, list) or not rows:
        raise ValidationError(f"Field `rows` of {what} must be a non-empty array of objects, got {json_type(rows)}.")
    first = rows[0]
    if not isinstance(first, dict) or not first:
        raise ValidationError(f"Row 0 of {what} must be a non-empty object {{\"column\": value}}, got {json_type(first)}.")
    names = list(first)
    cols: dict[str, list[Any]] = {k: [] for k in names}
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValidationError(f"Row {i} of {what} must be an object, got {json_type(row)}.")
        if row.keys() != first.keys():
            missing = sorted(set(names) - set(row))
            extra = sorted(set(row) - set(names))
            raise ValidationError(
                f"Row {i} of {what} has different columns from row 0 (missing {missing}, extra {extra}). "
                f"Fix: give every row the same columns (use null for a missing value)."
            )
        for k in names:
            cols[k].append(row[k])
    return push_columns(view, cols, what)
