"""Request bodies: read with a size limit, parse JSON, check fields, convert timestamps.

Everything here raises a FeaturelineError subclass, so bad input becomes a 4xx with a message
that names the offending thing and the fix, never a 500.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from featureline.errors import (  # noqa: F401  (re-exported: the server raises them from here)
    ClientGone,
    FeaturelineError,
    MisdirectedRequest,
    RequestTimeout,
    RequestTooLarge,
    UnsupportedMediaType,
    ValidationError,
    did_you_mean,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from starlette.requests import Request

    from featureline.definitions import FeatureView

try:  # orjson is several times faster on both sides; the stdlib is the fallback
    import orjson

    _loads: Any = orjson.loads
    _DecodeError: type[Exception] = orjson.JSONDecodeError
except ImportError:  # pragma: no cover - exercised only without orjson
    _loads = json.loads
    _DecodeError = json.JSONDecodeError


_JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
}


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    return _JSON_TYPES.get(type(value), type(value).__name__)


CLOSE_STATUSES = frozenset(
    {408, 413, 415, 421}
)  # answered before the body was read: close the connection

JSON_TYPE = b"application/json"


def check_json_type(value: bytes | str | None, what: str) -> None:
    """415 unless the Content-Type is application/json (parameters such as charset allowed)."""
    if value is not None:
        raw = value if isinstance(value, bytes) else value.encode("latin-1", "replace")
        if raw.partition(b";")[0].strip().lower() == JSON_TYPE:
            return
        shown = raw.partition(b";")[0].strip().decode("latin-1")[:80]
        got = f"Content-Type `{shown}`" if shown else "an empty Content-Type"
    else:
        got = "no Content-Type"
    raise UnsupportedMediaType(
        f"{what} takes a JSON body (`application/json`), got {got}. "
        "Fix: send the header `Content-Type: application/json` (curl: --json, or -H 'Content-Type: application/json')."
    )


def _body_timeout(timeout: float, received: int, length: int | None) -> RequestTimeout:
    of = f" of {length:,}" if length is not None else ""
    return RequestTimeout(
        f"The request body did not arrive within {timeout:g} s ({received:,}{of} bytes received). "
        "Fix: send the whole body promptly, or start the server with a longer --body-timeout (server.body_timeout)."
    )


class BodyDeadlines:
    """Deadlines of the request bodies being read, `timeout` seconds from the start of reading.

    One timer checks them every `tick` seconds and cancels the reading task of an expired one,
    which `read_json*` turn into a 408. (A timer per request, `asyncio.timeout`, costs about 5 us
    a request under uvloop; registering in a dict costs about 0.4 us.)"""

    def __init__(self, timeout: float | None, tick: float | None = None) -> None:
        if timeout is not None and timeout <= 0:
            raise ValidationError(
                f"The body timeout must be a positive number of seconds, got {timeout}."
            )
        self.timeout = timeout
        self.tick = tick if tick is not None else min(0.25, (timeout or 1) / 4)
        self._reading: dict[asyncio.Task[Any], float] = {}  # task -> deadline (loop time)
        self._expired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def begin(self) -> asyncio.Task[Any] | None:
        if self.timeout is None:
            return None
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - ASGI apps always run in a task
            return None
        loop = task.get_loop()
        self._reading[task] = loop.time() + self.timeout
        if (
            self._timer is None or self._loop is not loop
        ):  # (an app served again on a new loop: sweep there)
            self._loop = loop
            self._timer = loop.call_later(self.tick, self._sweep, loop)
        return task

    def end(self, task: asyncio.Task[Any]) -> None:
        self._reading.pop(task, None)
        self._expired.discard(task)

    def expired(self, task: asyncio.Task[Any]) -> bool:
        """After a CancelledError: whether this deadline caused it (then the cancellation is undone)."""
        if task in self._expired:
            self._expired.discard(task)
            task.uncancel()
            return True
        return False

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._loop:
            return  # superseded by a sweep on a newer loop
        self._timer = None
        now = loop.time()
        for task, deadline in list(self._reading.items()):
            if task.done() or task.get_loop() is not loop:
                del self._reading[task]  # its loop is gone
            elif deadline <= now:
                del self._reading[task]
                self._expired.add(task)
                task.cancel()
        if self._reading:
            self._timer = loop.call_later(self.tick, self._sweep, loop)


NO_DEADLINE = BodyDeadlines(None)


def _check_length(raw: bytes | str, limit: int) -> int:
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    if not text.isdigit() or not text.isascii():
        raise ValidationError(
            f"Bad Content-Length header `{text[:40]}`. Fix: send the body's size in bytes."
        )
    if int(text) > limit:
        raise _too_large(int(text), limit)
    return int(text)


async def read_json(request: Request, limit: int, deadlines: BodyDeadlines = NO_DEADLINE) -> Any:
    """The parsed JSON body of a request declared `application/json` (415 otherwise); 413 over
    `limit` bytes (checked before reading when the length is known); 408 when the whole body has
    not arrived within `deadlines.timeout` seconds."""
    what = f"{request.method} {request.url.path}"
    check_json_type(request.headers.get("content-type"), what)
    raw_length = request.headers.get("content-length")
    length = _check_length(raw_length, limit) if raw_length is not None else None
    parts: list[bytes] = []  # chunked: count while reading, stop at the limit
    size = 0
    task = deadlines.begin()
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(size, limit, at_least=True)
            parts.append(chunk)
    except asyncio.CancelledError:
        if task is not None and deadlines.expired(task):
            raise _body_timeout(deadlines.timeout or 0, size, length) from None
        raise
    finally:
        if task is not None:
            deadlines.end(task)
    return parse_json(b"".join(parts))


async def read_json_asgi(
    scope: dict[str, Any],
    receive: Any,
    limit: int,
    deadlines: BodyDeadlines = NO_DEADLINE,
    what: str = "",
) -> Any:
    """`read_json` on raw ASGI (the hot path skips building a Request)."""
    content_type: bytes | None = None
    length: int | None = None
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value
        elif name == b"content-length":
            length = _check_length(value, limit)
    check_json_type(content_type, what or f"POST {scope['path']}")
    size = 0
    task = deadlines.begin()
    try:
        message = await receive()
        body: bytes = message.get("body", b"")
        if message["type"] == "http.disconnect":
            raise ClientGone()
        size = len(body)
        if size > limit:
            raise _too_large(size, limit, at_least=True)
        if message.get("more_body"):
            parts = [body]
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
    except asyncio.CancelledError:
        if task is not None and deadlines.expired(task):
            raise _body_timeout(deadlines.timeout or 0, size, length) from None
        raise
    finally:
        if task is not None:
            deadlines.end(task)
    return parse_json(body)


_LONG_INT = re.compile(rb"\d{20}")  # an integer beyond 64 bits has at least 20 digits


def _not_json(name: str) -> Any:
    """The stdlib's NaN / Infinity literals are not JSON (orjson refuses them too)."""
    raise ValidationError(
        f"Malformed JSON in the request body: `{name}` is not a JSON value. Fix: send null or a number."
    )


