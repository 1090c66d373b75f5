"""Shared kernel: time (DESIGN §3 "Time"). Timestamps are timezone-aware UTC with microsecond
precision; integers are microseconds since the Unix epoch. Every conversion lives here."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from featureline.errors import ValidationError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def now_us() -> int:
    """Now, in microseconds since the epoch."""
    return time.time_ns() // 1000


def to_us(dt: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (exact, no float rounding)."""
    return (dt - EPOCH) // _MICRO


def from_us(us: int) -> datetime:
    """The aware UTC datetime of `us` microseconds since the epoch."""
    return EPOCH + timedelta(microseconds=us)


def parse_as_of(as_of: Any, what: str = "as_of") -> int | None:
    """`as_of` (None, an aware datetime, or ISO 8601 text with an offset) as microseconds."""
    if as_of is None:
        return None
    if type(as_of).__name__ == "NaTType" or (isinstance(as_of, float) and as_of != as_of):
        raise ValidationError(
            f"{what} is NaT / NaN (a missing time). Fix: pass a time-zone-aware datetime, or None for now."
        )
    if isinstance(as_of, str):
        try:
            as_of = datetime.fromisoformat(as_of.replace("Z", "+00:00"))
        except ValueError as e:
            raise ValidationError(
                f"Bad {what} `{as_of}`: {e}. Fix: use ISO 8601 with an offset, e.g. 2025-01-01T00:00:00+00:00."
            ) from e
    if not isinstance(as_of, datetime) or as_of.tzinfo is None:
        raise ValidationError(
            f"{what} `{as_of}` is a naive datetime; Featureline never guesses a time zone. "
            "Fix: pass an aware datetime, e.g. datetime(..., tzinfo=timezone.utc)."
        )
    return to_us(as_of)
