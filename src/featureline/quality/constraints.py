"""Evaluate a view's constraints over a batch, vectorized (pyarrow.compute; DuckDB for SQL
checks and the unique key), into one violation mask per constraint. A batch ingested in chunks
(a large file) has its unique key checked across all its chunks by a `KeysAcross`.

A mask is True where a row violates the constraint; a null value passes every check but
`not_null` (NaN is within no min/max bounds), and a SQL check is violated only where its
expression is false (SQL's CHECK rule). Columns a batch lacks, or holds with a type that
cannot be cast to the declared one, are not checked here: the schema check of the write path
refuses such a batch as a whole.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featureline.definitions import Check, FeatureView

__all__ = ["KeysAcross", "Violations", "evaluate"]


@dataclass(frozen=True)
class Violations:
    """Per constraint label (`amount.min`, `unique`, `amount_ok`): its violation mask."""

    names: list[str]
    masks: list[np.ndarray]  # bool, one per name, True = violated
    rows: int

    @property
    def any(self) -> np.ndarray:
        if not self.masks:
            return np.zeros(self.rows, dtype=bool)
        out = self.masks[0].copy()
        for m in self.masks[1:]:
            out |= m
        return out

    def counts(self) -> dict[str, int]:
        return {n: int(m.sum()) for n, m in zip(self.names, self.masks, strict=True) if m.any()}

    def reasons(self, bad: np.ndarray) -> pa.Array:
        """For the rows where `bad` holds: the list of constraints each violates (a list<string>)."""
        idx = np.flatnonzero(bad)
        if not self.masks:
            return pa.array([[] for _ in idx], pa.list_(pa.string()))
        matrix = np.stack([m[idx] for m in self.masks], axis=1)  # rows x constraints
        r, c = np.nonzero(matrix)  # row-major: grouped by row, constraints in order
        offsets = np.zeros(len(idx) + 1, dtype=np.int32)
        np.cumsum(np.bincount(r, minlength=len(idx)), out=offsets[1:])
        values = pa.array(np.array(self.names, dtype=object)[c], pa.string())
        return pa.ListArray.from_arrays(pa.array(offsets), values)


def _mask(arr: Any, rows: int) -> np.ndarray:
    """A boolean Arrow result (nulls = not violated) as a numpy mask."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if arr.null_count:
        arr = pc.fill_null(arr, False)
    out = arr.to_numpy(zero_copy_only=False)
    return out if len(out) == rows else np.zeros(rows, dtype=bool)


def _typed(col: pa.ChunkedArray, field: Any) -> pa.ChunkedArray | None:
    """`col` as the field's declared type, or None when it cannot be (the schema check says why)."""
    target = field.dtype.to_arrow()
    if col.type == target:
        return col
    if field.dtype.name == "Timestamp":
        from featureline._frames import as_utc_timestamps

        try:
            return as_utc_timestamps(col, field.name, "batch")
        except Exception:
            return None
    if pa.types.is_string(target) or pa.types.is_large_string(target):
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            return col
        return None
    try:
        return col.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None


def _bound(value: Any, t: pa.DataType) -> pa.Scalar:
    """A min/max bound as a scalar comparable with a column of type `t` (a fractional bound on
    an Int64 column stays fractional: Arrow compares int64 with double)."""
    if pa.types.is_integer(t) and isinstance(value, float):
        return pa.scalar(value, pa.float64())
    return pa.scalar(value, t)


def _field_mask(c: Check, col: pa.ChunkedArray, rows: int) -> np.ndarray:
    if c.kind == "not_null":
        return _mask(col.is_null(), rows) if col.null_count else np.zeros(rows, dtype=bool)
    if c.kind == "min":  # not (value >= bound): NaN is out of bounds too
        return _mask(pc.invert(pc.greater_equal(col, _bound(c.value, col.type))), rows)
    if c.kind == "max":
        return _mask(pc.invert(pc.less_equal(col, _bound(c.value, col.type))), rows)
    if c.kind == "isin":
        ok = pc.is_in(col, value_set=pa.array(c.value, col.type))
        return _mask(pc.and_not(col.is_valid(), ok), rows)
    if c.kind == "regex":
        return _mask(pc.invert(pc.match_substring_regex(col, c.value)), rows)
    if c.kind == "max_length":
        return _mask(pc.greater(pc.utf8_length(col), c.value), rows)
    raise AssertionError(c.kind)  # validated at definition time