def parse_json(body: bytes) -> Any:
    """The JSON value; integers beyond 64 bits stay exact ints (orjson would make them floats, so a
    23-digit key would be reported as a float instead of as out of the Int64 range)."""
    if not body:
        raise ValidationError(
            'The request body is empty. Fix: send a JSON object, e.g. {"features": [...], "entities": {...}}.'
        )
    try:
        if _LONG_INT.search(body) is not None:  # rare: the stdlib's exact integers
            return json.loads(body, parse_constant=_not_json)
        return _loads(body)
    except (_DecodeError, json.JSONDecodeError) as e:
        where = ""
        line, col = getattr(e, "lineno", None), getattr(e, "colno", None)
        if line is not None and col is not None:
            where = f" at line {line} column {col}"
        msg = getattr(e, "msg", str(e))
        raise ValidationError(
            f"Malformed JSON in the request body{where}: {msg}. Fix: send valid JSON (check quotes, commas and brackets)."
        ) from None
    except UnicodeDecodeError:
        raise ValidationError(
            "The request body is not UTF-8 text. Fix: send JSON encoded as UTF-8."
        ) from None
    except RecursionError:  # the stdlib path; orjson refuses deep nesting with a JSONDecodeError
        raise ValidationError(
            "The JSON in the request body is nested too deeply. Fix: send at most a few levels of arrays and objects."
        ) from None


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
        raise ValidationError(
            f'The body of {what} must be a JSON object, got {json_type(body)}. Fix: send {{"field": value, ...}}.'
        )
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
        raise ValidationError(
            f"Field `{key}` must be true or false, got {json_type(value)} `{value!r}`."
        )
    return value


