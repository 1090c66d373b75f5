"""Stream sources: where `featureline stream` reads a view's events from (no I/O here).

A `StreamSource` names the broker (`redis`: a Redis stream, read through a consumer group;
`nats`: a NATS JetStream subject, read through a durable pull consumer), the stream or subject,
the consumer group, and how the fields of a message (a JSON object) become the view's columns.
The broker's URL is not part of the definition: it comes from `streams:` in featureline.yaml,
so one definition runs against a laptop's broker and a shared one alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from featureline.errors import did_you_mean

BROKERS = ("redis", "nats")
TIMESTAMP_FORMATS = ("iso", "epoch_s", "epoch_ms", "epoch_us")
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024
_GROUP = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class StreamSource:
    """A view's events arriving on a broker stream, one JSON object per message.

    - `broker`: `redis` (Redis Streams) or `nats` (NATS JetStream).
    - `stream`: the Redis stream key, or the NATS subject (one subject, no wildcards).
    - `group`: the consumer group (Redis) or durable consumer (NATS) the workers share;
      empty: `featureline_<view>`.
    - `field_map`: message field -> view column, for fields not named like their column.
    - `timestamp_field`: the message field holding the event time; `timestamp_format` says how
      it is written: `iso` (ISO 8601 with a UTC offset; naive times are refused), or a number
      of seconds / milliseconds / microseconds since the Unix epoch (`epoch_s`, `epoch_ms`,
      `epoch_us`).
    - `created_timestamp_field`: the field holding the created time, for a view with one.
    - `dead_letter`: where refused messages go, with their reason; empty: `<stream>:dead`
      (Redis) or `deadletter.<subject>` (NATS).
    - `max_message_bytes`: larger messages are refused (dead-lettered) unread.
    """

    broker: str
    stream: str
    group: str = ""
    field_map: dict[str, str] = field(default_factory=dict)
    timestamp_field: str = "event_timestamp"
    timestamp_format: str = "iso"
    created_timestamp_field: str | None = None
    dead_letter: str = ""
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    name: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.field_map, dict):
            object.__setattr__(self, "field_map", dict(self.field_map))

    def fields_for(self, view: Any) -> dict[str, str]:
        """View column -> the message field it is read from, for a FeatureView `view`."""
        return message_fields(view, self)

    def group_for(self, view_name: str) -> str:
        return self.group or f"featureline_{view_name}"

    @property
    def dead_letter_stream(self) -> str:
        if self.dead_letter:
            return self.dead_letter
        return f"{self.stream}:dead" if self.broker == "redis" else f"deadletter.{self.stream}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "stream",
            "broker": self.broker,
            "stream": self.stream,
            "group": self.group,
            "field_map": dict(self.field_map),
            "timestamp_field": self.timestamp_field,
            "timestamp_format": self.timestamp_format,
            "created_timestamp_field": self.created_timestamp_field,
            "dead_letter": self.dead_letter,
            "max_message_bytes": self.max_message_bytes,
            "name": self.name,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StreamSource:
        return cls(
            broker=d["broker"],
            stream=d["stream"],
            group=d.get("group", ""),
            field_map=dict(d.get("field_map") or {}),
            timestamp_field=d.get("timestamp_field", "event_timestamp"),
            timestamp_format=d.get("timestamp_format", "iso"),
            created_timestamp_field=d.get("created_timestamp_field"),
            dead_letter=d.get("dead_letter", ""),
            max_message_bytes=int(d.get("max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES)),
            name=d.get("name", ""),
        )


def _timestamp_columns(view: Any) -> tuple[str, str | None]:
    """The view's event-time and created-time columns (as `offline.batch.timestamp_columns`)."""
    if view.source is not None:
        return view.source.timestamp_field, view.source.created_timestamp_field
    return "event_timestamp", None


def message_fields(view: Any, src: StreamSource) -> dict[str, str]:
    """View column -> the message field it is read from (keys, event time, created, features)."""
    ts_col, created_col = _timestamp_columns(view)
    inverse = {col: f for f, col in src.field_map.items()}
    out: dict[str, str] = {}
    for c in [*view.join_keys, *(f.name for f in view.features)]:
        out[c] = inverse.get(c, c)
    out[ts_col] = src.timestamp_field
    if created_col:
        out[created_col] = src.created_timestamp_field or inverse.get(created_col, created_col)
    return out