_local = threading.local()
ROWS_TABLE = "__rows"  # the batch's name in a check's query (`__` names are never a user's)


def _con() -> Any:
    """This thread's DuckDB connection for checks: in memory, file access disabled."""
    con = getattr(_local, "con", None)
    if con is None:
        import duckdb

        con = duckdb.connect(config={"enable_external_access": False, "threads": 1})
        _local.con = con
    return con


def _sql_masks(
    view: FeatureView, table: pa.Table, typed: dict[str, pa.ChunkedArray]
) -> tuple[list[str], list[np.ndarray]]:
    """Masks of the view's SQL checks, in one DuckDB projection over the typed row columns."""
    checks = [c for c in view.checks if c.kind == "sql"]
    if not checks:
        return [], []
    cols: dict[str, Any] = {}
    for f in view.schema:
        if f.name not in table.column_names:
            return [], []  # the schema check refuses the batch
        col = typed.get(f.name)
        if col is None:
            col = _typed(table.column(f.name), f)
        if col is None:
            return [], []  # likewise
        cols[f.name] = col
    for n in table.column_names:
        cols.setdefault(n, table.column(n))
    select = ", ".join(f"(({c.value}) IS FALSE) AS c{i}" for i, c in enumerate(checks))
    con = _con()
    con.register(ROWS_TABLE, pa.table(cols))
    try:
        out = con.sql(f"SELECT {select} FROM {ROWS_TABLE}").to_arrow_table()
    except Exception as e:
        from featureline.errors import ValidationError

        names = ", ".join(f"`{c.name}`" for c in checks)
        raise ValidationError(
            f"A SQL check of feature view `{view.name}` ({names}) failed to run over the batch: "
            f"{str(e).splitlines()[0]}. Nothing was written. Fix: correct the values, or the "
            "check's expression (e.g. guard a cast with TRY_CAST)."
        ) from e
    finally:
        con.unregister(ROWS_TABLE)
    rows = table.num_rows
    return [c.label() for c in checks], [_mask(out.column(i), rows) for i in range(len(checks))]


_MIX = np.uint64(0x9E3779B97F4A7C15)


def _maybe_duplicates(ts: pa.ChunkedArray, keys: list[pa.ChunkedArray]) -> bool:
    """False when no two rows share keys and event time, from a sort of one hash per row (the
    common case, about 4x faster than grouping); True when they may (then counted exactly).
    Only integer keys without nulls take this way."""
    if ts.null_count or any(k.null_count or not pa.types.is_integer(k.type) for k in keys):
        return True
    h = ts.cast(pa.int64()).to_numpy().view(np.uint64).copy()
    for k in keys:
        h *= _MIX
        h ^= k.cast(pa.int64()).to_numpy().view(np.uint64)
    h.sort()
    return bool((h[1:] == h[:-1]).any())


def _unique_mask(view: FeatureView, table: pa.Table) -> np.ndarray | None:
    """Rows sharing keys and event time with another row of the batch (all of them fail)."""
    from featureline._frames import as_utc_timestamps
    from featureline.offline.batch import timestamp_columns

    ts, _ = timestamp_columns(view)
    part = [*view.join_keys, ts]
    if not all(p in table.column_names for p in part):
        return None
    try:
        t = as_utc_timestamps(table.column(ts), ts, "batch")
    except Exception:
        return None  # the schema check refuses the batch
    rows = table.num_rows
    if not _maybe_duplicates(t, [table.column(k) for k in view.join_keys]):
        return np.zeros(rows, dtype=bool)
    data = pa.table(
        {
            **{f"k{i}": table.column(k) for i, k in enumerate(view.join_keys)},
            "ts": t,
            "pos": pa.array(np.arange(rows, dtype=np.int64)),
        }
    )
    by = ", ".join([*(f"k{i}" for i in range(len(view.join_keys))), "ts"])
    con = _con()
    con.register(ROWS_TABLE, data)
    try:
        pos = con.execute(
            f"""WITH d AS (SELECT {by} FROM {ROWS_TABLE} GROUP BY ALL HAVING count(*) > 1)
            SELECT pos FROM {ROWS_TABLE} SEMI JOIN d USING ({by})"""
        ).fetchnumpy()["pos"]
    finally:
        con.unregister(ROWS_TABLE)
    out = np.zeros(rows, dtype=bool)
    out[np.asarray(pos, dtype=np.int64)] = True
    return out


