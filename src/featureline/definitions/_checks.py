"""Constraints on fields and views (DESIGN §3 "Bad input"; issue 11 item 1): plain objects, no I/O.

On a `Field`: `Check.not_null()`, `Check.min(v)`, `Check.max(v)`, `Check.isin(values)`,
`Check.regex(pattern)`, `Check.max_length(n)`. On a `FeatureView` (`checks=[...]`):
`Check.unique()` (one row per key and event time in a batch) and `Check.sql(name, expr)` (a
boolean SQL expression over the row, evaluated by DuckDB). A null value passes every check but
`not_null`, and a SQL check fails only when its expression is false (SQL's CHECK rule).

The view's `gate` says what a write does with rows that fail: `strict` (refuse the whole write),
`quarantine` (the default when there are constraints: good rows land, bad rows are kept with the
reasons) or `warn` (all rows land, the violations are reported). `featureline.quality` evaluates
them on every write.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

GATES = ("strict", "quarantine", "warn")
FIELD_KINDS = ("not_null", "min", "max", "isin", "regex", "max_length")
VIEW_KINDS = ("unique", "sql")
MAX_EXPRESSION = 2000
ROWS_TABLE = "__rows"  # the name a SQL check's row table has (never a user name: `__` is reserved)


@dataclass(frozen=True)
class Check:
    """One constraint. Build it with the class methods (`Check.min(0)`, `Check.sql(...)`)."""

    kind: str
    value: Any = None
    name: str = ""  # SQL checks: the name reports use; others: derived (`amount.min`)

    # -- constructors ----------------------------------------------------------------------
    @classmethod
    def not_null(cls) -> Check:
        """The value must be present."""
        return cls("not_null")

    @classmethod
    def min(cls, value: float | int | datetime) -> Check:
        """The value must be >= `value` (numbers, or aware datetimes for Timestamp fields)."""
        return cls("min", value)

    @classmethod
    def max(cls, value: float | int | datetime) -> Check:
        """The value must be <= `value`."""
        return cls("max", value)

    @classmethod
    def isin(cls, values: list[Any] | tuple[Any, ...] | set[Any]) -> Check:
        """The value must be one of `values` (allowed values)."""
        vals = sorted(values, key=repr) if isinstance(values, set) else list(values)
        return cls("isin", vals)

    @classmethod
    def regex(cls, pattern: str) -> Check:
        """The text must match `pattern` (RE2 syntax, searched: anchor with ^...$)."""
        return cls("regex", pattern)

    @classmethod
    def max_length(cls, n: int) -> Check:
        """The text must have at most `n` characters."""
        return cls("max_length", n)

    @classmethod
    def unique(cls, scope: str = "batch") -> Check:
        """At most one row per key and event time: within a batch (`scope="batch"`, every row of
        a duplicate fails), or also against the rows already stored (`scope="view"`: a row
        whose key and event time the view holds fails too, so corrections are refused)."""
        return cls("unique", None if scope == "batch" else scope, "unique")

    @classmethod
    def sql(cls, name: str, expression: str) -> Check:
        """A named boolean SQL expression over the row's columns, e.g. `amount < 10000`."""
        return cls("sql", expression, name)

    # -- description ---------------------------------------------------------------------------
    def label(self, column: str | None = None) -> str:
        """The name reports and quarantine use: `amount.min`, `unique`, or the SQL check's name."""
        if column is not None:
            return f"{column}.{self.kind}"
        return self.name or self.kind

    def describe(self) -> str:
        """A short human form: `min 0`, `isin ['a', 'b']`, `sql: amount < 10000`."""
        if self.kind == "unique" and self.value is not None:
            return f"unique (within the {self.value})"
        if self.kind in ("not_null", "unique"):
            return self.kind
        if self.kind == "sql":
            return f"{self.name}: {self.value}"
        v = self.value.isoformat() if isinstance(self.value, datetime) else self.value
        return f"{self.kind} {v!r}" if self.kind in ("regex", "isin") else f"{self.kind} {v}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if isinstance(self.value, datetime):
            out["value"], out["time"] = self.value.isoformat(), True
        elif self.value is not None:
            out["value"] = list(self.value) if isinstance(self.value, tuple) else self.value
        if self.kind == "sql":
            out["name"] = self.name
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Check:
        value = d.get("value")
        if d.get("time") and isinstance(value, str):
            value = datetime.fromisoformat(value)
        return cls(d["kind"], value, d.get("name", "unique" if d["kind"] == "unique" else ""))


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def field_check_problems(where: str, field: Any) -> list[str]:
    """Problems with the constraints of one field (`where` names the view)."""
    out: list[str] = []
    dtype = str(field.dtype)
    seen: set[str] = set()
    for c in field.constraints:
        what = f"{where}, field `{field.name}`"
        if not isinstance(c, Check):
            out.append(
                f"{what}: constraints must be Check objects, got `{c!r}`. Fix: e.g. constraints=[Check.min(0)]."
            )
            continue
        if c.kind not in FIELD_KINDS:
            hint = (
                " It is a view check. Fix: pass it in FeatureView(checks=[...])."
                if c.kind in VIEW_KINDS
                else f" Valid: {', '.join(FIELD_KINDS)}."
            )
            out.append(f"{what}: `{c.kind}` is not a field constraint.{hint}")
            continue
        if c.kind in seen:
            out.append(f"{what}: two `{c.kind}` constraints. Fix: keep one.")
        seen.add(c.kind)
        what = f"{what}, constraint `{c.label(field.name)}`"
        if field.dtype.is_array and c.kind != "not_null":
            out.append(f"{what}: {dtype} fields take only not_null. Fix: remove the constraint.")
        elif c.kind in ("min", "max"):
            if dtype in ("Int64", "Float64"):
                if not _number(c.value):
                    out.append(f"{what}: the bound `{c.value!r}` is not a number.")
            elif dtype == "Timestamp":
                if not isinstance(c.value, datetime) or c.value.tzinfo is None:
                    out.append(
                        f"{what}: the bound `{c.value!r}` is not a time-zone aware datetime. "
                        "Fix: e.g. datetime(2020, 1, 1, tzinfo=UTC)."
                    )
            else:
                out.append(
                    f"{what}: min/max apply to Int64, Float64 and Timestamp fields, not {dtype}."
                )
        elif c.kind == "isin":
            vals = c.value
            ok = {
                "String": lambda v: isinstance(v, str),
                "Int64": lambda v: isinstance(v, int) and not isinstance(v, bool),
                "Float64": _number,
                "Bool": lambda v: isinstance(v, bool),
            }.get(dtype)
            if ok is None:
                out.append(f"{what}: isin applies to String, Int64, Float64 and Bool fields.")
            elif not isinstance(vals, list) or not vals:
                out.append(f"{what}: give a non-empty list of allowed values.")
            elif not all(ok(v) for v in vals):
                bad = next(v for v in vals if not ok(v))
                out.append(f"{what}: the allowed value `{bad!r}` is not a {dtype}.")
        elif c.kind in ("regex", "max_length"):
            if dtype != "String":
                out.append(f"{what}: {c.kind} applies to String fields, not {dtype}.")
            elif c.kind == "regex":
                if not isinstance(c.value, str) or not c.value:
                    out.append(f"{what}: the pattern must be a non-empty string.")
                else:
                    out += _regex_problem(what, c.value)
            elif not isinstance(c.value, int) or isinstance(c.value, bool) or c.value < 0:
                out.append(f"{what}: the length `{c.value!r}` must be an integer >= 0.")
        elif c.value is not None:
            out.append(f"{what}: not_null takes no value.")
    return out