def features_arg(body: dict[str, Any], what: str, nullable: bool = False) -> list[str] | str:
    """The `features` list or the `feature_service` name: exactly one of them. A null is the
    field left out when `nullable` (Feast's bodies), else refused (the native routes are strict)."""
    if not nullable:
        for key in ("features", "feature_service"):
            if key in body and body[key] is None:
                raise ValidationError(
                    f"Field `{key}` of {what} is null. Fix: leave the field out, or give "
                    + (
                        '"features": ["view:feature", ...].'
                        if key == "features"
                        else '"feature_service": "name".'
                    )
                )
    features, service = body.get("features"), body.get("feature_service")
    if features is not None and service is not None:
        raise ValidationError(
            f"Give either `features` or `feature_service` in the body of {what}, not both."
        )
    if service is not None:
        if not isinstance(service, str) or not service:
            raise ValidationError(
                f"Field `feature_service` must be a feature service name (a string), got {json_type(service)}."
            )
        return service
    if features is None:
        raise ValidationError(
            f'The body of {what} names no features. Fix: add "features": ["view:feature", ...] '
            f'or "feature_service": "name".'
        )
    if not isinstance(features, list) or not features:
        raise ValidationError(
            f'Field `features` must be a non-empty array of "view:feature" strings, got {json_type(features)}.'
        )
    for f in features:
        if not isinstance(f, str):
            raise ValidationError(
                f'Field `features` holds {json_type(f)} `{f!r}`; each feature is a "view:feature" string.'
            )
    return features


def entities_arg(body: dict[str, Any], max_entities: int, what: str) -> dict[str, list[Any]]:
    """The `entities` columns: a JSON object of equal-length arrays, at most `max_entities` long."""
    entities = body.get("entities")
    if entities is None:
        raise ValidationError(
            f'The body of {what} has no `entities`. Fix: add "entities": {{"driver_id": [1001, 1002]}}.'
        )
    if not isinstance(entities, dict) or not entities:
        raise ValidationError(
            f"Field `entities` must be a non-empty object of key columns, got {json_type(entities)}. "
            f'Fix: send "entities": {{"driver_id": [1001, 1002]}}.'
        )
    n = -1
    for key, values in entities.items():
        if not isinstance(values, list):
            raise ValidationError(
                f"Entity key `{key}` must be an array of values, got {json_type(values)} `{values!r}`. "
                f'Fix: send "{key}": [{json_dump_scalar(values)}].'
            )
        if n >= 0 and len(values) != n:
            lengths = {k: len(v) if isinstance(v, list) else None for k, v in entities.items()}
            raise ValidationError(
                f"Entity key columns have different lengths {lengths}. Fix: give every key one value per entity row."
            )
        n = len(values)
    if n > max_entities:
        raise RequestTooLarge(
            f"The request asks for {n:,} entity rows, over the server limit of {max_entities:,} (max_entities). "
            f"Fix: split it into requests of at most {max_entities:,} rows, or start the server with a higher "
            f"limit (featureline serve --max-entities N)."
        )
    return entities


def json_dump_scalar(value: Any) -> str:
    return (
        f'"{value}"'
        if isinstance(value, str)
        else str(value).lower()
        if isinstance(value, bool)
        else str(value)
    )


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
            f'Fix: send e.g. "2025-01-01T12:00:00+00:00".'
        )
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(
            f"Column `{column}` row {row}: `{value}` is not an ISO 8601 timestamp. "
            f'Fix: send e.g. "2025-01-01T12:00:00+00:00" or "2025-01-01T12:00:00Z".'
        ) from None
    if dt.tzinfo is None:
        if not naive_is_utc:
            raise ValidationError(
                f"Column `{column}` row {row}: `{value}` has no time zone; Featureline never guesses one. "
                f'Fix: add an offset, e.g. "{value}+00:00" or "{value}Z".'
            )
        return dt.replace(tzinfo=UTC)
    try:
        return dt.astimezone(UTC)
    except OverflowError:
        raise ValidationError(
            f"Column `{column}` row {row}: `{value}` is outside the range of timestamps once moved to UTC "
            "(0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z). Fix: send a time within that range."
        ) from None


