"""The registry storage boundary: an append-only log of catalog snapshots.

A backend stores versions and nothing else; planning and diffing live in `_plan.py`.
Every backend obeys the same rules, proven by `featureline.testing.registry_contract`:

* `append` assigns `version = previous + 1` and `applied_at = now (UTC)`, atomically, and
  `applied_at` strictly increases even when the clock stands still or goes backwards;
* `append(..., expected_version=n)` is a compare-and-swap: it stores version n + 1 only if
  the latest version is still `n` (None: the registry is still empty), checked and written
  in one transaction; otherwise it stores nothing and raises `RegistryConflictError`.
  Whoever planned a change against a version passes it (`FeatureStore.apply` does); only a
  blind append (the default, `UNCHECKED`) stacks onto whatever is latest;
* concurrent writers (threads or processes) never lose or duplicate a version;
* `head()` is `(latest().version, latest().applied_at in µs)` (None when empty), read without
  the snapshot: equal heads mean the same latest version;
* timestamps are timezone-aware UTC with microsecond precision; naive ones are refused;
* a store pickles to its construction arguments, so it can be sent to a worker process,
  where it reopens the same registry.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol, runtime_checkable

from featureline._time import EPOCH
from featureline._time import from_us as from_micros
from featureline._time import now_us as now_micros
from featureline._time import to_us as to_micros
from featureline.errors import NotFoundError, RegistryConflictError, ValidationError


class Unchecked(enum.Enum):
    """The type of `UNCHECKED`: an append that does not compare the current version."""

    UNCHECKED = "unchecked"


UNCHECKED: Final = Unchecked.UNCHECKED
ExpectedVersion = int | None | Unchecked
RegistryHead = tuple[int, int]  # (newest version, its applied_at in µs since the epoch)


@dataclass(frozen=True)
class RegistryCapabilities:
    """What a registry backend can do. `shared`: several machines may use it at once."""

    shared: bool


@dataclass(frozen=True)
class RegistryVersion:
    """One applied version of the catalog: the full snapshot and the changes that made it."""

    version: int
    applied_at: datetime
    snapshot: dict[str, Any]
    changes: list[dict[str, Any]]
    message: str = ""


@runtime_checkable
class RegistryStore(Protocol):
    """Storage for registry versions. Configure at construction; every call is one operation."""

    capabilities: RegistryCapabilities

    def append(
        self,
        snapshot: dict[str, Any],
        changes: list[dict[str, Any]],
        message: str = "",
        *,
        expected_version: ExpectedVersion = UNCHECKED,
    ) -> RegistryVersion:
        """Store a new version (previous + 1) stamped with the current UTC time.

        With `expected_version` (an int, or None for "the registry is empty") the version is
        stored only if it is still the latest, atomically; else RegistryConflictError.
        """
        ...

    def latest(self) -> RegistryVersion | None:
        """The newest version, or None for an empty registry."""
        ...

    def head(self) -> RegistryHead | None:
        """The newest version's marker without its snapshot — (version, applied_at in µs since
        the epoch) — or None for an empty registry: one indexed one-row query, for callers that
        cache what they read from `latest()` until the head moves (an apply from any process)."""
        ...

    def get(self, version: int) -> RegistryVersion:
        """A version by number; NotFoundError naming the valid range when missing."""
        ...

    def at(self, ts: datetime) -> RegistryVersion | None:
        """The newest version applied at or before `ts` (tz-aware), or None."""
        ...

    def history(self) -> list[RegistryVersion]:
        """Every version, oldest first."""
        ...

    def close(self) -> None:
        """Release connections. Further calls raise StorageError."""
        ...


# ---- helpers shared by backends -------------------------------------------------------------


def next_applied_at(previous_us: int | None, now_us: int) -> int:
    """The timestamp for a new version: now, but strictly after the previous one."""
    if previous_us is None:
        return now_us
    return max(now_us, previous_us + 1)


def require_aware(ts: datetime, what: str = "ts") -> datetime:
    """Refuse naive or non-datetime timestamps; return `ts` converted to UTC."""
    if not isinstance(ts, datetime):
        raise ValidationError(
            f"`{what}` must be a timezone-aware datetime, got `{ts!r}` ({type(ts).__name__}). "
            "Fix: pass e.g. `datetime(2024, 5, 1, tzinfo=timezone.utc)`."
        )
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValidationError(
            f"`{what}` must be timezone-aware, got naive `{ts.isoformat()}`; Featureline never "
            "guesses a timezone. Fix: pass `ts.replace(tzinfo=timezone.utc)` if it is UTC, "
            "or `ts.astimezone(timezone.utc)` if it is local time."
        )
    return ts.astimezone(UTC)


def check_version_arg(version: Any) -> int:
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValidationError(
            f"Registry version must be an integer, got `{version!r}`. Fix: pass e.g. `3`."
        )
    return version


def missing_version(version: int, last: int | None, where: str) -> NotFoundError:
    """NotFoundError for a version that does not exist, naming the valid range."""
    if last is None:
        return NotFoundError(
            f"Registry version `{version}` does not exist: the registry at {where} is empty. "
            "Fix: run `featureline apply` to create version 1."
        )
    return NotFoundError(
        f"Registry version `{version}` does not exist in the registry at {where}. "
        f"Valid versions: 1..{last}. Fix: pick one of them (`featureline history` lists them)."
    )


def check_append_args(snapshot: Any, changes: Any, message: Any) -> None:
    if not isinstance(snapshot, dict):
        raise ValidationError(
            f"Registry snapshot must be a dict, got `{type(snapshot).__name__}`. "
            "Fix: pass the `snapshot` of a `plan(...)`."
        )
    if not isinstance(changes, list):
        raise ValidationError(
            f"Registry changes must be a list of dicts, got `{type(changes).__name__}`. "
            "Fix: pass the `changes` of a `plan(...)`."
        )
    if not isinstance(message, str):
        raise ValidationError(f"Registry message must be a string, got `{message!r}`.")


def check_expected_arg(expected: Any) -> None:
    if expected is None or expected is UNCHECKED:
        return
    if isinstance(expected, bool) or not isinstance(expected, int) or expected < 1:
        raise ValidationError(
            f"`expected_version` must be the registry version the change was planned against "
            f"(an integer >= 1), or None for an empty registry; got `{expected!r}`. "
            "Fix: pass `latest.version` of the `latest()` you planned against."
        )


def check_expected(expected: ExpectedVersion, current: int | None, where: str) -> None:
    """Inside the append's transaction: refuse the append if the registry moved on."""
    if expected is UNCHECKED or expected == current:
        return
    planned = "the empty registry" if expected is None else f"version {expected}"
    now = "is empty" if current is None else f"is at version {current}"
    raise RegistryConflictError(
        f"Registry conflict: this change was planned against {planned}, but the registry at "
        f"{where} {now} (another apply stored a version meanwhile). Nothing was stored. "
        "Fix: re-run `featureline plan` to see the registry as it is now, then "
        "`featureline apply`.",
        expected=expected,
        actual=current,
    )


def dump_json(value: Any, what: str) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValidationError(
            f"Registry {what} is not JSON-serialisable: {e}. "
            "Fix: store only dicts, lists, strings, numbers, booleans and None "
            "(use the `to_dict()` form of definitions)."
        ) from e


__all__ = [
    "EPOCH",
    "UNCHECKED",
    "ExpectedVersion",
    "RegistryCapabilities",
    "RegistryHead",
    "RegistryStore",
    "RegistryVersion",
    "from_micros",
    "now_micros",
    "to_micros",
]
