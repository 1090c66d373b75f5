"""The online storage boundary: the latest value per key, per table, and nothing else.

A backend stores opaque byte values under byte keys in named tables. Encoding values, TTL,
statuses and materialization live one layer up. Every backend obeys the same rules, proven by
`featureline.testing.online_contract`:

* every value starts with a 32-byte ORDER, compared as unsigned bytes (memcmp); `write` stores
  a value only when its key is absent or the stored order is strictly smaller, so replays,
  redelivery, out-of-order and resumed writes all converge to the greatest order per key;
* within one `write` call, duplicates of a key resolve to the greatest order (the first of
  equal orders wins, as across calls), and the call returns how many keys it changed;
* a `write` (and a `delete`) is atomic: all of it is visible, or none of it;
* readers never see a torn value, and a reader never goes back to an older value of a key;
* `delete` forgets a key entirely, its order included: a later write of any order applies;
* a table exists from its first non-empty write (or `stage`) until `drop_table`, even if
  emptied by `delete`; reading, counting or deleting in an unknown table is not an error;
* a value whose event time is still ahead is *staged*, not written: a key may hold several
  staged values; `read(..., now_us)` returns, per key, the greatest of the written value and
  the staged values that are due (the first 8 order bytes, the event time, at or before
  `now_us`), so a future row is served from its event time on and the value it will replace
  is served until then; `promote` moves due staged values into the table (atomically, with the
  greatest-order rule), and whether it has run never changes what `read` returns;
  `delete` and `drop_table` forget staged values too; `count` counts written keys only;
* a store pickles to its construction arguments, so it can be sent to a worker process.
"""

from __future__ import annotations

import operator
import re
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, Protocol, runtime_checkable

from featureline.errors import ValidationError

ORDER_BYTES = 32
"""Every stored value starts with an order of this many bytes (compared as unsigned bytes)."""
DUE_BYTES = 8
"""The first bytes of an order: the event time, when a staged value becomes due."""
_FLIP = 1 << 63
_U64 = (1 << 64) - 1

_TABLE = re.compile(r"[A-Za-z0-9_]{1,200}", re.ASCII)


@dataclass(frozen=True)
class OnlineCapabilities:
    """What an online backend can do.

    `shared`: several machines may use the same store at once.
    `durable`: committed writes survive a crash of the process or machine holding the data.
    `concurrent_readers`: many threads and processes may read while one writes.
    """

    shared: bool
    durable: bool
    concurrent_readers: bool


@runtime_checkable
class OnlineStore(Protocol):
    """Latest values by key, per table. Configure at construction; every call is one operation."""

    capabilities: OnlineCapabilities

    def write(self, table: str, keys: Sequence[bytes], values: Sequence[bytes]) -> int:
        """Upsert where the greatest 32-byte order wins; atomic; returns the keys changed."""
        ...

    def write_tables(self, parts: Sequence[tuple[str, Sequence[bytes], Sequence[bytes]]]) -> int:
        """`write` each (table, keys, values) of `parts` as one operation: a reader sees every
        table's rows or none of them; a bad batch anywhere writes nothing; returns the keys
        changed in all."""
        ...

    def stage(self, table: str, keys: Sequence[bytes], values: Sequence[bytes]) -> int:
        """Keep values whose event time is ahead until they are due; atomic; returns how many
        (key, order) pairs were new."""
        ...

    def read(
        self, table: str, keys: Sequence[bytes], now_us: int | None = None
    ) -> list[bytes | None]:
        """Per key (in the order of `keys`), the greatest of its written value and its staged
        values due at `now_us` (default: the clock); None when there is none."""
        ...

    def promote(self, table: str, now_us: int | None = None) -> int:
        """Move staged values due at `now_us` into the table; returns how many were due."""
        ...

    def delete(self, table: str, keys: Sequence[bytes]) -> int:
        """Remove keys (atomically); returns how many existed."""
        ...

    def drop_table(self, table: str) -> None:
        """Remove a table and all its rows; a no-op for an unknown table."""
        ...

    def count(self, table: str) -> int:
        """How many keys the table holds (0 for an unknown table)."""
        ...

    def tables(self) -> list[str]:
        """Names of the tables that exist, sorted."""
        ...

    def get_meta(self, name: str) -> str | None:
        """A small stored setting (e.g. a watermark), or None."""
        ...

    def set_meta(self, name: str, value: str) -> None:
        """Store a small setting, replacing any previous value."""
        ...

    def health(self) -> dict[str, Any]:
        """`{"ok": bool, "backend": str, "detail": str, ...}`; never raises."""
        ...

    def close(self) -> None:
        """Release connections. Further calls raise StorageError; closing twice is fine."""
        ...


_PACK_DUE = struct.Struct(">Q").pack


