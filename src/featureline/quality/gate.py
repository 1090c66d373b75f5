"""The ingestion gate (DESIGN §3 "Bad input"; issue 11 item 2), run by the write path's
`check_rows` on every batch, whatever its entrance (ingest, push, HTTP, the stream worker).

Per view: `strict` refuses the whole batch (a `ConstraintViolationError` with a report: each
violated constraint, its count and sample rows; nothing is written); `quarantine` (the default
when the view has constraints) lands the good rows and returns the bad ones, with the
constraints each violates, for the write path to store in the quarantine with the commit;
`warn` lands every row and reports the counts. Nothing is dropped: rows in = `land` + `bad`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from featureline.definitions import FeatureView
from featureline.errors import ConstraintViolationError
from featureline.quality.constraints import KeysAcross, Violations, evaluate

__all__ = ["REASONS", "ROW", "Gated", "Refusal", "gate", "report"]

REASONS = "__violations"  # list<string>: the constraints a quarantined row violates
ROW = "__row"  # the row's position in its batch
SAMPLES = 3


@dataclass(frozen=True)
class Gated:
    """What the gate decided for one batch: rows to land, rows to quarantine (or None)."""

    land: pa.Table
    bad: pa.Table | None = None  # the batch's columns, plus REASONS and ROW
    violations: dict[str, int] = field(default_factory=dict)
    mode: str | None = None

    @property
    def quarantined(self) -> int:
        return 0 if self.bad is None else self.bad.num_rows


def gate(
    view: FeatureView,
    table: pa.Table,
    stored: Callable[[pa.Table], Any] | None = None,
    across: KeysAcross | None = None,
    refusal: Refusal | None = None,
) -> Gated:
    """Apply `view`'s gate to `table` (module docstring); `stored` and `across` as for
    `evaluate`. With `refusal` (`table` is one chunk of a larger batch), a strict gate adds the
    chunk to it instead of raising, and lets every row through: the caller lands nothing once
    `refusal` holds a violation, and raises `refusal.error()` after the last chunk."""
    mode = view.gate_mode
    if mode is None or table.num_rows == 0:
        return Gated(table, mode=mode)
    v = evaluate(view, table, stored, across)
    bad = v.any
    if mode == "strict" and refusal is not None:
        refusal.add(table, v, bad)
        return Gated(table, mode=mode)
    if not bad.any():
        return Gated(table, mode=mode)
    counts = v.counts()
    if mode == "strict":
        rep = report(view, table, v, bad)
        raise ConstraintViolationError(_message(view, rep), rep)
    if mode == "warn":
        return Gated(table, violations=counts, mode=mode)
    keep = pa.array(~bad)
    bad_rows = table.filter(pa.array(bad))
    bad_rows = bad_rows.append_column(REASONS, v.reasons(bad))
    bad_rows = bad_rows.append_column(ROW, pa.array(np.flatnonzero(bad), pa.int64()))
    return Gated(table.filter(keep), bad_rows, counts, mode)


class Refusal:
    """A strict gate's report over all the chunks of one batch (a large file ingested in
    chunks), equal to the report of the batch checked as one frame: the rows of every chunk,
    each constraint's count over all of them, its first samples, row positions in the batch."""

    def __init__(self, view: FeatureView) -> None:
        self.view = view
        self.rows = 0
        self.violating = 0
        self._order: list[str] = []
        self._by: dict[str, dict[str, Any]] = {}

    def add(self, table: pa.Table, v: Violations, bad: np.ndarray) -> None:
        offset, self.rows = self.rows, self.rows + table.num_rows
        self._order = self._order or list(v.names)
        if not bad.any():
            return
        rep = report(self.view, table, v, bad)
        self.violating += rep["violating_rows"]
        for c in rep["constraints"]:
            got = self._by.setdefault(c["constraint"], {**c, "rows": 0, "samples": []})
            got["rows"] += c["rows"]
            room = SAMPLES - len(got["samples"])
            got["samples"] += [{**s, "row": s["row"] + offset} for s in c["samples"][:room]]

    def error(self) -> ConstraintViolationError | None:
        """The error to raise (None: no row violates a constraint)."""
        if not self.violating:
            return None
        rank = {n: i for i, n in enumerate(self._order)}
        rep: dict[str, Any] = {
            "view": self.view.name,
            "version": self.view.version,
            "gate": self.view.gate_mode,
            "rows": self.rows,
            "violating_rows": self.violating,
            "constraints": sorted(self._by.values(), key=lambda c: rank.get(c["constraint"], 0)),
        }
        return ConstraintViolationError(_message(self.view, rep), rep)


def _jsonable(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, float) and not np.isfinite(v):
        return str(v)
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    return v


def report(view: FeatureView, table: pa.Table, v: Violations, bad: np.ndarray) -> dict[str, Any]:
    """Each violated constraint with its description, count and sample rows (JSON-ready)."""
    described = {c.label(f.name): c.describe() for f in view.schema for c in f.constraints}
    described.update({c.label(): c.describe() for c in view.checks})
    out: dict[str, Any] = {
        "view": view.name,
        "version": view.version,
        "gate": view.gate_mode,
        "rows": table.num_rows,
        "violating_rows": int(bad.sum()),
        "constraints": [],
    }
    for name, mask in zip(v.names, v.masks, strict=True):
        n = int(mask.sum())
        if not n:
            continue
        idx = np.flatnonzero(mask)[:SAMPLES]
        sample = table.take(pa.array(idx)).to_pylist()
        out["constraints"].append(
            {
                "constraint": name,
                "check": described.get(name, name),
                "rows": n,
                "samples": [
                    {"row": int(i), "values": {k: _jsonable(x) for k, x in r.items()}}
                    for i, r in zip(idx, sample, strict=True)
                ],
            }
        )
    return out


def _message(view: FeatureView, rep: dict[str, Any]) -> str:
    lines = [
        f"The batch for feature view `{view.name}` was refused by its strict gate: "
        f"{rep['violating_rows']:,} of {rep['rows']:,} row(s) violate "
        f"{len(rep['constraints'])} constraint(s); nothing was written."
    ]
    for c in rep["constraints"]:
        eg = "; ".join(f"row {s['row']}: {s['values']}" for s in c["samples"][:2])
        lines.append(f"  - `{c['constraint']}` ({c['check']}): {c['rows']:,} row(s), e.g. {eg}")
    lines.append(
        'Fix: correct those rows, or set gate="quarantine" on the view to land the good rows '
        "and keep the bad ones for `featureline quarantine replay`."
    )
    return "\n".join(lines)
