"""Feast's Python feature server wire format (`POST /get-online-features`, `POST /push`).

The response mirrors Feast's `GetOnlineFeaturesResponse` as its server prints it (protobuf
`MessageToDict` with Feast's JSON patches): one result per output column, entity keys first,
each with `values`, `statuses` and `event_timestamps` over the entity rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from featureline.server._types import OnlineResult

READ_FIELDS = ("entities", "feature_service", "features", "full_feature_names", "request_context")
PUSH_FIELDS = ("allow_registry_cache", "df", "push_source_name", "to", "transform_on_write")
PUSH_MODES = ("online", "offline", "online_and_offline")

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
        from datetime import UTC

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


def online_response(resp: OnlineResult) -> dict[str, Any]:
    """Feast's JSON body for a Featureline OnlineResponse."""
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
    return {"metadata": {"feature_names": [*keys, *resp.feature_names]}, "results": results}