def due_bytes(now_us: int | None) -> bytes:
    """The first `DUE_BYTES` of the order of a row whose event time is `now_us` (µs)."""
    if now_us is None:
        now_us = time.time_ns() // 1000
    return _PACK_DUE((now_us & _U64) ^ _FLIP)


def event_us_of(value: bytes) -> int:
    """The event time (µs) a stored value's order starts with (the inverse of `due_bytes`)."""
    raw = int.from_bytes(value[:DUE_BYTES], "big") ^ _FLIP
    return raw - (1 << 64) if raw >= _FLIP else raw


# ---- validation shared by backends ----------------------------------------------------------


def check_table(table: Any) -> str:
    """Refuse table names other than plain identifiers (ASCII letters, digits, `_`)."""
    if isinstance(table, str) and _TABLE.fullmatch(table):
        return table
    raise ValidationError(
        f"Online table name `{table!r}` is invalid: use 1-200 ASCII letters, digits and `_`. "
        "Fix: pass a plain identifier such as `driver_stats__v1`."
    )


def check_keys(table: str, keys: Sequence[bytes]) -> list[bytes]:
    """The keys as a list; every key must be `bytes`."""
    out = keys if type(keys) is list else list(keys)
    if set(map(type, out)) - {bytes}:
        i, bad = next((i, k) for i, k in enumerate(out) if type(k) is not bytes)
        raise ValidationError(
            f"Online key #{i} for table `{table}` is `{bad!r}` ({type(bad).__name__}); keys must "
            "be `bytes`. Fix: encode keys before calling the store (e.g. `str.encode()`)."
        )
    return out


def check_batch(
    table: str, keys: Sequence[bytes], values: Sequence[bytes]
) -> tuple[list[bytes], list[bytes]]:
    """Keys and values as lists of bytes of equal length; each value holds a 32-byte order."""
    ks = check_keys(table, keys)
    vs = values if type(values) is list else list(values)
    if len(ks) != len(vs):
        raise ValidationError(
            f"Online write to `{table}` got {len(ks)} keys but {len(vs)} values. "
            "Fix: pass one value per key."
        )
    if set(map(type, vs)) - {bytes}:
        i, bad = next((i, v) for i, v in enumerate(vs) if type(v) is not bytes)
        raise ValidationError(
            f"Online value #{i} for table `{table}` is a `{type(bad).__name__}`, not `bytes`. "
            "Fix: encode values before calling the store."
        )
    if vs and min(map(len, vs)) < ORDER_BYTES:
        i, bad = next((i, v) for i, v in enumerate(vs) if len(v) < ORDER_BYTES)
        raise ValidationError(
            f"Online value #{i} for table `{table}` (key `{ks[i]!r}`) is {len(bad)} bytes long; "
            f"every value must start with a {ORDER_BYTES}-byte order. "
            "Fix: prefix each value with its order (see `featureline.online`)."
        )
    return ks, vs


def check_meta(name: Any, value: Any = "") -> str:
    if not isinstance(name, str) or not name or len(name) > 200:
        raise ValidationError(
            f"Online meta name `{name!r}` is invalid: use a non-empty string of at most 200 "
            "characters. Fix: pass e.g. `watermark:driver_stats__v1`."
        )
    if not isinstance(value, str):
        raise ValidationError(
            f"Online meta value for `{name}` must be a string, got `{value!r}` "
            f"({type(value).__name__}). Fix: convert it, e.g. with `str()` or `json.dumps()`."
        )
    return name


# ---- duplicate keys within one write --------------------------------------------------------


def _best_of_duplicates(keys: list[bytes], values: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """Collapse duplicate keys to their greatest order (the first of equal orders wins)."""
    best: dict[bytes, bytes] = {}
    for k, v in zip(keys, values, strict=True):
        old = best.get(k)
        if old is None or old[:ORDER_BYTES] < v[:ORDER_BYTES]:
            best[k] = v
    return list(best), list(best.values())


def greatest_per_key(keys: list[bytes], values: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """The batch with one entry per key (input order otherwise kept)."""
    if len(set(keys)) == len(keys):
        return keys, values
    return _best_of_duplicates(keys, values)


def sorted_greatest_per_key(
    keys: list[bytes], values: list[bytes]
) -> tuple[list[bytes], list[bytes]]:
    """The batch sorted by key with one entry per key: B-trees insert sorted keys much faster."""
    if len(keys) < 2:
        return keys, values
    idx = sorted(range(len(keys)), key=keys.__getitem__)
    ks = [keys[i] for i in idx]
    vs = [values[i] for i in idx]
    if any(map(operator.eq, ks, islice(ks, 1, None))):
        ks, vs = _best_of_duplicates(ks, vs)  # stable sort kept input order among equal keys
    return ks, vs


__all__ = ["DUE_BYTES", "ORDER_BYTES", "OnlineCapabilities", "OnlineStore", "due_bytes"]
