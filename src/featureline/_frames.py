"""Turn what users pass (pandas, polars, pyarrow, a file path) into one Arrow table, at the edge."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa

from featureline.errors import NotFoundError, ValidationError

UTC_US = pa.timestamp("us", tz="UTC")


def read_file(
    path: str | os.PathLike[str],
    what: str = "data",
    column_types: dict[str, pa.DataType] | None = None,
) -> pa.Table:
    """Read Parquet or CSV (one file, a folder or a glob) into an Arrow table.

    CSV columns named in `column_types` are read as those types (a code `5411` declared a
    String stays a string) instead of being guessed."""
    import glob

    p = str(path)
    files = sorted(glob.glob(p)) if any(c in p for c in "*?[") else [p]
    if not files:
        raise NotFoundError(
            f"No file matches `{p}` for the {what}. Fix: check the path or the glob pattern."
        )
    tables = []
    for f in files:
        if not os.path.exists(f):
            raise NotFoundError(
                f"File `{f}` for the {what} does not exist. Fix: check the path (paths in definitions are relative to the feature repo; other paths to the current folder)."
            )
        try:
            if f.lower().endswith((".csv", ".csv.gz")):
                import pyarrow.csv as pacsv

                opts = pacsv.ConvertOptions(column_types=column_types) if column_types else None
                tables.append(pacsv.read_csv(f, convert_options=opts))
            else:
                import pyarrow.parquet as pq

                tables.append(pq.read_table(f))
        except (pa.ArrowInvalid, OSError) as e:
            raise ValidationError(
                f"Could not read `{f}` for the {what}: {e}. Fix: check that it is a valid "
                f"{'CSV' if f.lower().endswith(('.csv', '.csv.gz')) else 'Parquet'} file."
            ) from e
    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowInvalid as e:
        raise ValidationError(
            f"Files matching `{p}` have incompatible schemas: {e}. Fix: make their columns agree."
        ) from e


def to_arrow(
    data: Any, what: str = "data", column_types: dict[str, pa.DataType] | None = None
) -> pa.Table:
    """pandas / polars / pyarrow / path -> pa.Table, or a ValidationError naming what was passed."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, str | Path):
        return read_file(data, what, column_types)
    mod = type(data).__module__.split(".")[0]
    if mod == "pandas":
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            return pa.Table.from_pandas(data, preserve_index=False)
    if mod == "polars":
        return data.to_arrow()
    if isinstance(data, dict):
        try:
            return pa.table(data)
        except (pa.ArrowInvalid, TypeError) as e:
            raise ValidationError(
                f"Could not turn the dict passed as {what} into columns: {e}."
            ) from e
    raise ValidationError(
        f"Unsupported type `{type(data).__name__}` for the {what}. Fix: pass a pandas or polars "
        f"DataFrame, a pyarrow Table, or a path to a Parquet/CSV file."
    )