def _regex_problem(what: str, pattern: str) -> list[str]:
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        pc.match_substring_regex(pa.array([""]), pattern)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        return [f"{what}: the pattern `{pattern}` is not valid RE2: {e}"]
    return []


def view_check_problems(
    view: Any, where: str, check_identifier: Callable[[str, Any], str | None]
) -> list[str]:
    """Problems with the view's gate and checks, and with every field's constraints."""
    out: list[str] = []
    if view.gate is not None and view.gate not in GATES:
        from featureline.errors import did_you_mean

        out.append(
            f"{where} has an unknown gate `{view.gate}`.{did_you_mean(str(view.gate), GATES)} "
            f"Valid: {', '.join(GATES)} (default quarantine when the view has constraints)."
        )
    for f in view.schema:
        out += field_check_problems(where, f)
    names: list[str] = []
    for c in view.checks:
        if not isinstance(c, Check):
            out.append(
                f"{where}: checks must be Check objects, got `{c!r}`. "
                'Fix: e.g. checks=[Check.sql("amount_ok", "amount < 10000")].'
            )
            continue
        if c.kind not in VIEW_KINDS:
            hint = (
                " It is a field constraint. Fix: pass it in Field(..., constraints=[...])."
                if c.kind in FIELD_KINDS
                else f" Valid: {', '.join(VIEW_KINDS)}."
            )
            out.append(f"{where}: `{c.kind}` is not a view check.{hint}")
            continue
        names.append(c.label())
        if c.kind == "unique" and c.value not in (None, "view"):
            out.append(
                f'{where}: Check.unique scope `{c.value}` is unknown. Fix: scope="batch" (one '
                'row per key and event time within a batch) or scope="view" (also against the '
                "rows already stored)."
            )
        if c.kind == "sql":
            if p := check_identifier(f"Check in {where}", c.name):
                out.append(p)
                continue
            out += sql_problems(view, f"{where}, check `{c.name}`", c.value)
    for n in sorted({n for n in names if names.count(n) > 1}):
        out.append(f"{where}: two checks are named `{n}`. Fix: give each a unique name.")
    return out


