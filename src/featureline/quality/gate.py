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

__all__ = ["REASONS", "ROW", "Gated", "gate", "report"]

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
) -> Gated:
    """Apply `view`'s gate to `table` (module docstring); `stored` and `across` as for
    `evaluate`."""
    mode = view.gate_mode
    if mode is None or table.num_rows == 0:
        return Gated(table, mode=mode)
    v = evaluate(view, table, stored, across)
    bad = v.any
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
