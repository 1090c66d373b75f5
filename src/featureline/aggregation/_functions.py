"""The aggregation functions and the column types they take: their names and params, the type
they finalize to, and the validation of an aggregation (function, column type, params). The
contract of the kernels is in `featureline.aggregation.kernel`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from featureline.errors import DefinitionError, unknown

FUNCTIONS: tuple[str, ...] = (
    "count",
    "sum",
    "mean",
    "min",
    "max",
    "last",
    "stddev",
    "approx_count_distinct",
    "approx_percentile",
)
COLUMN_TYPES: tuple[str, ...] = ("Int64", "Float64", "String", "Bool", "Timestamp")
NUMERIC_TYPES: frozenset[str] = frozenset({"Int64", "Float64"})
# Functions that need an Int64 or Float64 column; the others (count, min, max, last,
# approx_count_distinct) take any of COLUMN_TYPES.
NUMERIC_ONLY: frozenset[str] = frozenset({"sum", "mean", "stddev", "approx_percentile"})
# Functions whose finalize is bit-identical whatever the split and order.
EXACT: frozenset[str] = frozenset(FUNCTIONS) - {"approx_percentile"}
FORMAT_VERSION = 1

_PARAMS: dict[str, tuple[str, ...]] = {
    "approx_count_distinct": ("lg_k",),
    "approx_percentile": ("q", "k"),
}
LG_K_DEFAULT, LG_K_RANGE = 12, (4, 21)
KLL_K_DEFAULT, KLL_K_RANGE = 200, (8, 65535)


def problems(function: str, column_type: str, params: Mapping[str, Any] | None = None) -> list[str]:
    """Every problem with an aggregation (function, column type, params), as messages that name
    the problem and the fix; empty when it is valid. `kernel` raises them all at once."""
    out = _type_problems(function, column_type)
    if function not in FUNCTIONS:
        return out
    return out + _param_problems(function, params)


def _type_problems(function: str, column_type: str) -> list[str]:
    out: list[str] = []
    if function not in FUNCTIONS:
        out.append(unknown("aggregation function", str(function), FUNCTIONS))
        return out
    if column_type not in COLUMN_TYPES:
        out.append(
            f"`{function}` cannot aggregate a column of type `{column_type}`. "
            f"Fix: aggregate a column of type {', '.join(COLUMN_TYPES)}."
        )
    elif function in NUMERIC_ONLY and column_type not in NUMERIC_TYPES:
        anyt = ", ".join(f for f in FUNCTIONS if f not in NUMERIC_ONLY)
        out.append(
            f"`{function}` needs a numeric column (Int64 or Float64), got `{column_type}`. "
            f"Fix: aggregate an Int64 or Float64 column, or use one of {anyt} on a "
            f"{column_type} column."
        )
    return out


def _param_problems(function: str, params: Mapping[str, Any] | None) -> list[str]:
    out: list[str] = []
    if params is not None and not isinstance(params, Mapping):
        out.append(f"The params of `{function}` must be a mapping, got {type(params).__name__}.")
        return out
    given = dict(params or {})
    valid = _PARAMS.get(function, ())
    for key in given:
        if key not in valid:
            if valid:
                names = ", ".join(f"`{v}`" for v in valid)
                out.append(f"`{function}` has no parameter `{key}`. Valid: {names}.")
            else:
                out.append(
                    f"`{function}` takes no parameters, got `{key}`. Fix: remove it "
                    f"(only approx_count_distinct (lg_k) and approx_percentile (q, k) take any)."
                )
    if function == "approx_count_distinct" and "lg_k" in given:
        lo, hi = LG_K_RANGE
        if not _is_int(given["lg_k"]) or not lo <= given["lg_k"] <= hi:
            out.append(
                f"`lg_k` of approx_count_distinct must be an integer from {lo} to {hi}, got "
                f"{given['lg_k']!r}. Fix: use the default {LG_K_DEFAULT} (about 1.6 % error) or "
                f"more for less error (each step up doubles the sketch, error / 1.41)."
            )
    if function == "approx_percentile":
        if "q" not in given:
            out.append(
                "approx_percentile needs the parameter `q`, the quantile strictly between 0 and "
                "1. Fix: e.g. params={'q': 0.5} for the median, {'q': 0.99} for p99."
            )
        else:
            q = given["q"]
            if not _is_real(q) or not 0.0 < float(q) < 1.0:
                out.append(
                    f"`q` of approx_percentile must be a number strictly between 0 and 1, got "
                    f"{q!r}. Fix: e.g. 0.5 for the median, 0.99 for p99 (use min/max for 0/1)."
                )
        if "k" in given:
            lo, hi = KLL_K_RANGE
            if not _is_int(given["k"]) or not lo <= given["k"] <= hi:
                out.append(
                    f"`k` of approx_percentile must be an integer from {lo} to {hi}, got "
                    f"{given['k']!r}. Fix: use the default {KLL_K_DEFAULT} (rank error 1.33 %)."
                )
    return out


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)


def _is_real(v: Any) -> bool:
    return (
        isinstance(v, int | float | np.integer | np.floating)
        and not isinstance(v, bool | np.bool_)
        and math.isfinite(float(v))
    )


def _raise(found: list[str], what: str) -> None:
    if len(found) == 1:
        raise DefinitionError(found[0], found)
    if found:
        raise DefinitionError.from_problems(found, what)


def output_type(function: str, column_type: str) -> str:
    """The type of the finalized value: "Int64", "Float64", or the column type."""
    _raise(_type_problems(function, column_type), "aggregation")
    if function in ("count", "approx_count_distinct"):
        return "Int64"
    if function in ("mean", "stddev", "approx_percentile"):
        return "Float64"
    return column_type  # sum, min, max, last


def rank_error(k: int = KLL_K_DEFAULT) -> float:
    """The KLL normalized rank error of one quantile at 99 % confidence for this `k`."""
    import datasketches

    return float(datasketches.kll_doubles_sketch.get_normalized_rank_error(int(k), False))
