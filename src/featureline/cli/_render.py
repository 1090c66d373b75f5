"""Rich rendering helpers for the CLI. Imported only inside command functions (rich is slow to import)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

_SYMBOL_STYLE = {"+": "green", "~": "yellow", "-": "red"}
_OP_SYMBOL = {"add": "+", "update": "~", "new_version": "~", "remove": "-"}


def console(stderr: bool = False) -> Console:
    """A console writing to the current sys.stdout (or stderr); wide when not a terminal."""
    c = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not c.is_terminal and "COLUMNS" not in os.environ:
        c.width = 140
    return c


def fmt(value: Any) -> str:
    """A compact, readable cell value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return f"{value:.6g}"
    if isinstance(value, datetime):
        spec = "seconds" if value.microsecond == 0 else "microseconds"
        return value.isoformat(sep=" ", timespec=spec)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return fmt_seconds(value.total_seconds())
    if isinstance(value, list | tuple):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    return str(value)


def fmt_seconds(seconds: float | None) -> str:
    """86400 -> "1 day", 7200 -> "2 hours", None -> "none"."""
    if seconds is None or seconds == 0:
        return "none"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds:g} seconds"


def fmt_tags(tags: Mapping[str, Any] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in (tags or {}).items())


def cell(value: Any, style: str = "") -> Text:
    """A table cell as plain Text, so `[` in user values is never read as Rich markup."""
    if isinstance(value, Text):
        return value
    s = value if isinstance(value, str) else fmt(value)
    return Text(s, style="dim" if value is None and not style else style)


def table(
    title: str | None,
    columns: Iterable[str],
    rows: Iterable[Iterable[Any]],
    numeric: Iterable[str] = (),
) -> Table:
    right = set(numeric)
    t = Table(title=title, title_justify="left", header_style="bold", show_lines=False)
    for c in columns:
        t.add_column(c, justify="right" if c in right else "left", overflow="fold")
    for row in rows:
        t.add_row(*(cell(v) for v in row))
    return t


def key_values(pairs: Iterable[tuple[str, Any]]) -> Table:
    """A two-column grid: bold key, plain value."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for k, v in pairs:
        grid.add_row(k, cell(v))
    return grid


def plan_text(rendered: str) -> Text:
    """Colour a rendered plan: `+` lines green, `~` yellow, `-` red, the rest plain."""
    out = Text()
    for line in rendered.splitlines():
        style = _SYMBOL_STYLE.get(line[:1], "") if line[1:2] == " " else ""
        if line.startswith("Refused"):
            style = "bold red"
        out.append(line + "\n", style=style)
    return out


def change_summary(changes: Iterable[Mapping[str, Any]]) -> Text:
    """One line per change of a registry version: `+ view driver_stats v1 (details)`."""
    out = Text()
    for i, c in enumerate(changes):
        sym = _OP_SYMBOL.get(str(c.get("op")), "?")
        name = str(c.get("name"))
        if c.get("op") == "new_version" and isinstance(c.get("version"), int):
            name += f" v{c['version']}"
        if i:
            out.append("\n")
        out.append(f"{sym} {c.get('kind')} {name}", style=_SYMBOL_STYLE.get(sym, ""))
        details = c.get("details") or []
        if details:
            out.append(f" ({'; '.join(str(d) for d in details)})", style="dim")
    return out


def arrow_table(data: Any, title: str | None = None, max_rows: int | None = None) -> Table:
    """A pyarrow Table as a Rich table (values formatted with `fmt`)."""
    names = list(data.column_names)
    rows = data.slice(0, max_rows).to_pylist() if max_rows is not None else data.to_pylist()
    numeric = {f.name for f in data.schema if _is_numeric(f.type)}
    return table(title, names, ([r[n] for n in names] for r in rows), numeric=numeric)


def _is_numeric(t: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))