_DISALLOWED_NODES = {"SUBQUERY", "WINDOW"}


def sql_problems(view: Any, what: str, expression: Any) -> list[str]:
    """Problems with a SQL check's expression: it must be exactly one boolean expression over
    the row's columns (no statement separator, no subquery, window or aggregate), which DuckDB
    binds against the view's columns. Checked here, at definition time, and evaluated later with
    file access disabled."""
    if not isinstance(expression, str) or not expression.strip():
        return [f'{what}: the expression must be a non-empty string, e.g. "amount < 10000".']
    if len(expression) > MAX_EXPRESSION or "\x00" in expression:
        return [f"{what}: the expression is over {MAX_EXPRESSION} characters or holds a NUL."]
    import duckdb

    try:
        duckdb.SQLExpression(expression)  # exactly one expression, or a parser error
    except Exception as e:
        return [f"{what}: `{expression}` is not one SQL expression: {_first_line(e)}"]
    con = duckdb.connect(config={"enable_external_access": False})
    try:
        sql = f"SELECT ({expression}) AS c FROM {ROWS_TABLE}"
        (tree,) = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0]
        import json

        parsed = json.loads(tree)
        stmts = parsed.get("statements") or []
        node = stmts[0].get("node", {}) if len(stmts) == 1 else {}
        shape_ok = (
            not parsed.get("error")
            and node.get("type") == "SELECT_NODE"
            and len(node.get("select_list") or []) == 1
            and (node.get("from_table") or {}).get("table_name") == ROWS_TABLE
            and not node.get("where_clause")
            and not node.get("group_expressions")
            and not node.get("having")
            and not node.get("qualify")
            and not node.get("modifiers")
        )
        if not shape_ok:
            return [f"{what}: `{expression}` is not one expression over the row."]
        found = _classes(node["select_list"][0])
        if found & _DISALLOWED_NODES:
            return [
                f"{what}: `{expression}` uses a {'subquery' if 'SUBQUERY' in found else 'window'}; "
                "a check sees one row. Fix: use only the row's columns, literals and scalar functions."
            ]
        con.register(ROWS_TABLE, empty_rows(view))
        try:
            rel = con.execute(sql)
            types = [d[1] for d in rel.description or []]
            n = len(rel.fetchall())
        except Exception as e:
            from featureline.errors import did_you_mean

            msg = _first_line(e)
            m = re.search(r'column "?([^"\s]+)"? not found', msg, re.I)
            hint = did_you_mean(m.group(1), empty_rows(view).column_names) if m else ""
            return [f"{what}: `{expression}` does not run over the view's columns: {msg}{hint}"]
        if n:  # an aggregate makes one row of an empty table
            return [f"{what}: `{expression}` aggregates rows; a check sees one row at a time."]
        if str(types[0]).upper() not in ("BOOLEAN", "BOOL"):
            return [
                f"{what}: `{expression}` is of type {types[0]}, not a boolean. Fix: compare, e.g. `amount < 10000`."
            ]
    finally:
        con.close()
    return []


def _classes(node: Any) -> set[str]:
    out: set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get("class"), str):
            out.add(node["class"])
        for v in node.values():
            out |= _classes(v)
    elif isinstance(node, list):
        for v in node:
            out |= _classes(v)
    return out


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def empty_rows(view: Any) -> Any:
    """A zero-row Arrow table with the columns a row of `view` has (keys, times, features)."""
    import pyarrow as pa

    from featureline.types import Int64

    ts = view.source.timestamp_field if view.source is not None else "event_timestamp"
    created = view.source.created_timestamp_field if view.source is not None else None
    cols: dict[str, pa.DataType] = {k: Int64.to_arrow() for k in view.join_keys}
    cols.update({f.name: f.dtype.to_arrow() for f in view.schema})
    for t in (ts, created):
        if t and t not in cols:
            cols[t] = pa.timestamp("us", tz="UTC")
    return pa.schema(list(cols.items())).empty_table()


__all__ = ["FIELD_KINDS", "GATES", "VIEW_KINDS", "Check", "empty_rows", "view_check_problems"]