class KeysAcross:
    """The unique key of `view` across all the chunks of one batch (a large file ingested in
    chunks), with the rule of `_unique_mask`: every row whose keys and event time another row
    of the *whole batch* shares fails, whichever chunk either is in.

    Two passes. First `add` every chunk (its join keys and event time only), then `freeze`:
    DuckDB groups the (keys, event time) pairs and keeps those seen more than once. Then
    `evaluate(..., across=this)` takes a chunk's unique mask from `mask` (a semi join of the
    chunk's pairs with the duplicated ones) instead of from the chunk alone.

    Memory cost: no row is held in Python. Per row of the batch, DuckDB stores one
    (join keys..., event time) tuple in a database file under `directory`: 8 bytes per
    integer key (a string key: its length plus about 16 bytes) + 8 bytes for the event time,
    before DuckDB's compression (16 bytes a row for one integer key: 16M rows = 256 MB on
    disk at most). In memory, DuckDB's buffers stay within `memory_limit` (the grouping
    spills to `directory` beyond it); after `freeze` only the duplicated pairs are kept.
    A chunk whose columns cannot be read as keys and a timestamp makes the batch unusable
    here: `mask` then falls back to the chunk alone (the schema check refuses
    such a batch anyway)."""

    def __init__(
        self, view: FeatureView, directory: str, memory_limit: str = "1GB", what: str = "The batch"
    ) -> None:
        import os

        import duckdb

        from featureline.offline.batch import timestamp_columns

        self.view = view
        self._what = what[:1].upper() + what[1:]
        self._ts = timestamp_columns(view)[0]
        self._by = ", ".join([*(f"k{i}" for i in range(len(view.join_keys))), "ts"])
        self._con = duckdb.connect(
            os.path.join(directory, "keys.duckdb"),
            config={
                "memory_limit": memory_limit,
                "temp_directory": os.path.join(directory, "spill"),
                "preserve_insertion_order": False,
            },
        )
        self._rows = 0  # rows added (pass 1)
        self._masked = 0  # rows masked (pass 2)
        self._usable = True
        self._frozen = False
        self._any = False  # whether any pair is duplicated

    @property
    def columns(self) -> list[str]:
        """The columns the first pass reads."""
        return [*self.view.join_keys, self._ts]

    def _pairs(self, table: pa.Table, pos: bool) -> pa.Table | None:
        from featureline._frames import as_utc_timestamps

        if not all(p in table.column_names for p in self.columns):
            return None
        try:
            t = as_utc_timestamps(table.column(self._ts), self._ts, "batch")
        except Exception:
            return None  # the schema check refuses the batch
        cols: dict[str, Any] = {f"k{i}": table.column(k) for i, k in enumerate(self.view.join_keys)}
        cols["ts"] = t
        if pos:
            cols["pos"] = pa.array(np.arange(table.num_rows, dtype=np.int64))
        return pa.table(cols)

    def add(self, table: pa.Table) -> None:
        """First pass: one chunk's join keys and event time (other columns are not read)."""
        if not self._usable or table.num_rows == 0:
            return
        data = self._pairs(table, pos=False)
        if data is None:
            self._usable = False
            return
        # cost per row: its keys and event time (16 bytes for one Int64 key, before
        # compression) in DuckDB's file; nothing in Python
        self._con.register(ROWS_TABLE, data)
        try:
            if self._rows == 0:
                self._con.execute(f"CREATE TABLE seen AS SELECT * FROM {ROWS_TABLE}").fetchall()
            else:
                self._con.execute(f"INSERT INTO seen SELECT * FROM {ROWS_TABLE}").fetchall()
        except Exception:
            self._usable = False  # e.g. key types differing between files of a glob
        finally:
            self._con.unregister(ROWS_TABLE)
        self._rows += table.num_rows

    def freeze(self) -> None:
        """End of the first pass: keep only the pairs seen more than once (the same grouping as
        `_unique_mask`, over the whole batch)."""
        self._frozen = True
        if not self._usable or self._rows == 0:
            return
        self._con.execute(
            f"CREATE TABLE dups AS SELECT {self._by} FROM seen GROUP BY ALL HAVING count(*) > 1"
        ).fetchall()
        self._con.execute("DROP TABLE seen").fetchall()
        ((n,),) = self._con.execute("SELECT count(*) FROM dups").fetchall()
        self._any = bool(n)

    def mask(self, table: pa.Table) -> np.ndarray | None:
        """Second pass: rows of this chunk whose keys and event time occur more than once in the
        whole batch (None when the chunk lacks the columns, as `_unique_mask`)."""
        if not self._frozen or not self._usable:
            return _unique_mask(self.view, table)
        rows = table.num_rows
        self._masked += rows
        if not self._any:
            data = self._pairs(table, pos=False)
            return None if data is None else np.zeros(rows, dtype=bool)
        data = self._pairs(table, pos=True)
        if data is None:
            return None
        self._con.register(ROWS_TABLE, data)
        try:
            pos = self._con.execute(
                f"SELECT pos FROM {ROWS_TABLE} SEMI JOIN dups USING ({self._by})"
            ).fetchnumpy()["pos"]
        finally:
            self._con.unregister(ROWS_TABLE)
        out = np.zeros(rows, dtype=bool)
        out[np.asarray(pos, dtype=np.int64)] = True
        return out

    def finish(self) -> None:
        """After the second pass, before the commit: a batch whose second pass saw another
        number of rows than the first (a file changed in between) is refused, its verdicts
        being untrustworthy."""
        if self._usable and self._masked != self._rows:
            from featureline.errors import ValidationError

            raise ValidationError(
                f"{self._what} changed while it was ingested into feature view `{self.view.name}` "
                f"(read twice: {self._rows:,} then {self._masked:,} rows). Nothing was written. "
                "Fix: ingest it again once it is complete and no longer written to."
            )

    def close(self) -> None:
        self._con.close()