def _first_unparsable(col: pa.ChunkedArray) -> str | None:
    import pyarrow.compute as pc

    for v in col.to_pylist():
        if v is None:
            continue
        try:
            pc.cast(pa.array([v]), pa.timestamp("us", tz="UTC"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return str(v)[:80]
    return None


def as_utc_timestamps(col: pa.ChunkedArray, name: str, what: str) -> pa.ChunkedArray:
    """A timestamp column as timestamp[us, UTC]; naive or non-timestamp columns are refused."""
    import pyarrow.compute as pc

    t = col.type
    if pa.types.is_null(t):  # all values missing: typed nulls (callers decide if nulls are allowed)
        return pa.chunked_array([pa.nulls(len(col), UTC_US)])
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        try:
            col = pc.cast(col, pa.timestamp("us", tz="UTC"))
        except pa.ArrowInvalid as e:
            bad = _first_unparsable(col)
            raise ValidationError(
                f"Column `{name}` of the {what} holds text that is not a timestamp with a time zone"
                + (f": `{bad}`" if bad is not None else "")
                + ". Fix: use ISO 8601 with an offset, e.g. `2025-01-01T00:00:00+00:00`."
            ) from e
        t = col.type
    if not pa.types.is_timestamp(t):
        raise ValidationError(
            f"Column `{name}` of the {what} must be a timestamp, found `{t}`. Fix: convert it, "
            f"e.g. pandas.to_datetime(df[{name!r}], utc=True)."
        )
    if t.tz is None:
        raise ValidationError(
            f"Column `{name}` of the {what} has naive timestamps (no time zone); Featureline never "
            f"guesses. Fix: make them time-zone aware, e.g. df[{name!r}] = df[{name!r}].dt.tz_localize('UTC')."
        )
    if t.unit in ("s", "ms", "us") and t.tz == "UTC":
        return col.cast(UTC_US) if t.unit != "us" else col
    if t.unit == "ns":
        # floor to microseconds (DESIGN: microsecond precision); safe=False allows truncation
        col = pc.cast(col, pa.timestamp("ns", tz="UTC"))
        return pc.cast(col, UTC_US, safe=False)
    return pc.cast(col, UTC_US)


def rows_to_table(rows: list[dict[str, Any]], types: dict[str, pa.DataType], what: str) -> pa.Table:
    """A list of row dicts as a table, each declared column built with its declared type, so a
    value that does not fit (a 23-digit integer, a word in a number column) is an error naming
    the column, the value and the fix instead of a pyarrow traceback."""
    if not rows:
        raise ValidationError(f"No rows given for the {what}. Fix: pass at least one row dict.")
    names = list(rows[0]) if isinstance(rows[0], dict) else []
    for i, r in enumerate(rows):
        if not isinstance(r, dict) or list(r) != names:
            raise ValidationError(
                f"Row {i} `{r!r}` of the {what} does not have the keys {names} of the first row. "
                "Fix: give every row the same keys."
            )
    cols: dict[str, pa.Array] = {}
    for name in names:
        values = [r[name] for r in rows]
        typ = types.get(name)
        numeric = typ is not None and (pa.types.is_integer(typ) or pa.types.is_floating(typ))
        if numeric and any(isinstance(v, bool) for v in values):  # pyarrow would take True as 1
            raise ValidationError(_bad_value(name, values, typ, what))
        if typ is not None and pa.types.is_integer(typ):  # pyarrow would truncate 2.5 to 2
            frac = next((v for v in values if isinstance(v, float) and not v.is_integer()), None)
            if frac is not None:
                raise ValidationError(
                    f"Column `{name}` of the {what} has value `{frac!r}`, not a whole number; "
                    "the view declares Int64. Fix: send integers (or declare the field Float64)."
                )
        try:
            cols[name] = pa.array(values, type=typ)
        except (OverflowError, pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
            raise ValidationError(_bad_value(name, values, typ, what)) from None
    return pa.table(cols)


def _bad_value(name: str, values: list[Any], typ: pa.DataType | None, what: str) -> str:
    from featureline._keys import INT64_MAX, INT64_MIN

    for v in values:
        if v is None:
            continue
        if typ is not None and pa.types.is_integer(typ):
            if isinstance(v, bool) or not isinstance(v, int):
                return (
                    f"Column `{name}` of the {what} has value `{v!r}` of type "
                    f"{type(v).__name__}; the view declares Int64. Fix: send integers."
                )
            if not INT64_MIN <= v <= INT64_MAX:
                return (
                    f"Column `{name}` of the {what} has value `{v}`, outside the Int64 range "
                    f"{INT64_MIN} to {INT64_MAX}. Fix: send values in that range."
                )
        if (
            typ is not None
            and pa.types.is_floating(typ)
            and (isinstance(v, bool) or not isinstance(v, int | float))
        ):
            return (
                f"Column `{name}` of the {what} has value `{v!r}` of type "
                f"{type(v).__name__}; the view declares Float64. Fix: send numbers."
            )
        if typ is not None and pa.types.is_string(typ) and not isinstance(v, str):
            return (
                f"Column `{name}` of the {what} has value `{v!r}` of type {type(v).__name__}; "
                "the view declares String. Fix: send strings."
            )
        if typ is not None and pa.types.is_boolean(typ) and not isinstance(v, bool):
            return (
                f"Column `{name}` of the {what} has value `{v!r}` of type {type(v).__name__}; "
                "the view declares Bool. Fix: send true or false."
            )
    kinds = sorted({type(v).__name__ for v in values if v is not None})
    return (
        f"Column `{name}` of the {what} mixes values of types {', '.join(kinds)} that do not "
        f"form one column{f' of type {typ}' if typ is not None else ''}. Fix: send one type per column."
    )
