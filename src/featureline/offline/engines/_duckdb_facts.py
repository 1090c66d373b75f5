"""What a view's parts tell of each column without reading its values: the null counts and
min/max in the Parquet footers, and one DuckDB scan for the columns whose footers do not
(for `DuckDBEngine.profile`)."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from featureline._sql import EVENT_TS, q
from featureline.offline._pit import PartRef


@dataclass
class _Facts:
    """One column over all parts: its null count and min/max (`known`: for every row group)."""

    known: bool
    nulls: int = 0
    lo: Any = None
    hi: Any = None


def _footer_facts(
    parts: list[PartRef], columns: list[str], footer: set[str]
) -> tuple[int, dict[str, _Facts], dict[int, _Facts]]:
    """The row count of `parts`; for the `columns` in `footer`, the null counts and min/max the
    Parquet footers record per row group (written with every part: ingest and compaction), a
    column not `known` when one of its row groups lacks them; and the event-time range of each
    commit."""
    import pyarrow.parquet as pq

    rows = 0
    facts = {c: _Facts(known=c in footer) for c in columns}
    per_commit: dict[int, _Facts] = {}
    for p in parts:
        md = pq.read_metadata(p.path)
        rows += md.num_rows
        if md.num_row_groups == 0:
            continue
        first = md.row_group(0)
        index = {first.column(j).path_in_schema: j for j in range(md.num_columns)}
        ev = per_commit.setdefault(p.commit, _Facts(known=True))
        for c, s in [*facts.items(), (EVENT_TS, ev)]:
            if not s.known:
                continue
            j = index.get(c)
            if j is None:  # a part written before the column was added: nulls there
                s.nulls += md.num_rows
                continue
            for g in range(md.num_row_groups):
                st = md.row_group(g).column(j).statistics
                if st is None or not st.has_null_count:
                    s.known = False
                    break
                s.nulls += st.null_count
                if st.num_values == 0:  # only nulls: no min/max to take
                    continue
                lo, hi = _footer_range(st)
                if lo is None:
                    s.known = False
                    break
                s.lo = lo if s.lo is None else min(s.lo, lo)
                s.hi = hi if s.hi is None else max(s.hi, hi)
    return rows, facts, per_commit


def _disjoint(ranges: dict[int, _Facts]) -> bool:
    """No two of these event-time ranges share an instant (all known)."""
    if not all(r.known and r.lo is not None for r in ranges.values()):
        return False
    spans = sorted((r.lo, r.hi) for r in ranges.values())
    return all(a[1] < b[0] for a, b in pairwise(spans))


def _footer_range(st: Any) -> tuple[Any, Any]:
    """A row group's (min, max) from its statistics' physical values — pyarrow's own conversion
    of a timestamp imports pandas —, or (None, None) when it has none we can read."""
    if not st.has_min_max or st.physical_type not in ("INT64", "DOUBLE", "BOOLEAN"):
        return None, None
    logical = st.logical_type.type
    if logical == "TIMESTAMP":
        if '"timeUnit":"microseconds"' not in st.logical_type.to_json():
            return None, None
        from featureline._time import from_us

        return from_us(st.min_raw), from_us(st.max_raw)
    if logical == "INT" and '"isSigned":true' not in st.logical_type.to_json():
        return None, None  # an unsigned integer's raw value is not its value
    if logical not in ("NONE", "INT"):  # INT: DuckDB's writer (compaction) names BIGINT so
        return None, None
    return st.min_raw, st.max_raw


def _scan_facts(con: Any, src: str, columns: list[str], facts: dict[str, _Facts]) -> None:
    """Count and min/max, by a scan, of the `columns` whose footers did not tell them."""
    todo = [c for c in dict.fromkeys(columns) if not facts[c].known]
    if not todo:
        return
    exprs = [f"count({q(c)}), min({q(c)}), max({q(c)})" for c in todo]
    (rows, *row) = con.execute(f"SELECT count(*), {', '.join(exprs)} FROM {src}").fetchall()[0]
    for i, c in enumerate(todo):
        nonnull, lo, hi = row[3 * i : 3 * i + 3]
        facts[c] = _Facts(True, int(rows) - int(nonnull), lo, hi)