def _stored_mask(
    view: FeatureView, table: pa.Table, stored: Callable[[pa.Table], np.ndarray]
) -> np.ndarray:
    """Rows whose keys and event time the view already holds."""
    from featureline._frames import as_utc_timestamps
    from featureline.offline.batch import timestamp_columns

    ts, _ = timestamp_columns(view)
    pairs = pa.table(
        {
            **{k: table.column(k) for k in view.join_keys},
            "ts": as_utc_timestamps(table.column(ts), ts, "batch"),
        }
    )
    return np.asarray(stored(pairs), dtype=bool)


def evaluate(
    view: FeatureView,
    table: pa.Table,
    stored: Callable[[pa.Table], np.ndarray] | None = None,
    across: KeysAcross | None = None,
) -> Violations:
    """The violation mask of every constraint of `view` over `table`. `stored(pairs)` says which
    rows of a table of (join keys..., `ts`) the view already holds (`Check.unique("view")`);
    `across`, for a chunk of a larger batch, tells the unique key over the whole batch."""
    rows = table.num_rows
    names: list[str] = []
    masks: list[np.ndarray] = []
    typed: dict[str, pa.ChunkedArray] = {}
    for f in view.schema:
        if not f.constraints or f.name not in table.column_names:
            continue
        col = _typed(table.column(f.name), f)
        if col is None:
            continue
        typed[f.name] = col
        for c in f.constraints:
            names.append(c.label(f.name))
            masks.append(_field_mask(c, col, rows))
    for c in view.checks:
        if c.kind == "unique":
            m = across.mask(table) if across is not None else _unique_mask(view, table)
            if m is not None and c.value == "view" and stored is not None:
                m = m | _stored_mask(view, table, stored)
            if m is not None:
                names.append(c.label())
                masks.append(m)
    n, ms = _sql_masks(view, table, typed)
    names += n
    masks += ms
    return Violations(names, masks, rows)
