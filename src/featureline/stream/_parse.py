"""Messages -> rows of a view: each message checked on its own, so one bad event never fails
(or blocks) the others. A refused message comes back with its reason, naming the field, the
value and the fix; the good ones become one Arrow table laid out as a push of the view wants.

The checks are those the write path would apply to the whole batch (keys present and typed,
event times timezone-aware and within `writes.max_future_seconds`, values of the declared
types), so a batch of accepted rows is not refused as a whole later.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from featureline.definitions import FeatureView, StreamSource
from featureline.stream._broker import Message
from featureline.stream._fastparse import FastParser

try:  # orjson is several times faster, and is there with the server extra
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
    _JSON_ERRORS: tuple[type[Exception], ...] = (orjson.JSONDecodeError, UnicodeDecodeError)
except ImportError:  # pragma: no cover - exercised where orjson is absent
    _loads = json.loads
    _JSON_ERRORS = (json.JSONDecodeError, UnicodeDecodeError)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_I64 = (-(2**63), 2**63 - 1)
_SCALE = {"epoch_s": 1_000_000, "epoch_ms": 1_000, "epoch_us": 1}
TS = pa.timestamp("us", tz="UTC")


class _Refused(Exception):
    """Control flow: this message is refused, with the reason."""


def _short(v: Any) -> str:
    text = json.dumps(v, default=str) if not isinstance(v, str) else v
    return text if len(text) <= 60 else text[:57] + "..."


def _iso_us(v: Any, what: str) -> int:
    if not isinstance(v, str):
        raise _Refused(
            f"{what} `{_short(v)}` is a {type(v).__name__}, not an ISO 8601 string. Fix: write it "
            'like "2026-01-01T12:00:00.250Z", or set the source\'s timestamp_format.'
        )
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        raise _Refused(
            f"{what} `{_short(v)}` is not an ISO 8601 time. Fix: write it like "
            '"2026-01-01T12:00:00.250Z".'
        ) from None
    if dt.tzinfo is None:
        raise _Refused(
            f"{what} `{_short(v)}` is naive (it has no UTC offset), so it cannot be placed in "
            'time. Fix: add the offset, e.g. "2026-01-01T12:00:00Z" or "+02:00".'
        )
    return (dt - _EPOCH) // _US


def _epoch_us(v: Any, what: str, fmt: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _Refused(
            f"{what} `{_short(v)}` is a {type(v).__name__}, not a number ({fmt}). Fix: send the "
            "number, or set the source's timestamp_format."
        )
    if v != v or v in (float("inf"), float("-inf")):
        raise _Refused(f"{what} `{v}` is not a finite number.")
    us = round(v * _SCALE[fmt]) if isinstance(v, float) else v * _SCALE[fmt]
    if not _I64[0] < us < _I64[1]:
        raise _Refused(f"{what} `{v}` is out of range for {fmt}.")
    return int(us)


def _converter(dtype: Any, what: str) -> Callable[[Any], Any]:
    """A function checking one JSON value against `dtype` (returning the value to store)."""
    name = dtype.name
    if name == "Int64":

        def conv(v: Any) -> Any:
            if isinstance(v, bool) or not isinstance(v, int):
                raise _Refused(
                    f"{what} `{_short(v)}` is a {type(v).__name__}; the view declares Int64. Fix: "
                    "send a whole JSON number."
                )
            if not _I64[0] <= v <= _I64[1]:
                raise _Refused(f"{what} `{v}` does not fit Int64.")
            return v

    elif name == "Float64":

        def conv(v: Any) -> Any:
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise _Refused(
                    f"{what} `{_short(v)}` is a {type(v).__name__}; the view declares Float64. "
                    "Fix: send a JSON number."
                )
            return float(v)

    elif name == "String":

        def conv(v: Any) -> Any:
            if not isinstance(v, str):
                raise _Refused(
                    f"{what} `{_short(v)}` is a {type(v).__name__}; the view declares String. "
                    "Fix: send a JSON string."
                )
            return v

    elif name == "Bool":

        def conv(v: Any) -> Any:
            if not isinstance(v, bool):
                raise _Refused(
                    f"{what} `{_short(v)}` is a {type(v).__name__}; the view declares Bool. Fix: "
                    "send true or false."
                )
            return v

    elif name == "Timestamp":

        def conv(v: Any) -> Any:
            return _iso_us(v, what)

    elif name == "Bytes":

        def conv(v: Any) -> Any:
            try:
                return base64.b64decode(v, validate=True)
            except (ValueError, TypeError):
                raise _Refused(
                    f"{what} `{_short(v)}` is not base64 text; the view declares Bytes. Fix: "
                    "send the bytes base64-encoded."
                ) from None

    elif name == "Array":
        inner = _converter(dtype.element, f"an element of {what}")

        def conv(v: Any) -> Any:
            if not isinstance(v, list):
                raise _Refused(
                    f"{what} `{_short(v)}` is a {type(v).__name__}; the view declares {dtype}. "
                    "Fix: send a JSON array."
                )
            return [None if x is None else inner(x) for x in v]

    else:  # pragma: no cover - every DType is handled above
        raise AssertionError(name)
    return conv


class MessageParser:
    """Turns messages of one view's stream into (rows, refused) — configured once per view."""

    def __init__(
        self, view: FeatureView, src: StreamSource, max_future_seconds: float | None
    ) -> None:
        from featureline.offline.batch import timestamp_columns

        self.view = view
        self.src = src
        self.max_bytes = src.max_message_bytes
        self.max_future_us = None if max_future_seconds is None else int(max_future_seconds * 1e6)
        fields = src.fields_for(view)
        self.ts_col, self.created_col = timestamp_columns(view)
        self.ts_field = fields[self.ts_col]
        self.created_field = fields.get(self.created_col) if self.created_col else None
        fmt = src.timestamp_format
        ts_what = f"event time `{self.ts_field}`"
        self.ts_conv: Callable[[Any], int] = (
            (lambda v: _iso_us(v, ts_what))
            if fmt == "iso"
            else (lambda v: _epoch_us(v, ts_what, fmt))
        )
        declared = view.key_fields
        self.keys: list[tuple[str, str, Callable[[Any], Any] | None]] = []
        for k in view.join_keys:
            dt = declared.get(k)
            conv = _converter(dt, f"key `{fields[k]}`") if dt is not None else None
            self.keys.append((k, fields[k], conv))
        self.features = [
            (f.name, fields[f.name], _converter(f.dtype, f"field `{fields[f.name]}`"), f.dtype)
            for f in view.features
        ]
        self.fast = FastParser(
            [(k, fields[k], declared.get(k)) for k in view.join_keys],
            (self.ts_col, self.ts_field),
            (self.created_col, self.created_field)
            if self.created_col and self.created_field
            else None,
            [(f.name, fields[f.name], f.dtype) for f in view.features],
            fmt,
            self.max_bytes,
            self.max_future_us,
        )
        if self.created_col and not self.created_field:
            self.fast.enabled = False

    def parse(
        self, messages: Sequence[Message]
    ) -> tuple[pa.Table | None, list[Message], list[tuple[Message, str]]]:
        """(rows of the accepted messages, in order, or None; the accepted; the refused with reasons)."""
        now_us = time.time_ns() // 1000
        fast = self.fast.table(messages, now_us)  # every message well-formed: one Arrow read
        if fast is not None:
            return fast, list(messages), []
        return self.parse_each(messages, now_us)

    def parse_each(
        self, messages: Sequence[Message], now_us: int
    ) -> tuple[pa.Table | None, list[Message], list[tuple[Message, str]]]:
        """`parse`, message by message (finds and explains the refused ones)."""
        good: list[Message] = []
        bad: list[tuple[Message, str]] = []
        cols: dict[str, list[Any]] = {k: [] for k, _, _ in self.keys}
        ts: list[int] = []
        created: list[int | None] = []
        feats: dict[str, list[Any]] = {name: [] for name, _, _, _ in self.features}
        for m in messages:
            try:
                row = self._row(m, now_us)
            except _Refused as e:
                bad.append((m, str(e)))
                continue
            keys, t, c, values = row
            for (k, _, _), v in zip(self.keys, keys, strict=True):
                cols[k].append(v)
            ts.append(t)
            created.append(c)
            for (name, _, _, _), v in zip(self.features, values, strict=True):
                feats[name].append(v)
            good.append(m)
        if not good:
            return None, good, bad
        arrays: dict[str, pa.Array] = {}
        declared = self.view.key_fields
        for k, _, _ in self.keys:
            dt = declared.get(k)
            arrays[k] = pa.array(cols[k], dt.to_arrow() if dt is not None else None)
        arrays[self.ts_col] = pa.array(ts, pa.int64()).cast(TS)
        if self.created_col:
            arrays[self.created_col] = pa.array(created, pa.int64()).cast(TS)
        for name, _, _, dtype in self.features:
            if dtype.name == "Timestamp":
                arrays[name] = pa.array(feats[name], pa.int64()).cast(TS)
            else:
                arrays[name] = pa.array(feats[name], dtype.to_arrow())
        return pa.table(arrays), good, bad

    def _row(self, m: Message, now_us: int) -> tuple[list[Any], int, int | None, list[Any]]:
        if m.problem:
            raise _Refused(m.problem)
        if len(m.data) > self.max_bytes:
            raise _Refused(
                f"the payload is {len(m.data):,} bytes, over the source's max_message_bytes "
                f"({self.max_bytes:,}). Fix: send smaller events, or raise max_message_bytes."
            )
        try:
            obj = _loads(m.data)
        except _JSON_ERRORS as e:
            raise _Refused(
                f"the payload is not JSON ({e}). Fix: send one JSON object per message."
            ) from None
        if not isinstance(obj, dict):
            raise _Refused(
                f"the payload is a JSON {type(obj).__name__}, not an object. Fix: send one JSON "
                'object per message, e.g. {"user_id": 1, ...}.'
            )
        keys: list[Any] = []
        for _k, fld, conv in self.keys:
            v = obj.get(fld)
            if v is None:
                raise _Refused(
                    f"the key field `{fld}` is missing{' (null)' if fld in obj else ''}. Found: "
                    f"{', '.join(sorted(map(str, obj))) or 'no fields'}. Fix: send the key in every event."
                )
            if conv is not None:
                v = conv(v)
            elif isinstance(v, bool) or not isinstance(v, int | str):
                raise _Refused(f"key `{fld}` `{_short(v)}` must be a whole number or a string.")
            keys.append(v)
        raw_ts = obj.get(self.ts_field)
        if raw_ts is None:
            raise _Refused(
                f"the event time field `{self.ts_field}` is missing. Fix: send it in every event."
            )
        t = self.ts_conv(raw_ts)
        if self.max_future_us is not None and t > now_us + self.max_future_us:
            raise _Refused(
                f"the event time `{_short(raw_ts)}` is {(t - now_us) / 1e6:,.0f} s ahead of now, "
                f"beyond writes.max_future_seconds ({self.max_future_us / 1e6:g}). Fix: check the "
                "producer's clock, or raise the bound in featureline.yaml."
            )
        c = None
        if self.created_field is not None:
            raw_c = obj.get(self.created_field)
            if raw_c is not None:
                c = _iso_us(raw_c, f"created time `{self.created_field}`")
        values = []
        for _name, fld, conv, _ in self.features:
            v = obj.get(fld)
            values.append(None if v is None else conv(v))
        return keys, t, c, values


__all__ = ["MessageParser"]