def stream_source_problems(v: Any, where: str) -> list[str]:
    """Every problem of a view's (a FeatureView's) stream source at once (DESIGN §5 habit 4)."""
    src = v.stream_source
    if src is None:
        return []
    if not isinstance(src, StreamSource):
        return [
            f"{where}: stream_source must be a StreamSource, got `{type(src).__name__}`. Fix: "
            'write stream_source=StreamSource("redis", "events").'
        ]
    what = f"{where}, stream source"
    out: list[str] = []
    if src.broker not in BROKERS:
        out.append(
            f"{what}: unknown broker `{src.broker}`.{did_you_mean(str(src.broker), BROKERS)} "
            f"Valid: {', '.join(BROKERS)}."
        )
    if (
        not isinstance(src.stream, str)
        or not src.stream.strip()
        or src.stream != src.stream.strip()
    ):
        out.append(
            f"{what}: stream `{src.stream!r}` must be a non-empty name without surrounding spaces. "
            'Fix: e.g. stream="transactions".'
        )
    elif src.broker == "nats" and (
        any(c in src.stream for c in " *>\t") or ".." in src.stream or src.stream.endswith(".")
    ):
        out.append(
            f"{what}: NATS subject `{src.stream}` must be one subject (tokens separated by `.`, no "
            'spaces and no wildcards `*` or `>`). Fix: e.g. stream="events.transactions".'
        )
    if src.group and (not isinstance(src.group, str) or not _GROUP.match(src.group)):
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", str(src.group))[:64]
        out.append(
            f"{what}: group `{src.group}` may hold only letters, digits, `_` and `-` (at most 64). "
            f'Fix: e.g. group="{safe or "workers"}".'
        )
    if src.timestamp_format not in TIMESTAMP_FORMATS:
        out.append(
            f"{what}: unknown timestamp_format `{src.timestamp_format}`."
            f"{did_you_mean(str(src.timestamp_format), TIMESTAMP_FORMATS)} "
            f"Valid: {', '.join(TIMESTAMP_FORMATS)}."
        )
    if not isinstance(src.timestamp_field, str) or not src.timestamp_field:
        out.append(
            f"{what}: timestamp_field must name a message field, got `{src.timestamp_field!r}`."
        )
    ts_col, created_col = _timestamp_columns(v)
    if src.created_timestamp_field and not created_col:
        out.append(
            f"{what}: created_timestamp_field `{src.created_timestamp_field}` is set, but the view "
            "has no created-time column. Fix: remove it, or give the view a source with "
            "created_timestamp_field."
        )
    if (
        not isinstance(src.max_message_bytes, int)
        or isinstance(src.max_message_bytes, bool)
        or src.max_message_bytes <= 0
    ):
        out.append(
            f"{what}: max_message_bytes must be a positive integer, got `{src.max_message_bytes!r}`."
        )
    if not isinstance(src.field_map, dict):
        out.append(
            f"{what}: field_map must be a dict of message field -> view column, got "
            f"`{type(src.field_map).__name__}`."
        )
        return out
    columns = [*v.join_keys, *(f.name for f in v.features)]
    if created_col:
        columns.append(created_col)
    targets: dict[str, str] = {}
    for fld, col in src.field_map.items():
        if not isinstance(fld, str) or not fld or not isinstance(col, str) or not col:
            out.append(
                f"{what}: field_map entry `{fld!r}: {col!r}` must map a field name to a column name."
            )
            continue
        if col == ts_col:
            out.append(
                f"{what}: field_map maps `{fld}` to the event-time column `{col}`. Fix: pass "
                f'timestamp_field="{fld}" instead.'
            )
        elif col not in columns:
            out.append(
                f"{what}: field_map maps `{fld}` to `{col}`, which is not a column of the view."
                f"{did_you_mean(col, columns)} Columns: {', '.join(columns)}."
            )
        elif col in targets:
            out.append(
                f"{what}: field_map maps both `{targets[col]}` and `{fld}` to `{col}`. Fix: keep one."
            )
        targets.setdefault(col, fld)
    return out


__all__ = ["StreamSource", "message_fields", "stream_source_problems"]
