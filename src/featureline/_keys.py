"""Shared kernel: what is wrong with an entity key, said the same way offline and online."""

from __future__ import annotations

from collections.abc import Iterable

from featureline.errors import did_you_mean

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def missing_key(key: str, users: Iterable[str], given: Iterable[str]) -> str:
    given = list(given)
    return (
        f"join key `{key}` (needed by {', '.join(users)}) is missing.{did_you_mean(key, given)} "
        f"Given: {', '.join(given) or 'nothing'}."
    )


def wrong_key_type(key: str, found: str, want: str | None) -> str:
    """`found` describes what was given, e.g. "type `double`" or "value `'7'` of type str"."""
    fix = {"Int64": "integers", "String": "strings"}.get(want or "", "integers or strings")
    return f"join key `{key}` has {found}; expected {want or 'Int64 or String'}. Fix: send the key as {fix}."


def key_out_of_range(key: str, value: int) -> str:
    return (
        f"join key `{key}` has value `{value}`, outside the Int64 range {INT64_MIN} to {INT64_MAX}. "
        "Fix: send a key in that range (no stored key is outside it)."
    )