def push_columns(
    view: FeatureView, columns: Any, what: str, naive_is_utc: bool = False, broadcast: bool = False
) -> pa.Table:
    """A JSON object of columns -> an Arrow table typed by the view's schema (timestamps parsed)."""
    if not isinstance(columns, dict) or not columns:
        raise ValidationError(
            f'The columns of {what} must be a non-empty object {{"column": [values]}}, got {json_type(columns)}.'
        )
    lengths = {len(v) for v in columns.values() if isinstance(v, list)}
    if len(lengths) > 1:
        shown = {k: len(v) if isinstance(v, list) else "scalar" for k, v in columns.items()}
        raise ValidationError(
            f"The columns of {what} have different lengths {shown}. Fix: give every column one value per row."
        )
    n = lengths.pop() if lengths else 1
    stamps = timestamp_fields(view)
    out: dict[str, list[Any]] = {}
    for name, values in columns.items():
        if not isinstance(values, list):
            if not broadcast:
                raise ValidationError(
                    f"Column `{name}` of {what} must be an array of values, got {json_type(values)}."
                )
            values = [values] * n
        if name in stamps:
            values = [parse_timestamp(v, name, i, naive_is_utc) for i, v in enumerate(values)]
        out[name] = values
    return _typed_table(view, out, stamps, what)


def _typed_table(
    view: FeatureView, cols: dict[str, list[Any]], stamps: set[str], what: str
) -> pa.Table:
    """Columns the view declares get its type (so JSON `1` fills a Float64); others are inferred."""
    import pyarrow as pa

    types = {f.name: f.dtype for f in view.schema}
    arrays = []
    for name, values in cols.items():
        dtype = types.get(name)
        scalar = dtype.element if dtype is not None and dtype.element is not None else dtype
        if scalar is not None and scalar.name in ("Int64", "Float64"):
            _check_numbers(name, values, scalar.name, dtype is not scalar, what)
        target = (
            pa.timestamp("us", tz="UTC")
            if name in stamps
            else dtype.to_arrow()
            if dtype is not None
            else None
        )
        try:
            arrays.append(pa.array(values, type=target))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as e:
            if target == pa.int64():
                from featureline._keys import INT64_MAX, INT64_MIN

                for i, v in enumerate(values):
                    if type(v) is int and not INT64_MIN <= v <= INT64_MAX:
                        raise ValidationError(
                            f"Column `{name}` of {what}: row {i} has `{v}`, outside the Int64 range "
                            f"{INT64_MIN} to {INT64_MAX}. Fix: send values in that range."
                        ) from None
            bad = _first_bad(values, target)
            shown = f" (row {bad[0]}: {json_type(bad[1])} `{bad[1]!r}`)" if bad else ""
            want = str(dtype) if dtype is not None else "one type for the whole column"
            raise ValidationError(
                f"Column `{name}` of {what} does not fit type {want}{shown}: {e}. Fix: send values of type {want}."
            ) from None
    return pa.table(dict(zip(cols, arrays, strict=True)))


_INT64_RANGE = "-9223372036854775808 to 9223372036854775807"


def _check_numbers(name: str, values: list[Any], kind: str, nested: bool, what: str) -> None:
    """No boolean in a number column (pyarrow would store `true` as 1.0 in a Float64), and no
    float at or past the Int64 range in an Int64 column: a JSON integer outside the range is
    parsed as a float (e.g. -2^63 - 1 as -9.223372036854776e18, which would be stored as -2^63)."""
    for i, v in enumerate(values):
        for x in v if nested and isinstance(v, list) else (v,):
            if isinstance(x, bool):
                raise ValidationError(
                    f"Column `{name}` of {what} row {i}: `{str(x).lower()}` is a boolean; the column is "
                    f"{kind}. Fix: send a number (or null)."
                )
            if kind == "Int64" and isinstance(x, float) and not (-(2.0**63) < x < 2.0**63):
                raise ValidationError(
                    f"Column `{name}` of {what} row {i}: `{x!r}` is outside the Int64 range "
                    f"{_INT64_RANGE} (a JSON number this large is not stored exactly). "
                    "Fix: send an integer within that range."
                )


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
        raise ValidationError(
            f"Field `rows` of {what} must be a non-empty array of objects, got {json_type(rows)}."
        )
    first = rows[0]
    if not isinstance(first, dict) or not first:
        raise ValidationError(
            f'Row 0 of {what} must be a non-empty object {{"column": value}}, got {json_type(first)}.'
        )
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
