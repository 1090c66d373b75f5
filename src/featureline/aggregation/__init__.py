"""Sliding-window aggregations (DESIGN.md §3).

`kernel` is the one implementation of the partial aggregates (empty, add, merge, finalize,
encode, decode) that the offline training-set computation, the online tiles and the stream
worker all use, so serving and training give the same number for the same events. See
`featureline.aggregation.kernel` for the exact contract (nulls, NaN/inf, exactness, sketches).
"""

from featureline.aggregation.kernel import (
    COLUMN_TYPES,
    EXACT,
    FORMAT_VERSION,
    FUNCTIONS,
    NUMERIC_ONLY,
    Kernel,
    kernel,
    output_type,
    problems,
    rank_error,
)

__all__ = [
    "COLUMN_TYPES",
    "EXACT",
    "FORMAT_VERSION",
    "FUNCTIONS",
    "NUMERIC_ONLY",
    "Kernel",
    "kernel",
    "output_type",
    "problems",
    "rank_error",
]
